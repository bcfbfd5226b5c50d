/** Root hooks: one test PostgreSQL for the whole run. */
import { startTestPostgres, stopTestPostgres } from './postgres.js';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120_000);
    await startTestPostgres();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopTestPostgres();
  },
};
