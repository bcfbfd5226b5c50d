/**
 * Attempts in flight, kept apart from settled failures (src/throttle.ts): each granted attempt
 * holds one entry, the time its slot expires, so an attempt whose process died stops counting
 * after IN_FLIGHT_TTL_S instead of costing the key's budget for good.
 */
import type { MigrationFn } from './migration.js';

export const up: MigrationFn = async ({ context }) => {
  await context.query(
    "ALTER TABLE login_throttle ADD COLUMN in_flight timestamp with time zone[] NOT NULL DEFAULT '{}'",
  );
};

export const down: MigrationFn = async ({ context }) => {
  await context.query('ALTER TABLE login_throttle DROP COLUMN in_flight');
};
