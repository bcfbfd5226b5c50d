/**
 * Every reach past the public API of Sequelize 6 or pg 8, in one place, each with the reason.
 * Sequelize stays because its pool (max, min, acquire, idle, evict, validate) is what this service
 * is built on; these few accesses make the hot path fast and the pool observable.
 * test/internals.test.ts checks each one against the installed versions, so an upgrade that
 * changes what they rely on fails loudly there rather than subtly in production.
 */
import pg from 'pg';
import type { Sequelize } from 'sequelize';

/** A pooled pg connection, as the hot path uses it. */
export interface PgConnection {
  query(q: { name?: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

interface ConnectionManager {
  getConnection(options: { type: string; signal?: AbortSignal }): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): void;
  validate(connection: unknown): boolean;
  pool: { size: number; available: number; using: number; waiting: number };
}

const manager = (sequelize: Sequelize) => sequelize.connectionManager as unknown as ConnectionManager;

/**
 * A connection from Sequelize's pool, for a named prepared statement run straight on the pg
 * client: `sequelize.query` has no option for a named statement, and its per-query machinery
 * costs ~2-3x the point lookup itself. Goes through the pool's hooks (so `beforePoolAcquire`/
 * `afterPoolAcquire` see `options`, with our signal) and its acquire timeout.
 */
export const acquireConnection = (sequelize: Sequelize, options: { type: string; signal?: AbortSignal }) =>
  manager(sequelize).getConnection(options);

/** Gives a connection from `acquireConnection` (or a hook) back to the pool. */
export const releaseConnection = (sequelize: Sequelize, connection: unknown) =>
  manager(sequelize).releaseConnection(connection as PgConnection);

/**
 * Sequelize's own check (not a broken or closing connection: pg's `_invalid`/`_ending`). Passing
 * our own `pool.validate` (to add recycling by age) replaces Sequelize's default, so we call it.
 */
export const dialectValidate = (sequelize: Sequelize, connection: unknown): boolean =>
  manager(sequelize).validate(connection);

/** The pool's live counts (sequelize-pool's getters): Sequelize exposes no pool statistics. */
export function poolCounts(sequelize: Sequelize) {
  const { size, available, using, waiting } = manager(sequelize).pool;
  return { size, available, using, waiting };
}

/**
 * Times every borrow from the pool, whichever path takes it (`sequelize.query`, transactions, the
 * hot path): Sequelize has a hook before and after acquiring but none on release, so both of the
 * connection manager's methods are wrapped on this instance. `acquired` gets the wait (including
 * opening a connection), `released` the time the connection was lent, `failed` the acquire error.
 */
export function instrumentPool(
  sequelize: Sequelize,
  observe: {
    acquired(seconds: number): void;
    released(seconds: number): void;
    failed(err: unknown): void;
  },
): void {
  const m = manager(sequelize);
  const getConnection = m.getConnection.bind(m);
  const release = m.releaseConnection.bind(m);
  const lentAt = new WeakMap<object, number>();
  m.getConnection = async (options) => {
    const started = performance.now();
    let connection: PgConnection;
    try {
      connection = await getConnection(options);
    } catch (err) {
      observe.failed(err);
      throw err;
    }
    const now = performance.now();
    observe.acquired((now - started) / 1000);
    lentAt.set(connection, now);
    return connection;
  };
  m.releaseConnection = (connection) => {
    const since = lentAt.get(connection);
    if (since !== undefined) {
      lentAt.delete(connection);
      observe.released((performance.now() - since) / 1000);
    }
    return release(connection);
  };
}

/**
 * pg, with a Client that always has an 'error' listener. Sequelize attaches its own only after the
 * connect callback; when PostgreSQL shuts down just then, its termination notice can arrive in the
 * same read as the connection's readiness, and an 'error' event with no listener crashes the
 * process. Ours sets the flag Sequelize's own listener sets (`_invalid`), so `dialectValidate`
 * drops the connection.
 */
class GuardedClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', () => {
      (this as unknown as { _invalid: boolean })._invalid = true;
    });
  }
}
export const guardedPg = { ...pg, Client: GuardedClient };
