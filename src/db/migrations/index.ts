/**
 * Every migration, in the order they apply. To change the schema: add `NNNN-what-it-does.ts` (the
 * next number) to this folder and one line at the end of this list. Never edit, rename or reorder a
 * migration that has been released: databases record them by name. See migration.ts for what a
 * migration may do (it runs inside one transaction).
 */
import * as initialSchema from './0001-initial-schema.js';
import * as auditEvents from './0002-audit-events.js';
import * as cacheNotices from './0003-cache-notices.js';
import * as throttleInFlight from './0004-throttle-in-flight.js';
import * as auditOwner from './0005-audit-owner.js';
import * as serviceTokenRevocation from './0006-service-token-revocation.js';
import type { Migration } from './migration.js';

export const MIGRATIONS: readonly Migration[] = [
  { name: '0001-initial-schema', ...initialSchema },
  { name: '0002-audit-events', ...auditEvents },
  { name: '0003-cache-notices', ...cacheNotices },
  { name: '0004-throttle-in-flight', ...throttleInFlight },
  { name: '0005-audit-owner', up: auditOwner.up },
  { name: '0006-service-token-revocation', ...serviceTokenRevocation },
];
