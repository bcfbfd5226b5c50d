/**
 * `service-account revoke-tokens NAME`: service tokens issued (`iat`) at or before
 * `tokens_valid_after` (a whole second) are refused. Changing it is an update of the account's row,
 * so the cache notice trigger of 0003 tells every instance to drop the cached account.
 */
import type { MigrationFn } from './migration.js';

export const up: MigrationFn = async ({ context }) => {
  await context.query('ALTER TABLE service_accounts ADD COLUMN IF NOT EXISTS tokens_valid_after timestamptz');
};

export const down: MigrationFn = async ({ context }) => {
  await context.query('ALTER TABLE service_accounts DROP COLUMN IF EXISTS tokens_valid_after');
};
