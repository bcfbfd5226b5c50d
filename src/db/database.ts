/**
 * The Sequelize instance and its pool: the only place that configures the database connection.
 * Repositories run SQL through `Database.query`, which turns driver failures into domain errors
 * (UNAVAILABLE, RESOURCE_EXHAUSTED) so no Sequelize type leaves src/db.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import {
  BaseError,
  ConnectionAcquireTimeoutError,
  ConnectionError,
  DatabaseError,
  QueryTypes,
  Sequelize,
  TimeoutError,
  type Transaction,
  UniqueConstraintError,
} from 'sequelize';
import type { AppConfig } from '../config.js';
import { AppError, cancelled, resourceExhausted, throwIfAborted, unavailable } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Transactions, Tx } from '../ports.js';
import {
  acquireConnection,
  dialectValidate,
  guardedPg,
  instrumentPool,
  type PgConnection,
  poolCounts,
  releaseConnection,
} from './internals.js';
import { PreferTlsSocket } from './prefer-tls.js';
import { type TlsMaterial, type TlsSettings, tlsFiles, tlsOptions, unreadableFile } from './tls.js';
import { connectionOptions } from './url.js';

export interface QueryOptions {
  tx?: Tx;
  /** The caller's signal: once aborted, the query neither waits for nor uses a connection. */
  signal?: AbortSignal;
}

/** A `Tx` is a Sequelize transaction that the services cannot look into. */
const toTx = (t: Transaction) => t as unknown as Tx;
const fromTx = (tx: Tx | undefined) => tx as unknown as Transaction | undefined;

/** The knobs the database layer reads. */
export type DbConfig = Pick<
  AppConfig,
  | 'DB_ECHO'
  | 'DB_SYNC'
  | 'DB_POOL_MAX'
  | 'DB_POOL_MIN'
  | 'DB_POOL_ACQUIRE_MS'
  | 'DB_POOL_IDLE_MS'
  | 'DB_POOL_EVICT_MS'
  | 'DB_POOL_RECYCLE_S'
  | 'DB_CONNECT_TIMEOUT_MS'
  | 'DB_STATEMENT_TIMEOUT_MS'
  | 'DB_PREPARED_STATEMENTS'
>;

export interface PoolStats {
  size: number;
  available: number;
  using: number;
  waiting: number;
}

/** Told about every borrow from the pool (the metrics: src/ops/metrics.ts). */
export interface PoolObserver {
  /** Seconds waited for a connection (including opening one). */
  acquired(seconds: number): void;
  /** Seconds a connection was lent before it came back. */
  released(seconds: number): void;
  /** No connection became free within DB_POOL_ACQUIRE_MS. */
  timedOut(): void;
}

export interface Database extends Transactions {
  /**
   * Rows of a statement that returns rows (SELECT, or INSERT/UPDATE ... RETURNING). Without `bind`
   * the text goes to PostgreSQL as it is (with it, Sequelize turns `$$` into `$`).
   */
  select<T>(sql: string, bind?: unknown[], options?: QueryOptions): Promise<T[]>;
  /**
   * The hot-path read: the same pool, hooks and error mapping, but the statement runs straight on
   * the pooled pg connection, skipping Sequelize's per-query machinery (measured ~2-3x the
   * throughput of `select` for a point lookup), as a named prepared statement unless
   * DB_PREPARED_STATEMENTS=false (then unnamed, for PgBouncer's transaction pooling). Outside
   * transactions only.
   */
  read<T>(sql: string, bind?: unknown[], signal?: AbortSignal): Promise<T[]>;
  /** Rows affected by a statement. */
  execute(sql: string, bind?: unknown[], options?: QueryOptions): Promise<number>;
  /** Runs `fn` once `tx` has committed (never if it rolls back); at once without a transaction. */
  afterCommit(tx: Tx | undefined, fn: () => void): void;
  /** One round trip; throws UNAVAILABLE when the database cannot be reached. */
  ping(): Promise<void>;
  poolStats(): PoolStats;
  close(): Promise<void>;
}

/** PostgreSQL error classes that mean "the database is not reachable right now", not "your query is wrong". */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-4]|58)/;
/** Socket errors of a connection that broke under a query. */
const SOCKET_ERRNO =
  /^(EPIPE|ECONNRESET|ECONNREFUSED|ECONNABORTED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTCONN|ENOENT)$/;

/** Maps a driver failure to a domain error; anything else is rethrown unchanged. */
export function translateDbError(err: unknown, acquireMs: number): unknown {
  if (err instanceof AppError) return err;
  if (!(err instanceof BaseError) && err instanceof Error) {
    // straight from pg (the `read` path)
    const code = (err as { code?: string }).code ?? '';
    if (UNAVAILABLE_SQLSTATE.test(code) || code === '57014' || SOCKET_ERRNO.test(code)) {
      return unavailable('the database is unavailable; retry later', err);
    }
    if (/connection|terminat|timeout/i.test(err.message) && !code) {
      return unavailable('the database connection failed; retry later', err);
    }
    return err;
  }
  if (err instanceof ConnectionAcquireTimeoutError) {
    return resourceExhausted(`no database connection became free within ${acquireMs} ms; retry later`);
  }
  if (err instanceof ConnectionError) return unavailable('the database is unavailable; retry later', err);
  if (err instanceof TimeoutError)
    return unavailable('the database did not answer in time; retry later', err);
  if (err instanceof DatabaseError) {
    const code = (err.parent as { code?: string }).code ?? '';
    if (UNAVAILABLE_SQLSTATE.test(code) || SOCKET_ERRNO.test(code)) {
      return unavailable('the database is unavailable; retry later', err);
    }
    if (code === '57014') return unavailable('the database did not answer in time; retry later', err);
    if (!code) return unavailable('the database connection failed; retry later', err); // socket closed mid-query
  }
  if (err instanceof BaseError && /connection|terminat/i.test(err.message)) {
    return unavailable('the database connection failed; retry later', err);
  }
  return err;
}

/**
 * An unexpected database failure as the logs may see it: the SQLSTATE and the names PostgreSQL
 * gives (constraint, table, column, type), its message with every statement parameter, email
 * address and bcrypt hash taken out, and the statement text only with DB_ECHO. Never the driver's
 * error itself: Sequelize's carries the SQL and its parameters, pg's a `detail` such as
 * "Failing row contains (…)" with the row's values, a unique violation the values it met.
 */
export class DatabaseFailure extends Error {
  readonly code?: string;
  readonly constraint?: string;
  readonly table?: string;
  readonly column?: string;
  readonly dataType?: string;
  readonly sql?: string;
  /** The names in the server's certificate when a TLS check failed (for the start-up message; no secret). */
  readonly cert?: { subjectaltname?: string; subject?: { CN?: string } };
  constructor(message: string, fields: Omit<Partial<DatabaseFailure>, 'message' | 'name' | 'stack'>) {
    super(message);
    this.name = 'DatabaseFailure';
    Object.assign(this, Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)));
  }
}

const BCRYPT_HASH = /\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}/g;
const EMAIL_LIKE = /[^\s"'(),=]+@[^\s"'(),=]+/g;

/** `text` without any of the statement's parameters (of 3 characters or more), emails or bcrypt hashes. */
export function withoutValues(text: string, bind: readonly unknown[] = []): string {
  let out = text;
  const values = bind.flatMap((b) => (Array.isArray(b) ? b : [b]));
  for (const v of values) {
    const s = typeof v === 'string' ? v : Buffer.isBuffer(v) ? '' : v instanceof Date ? '' : String(v ?? '');
    if (s.length >= 3) out = out.split(s).join('[parameter]');
  }
  return out.replace(BCRYPT_HASH, '[bcrypt hash]').replace(EMAIL_LIKE, '[email]');
}

/** Only the names of a certificate a TLS check refused (explainTlsFailure in tls.ts says which it names). */
function certificateNames(cert: unknown): DatabaseFailure['cert'] {
  if (!cert || typeof cert !== 'object') return undefined;
  const { subjectaltname, subject } = cert as { subjectaltname?: unknown; subject?: { CN?: unknown } };
  return {
    subjectaltname: typeof subjectaltname === 'string' ? subjectaltname : undefined,
    subject: typeof subject?.CN === 'string' ? { CN: subject.CN } : undefined,
  };
}

/** A failure from the driver (Sequelize or pg), as opposed to one of ours. */
const fromDriver = (err: unknown): err is Error =>
  err instanceof BaseError ||
  (err instanceof Error &&
    (typeof (err as { severity?: unknown }).severity === 'string' ||
      /^[0-9A-Z]{5}$/.test(String((err as { code?: unknown }).code ?? ''))));

/**
 * What leaves the database layer: domain errors (their driver cause replaced by a DatabaseFailure),
 * a unique violation as a bare UniqueConstraintError (the stores turn it into ALREADY_EXISTS),
 * every other driver failure as a DatabaseFailure; anything else unchanged.
 */
export function sanitizeDbError(
  err: unknown,
  statement: { sql?: string; bind?: readonly unknown[] },
  echo: boolean,
): unknown {
  if (err instanceof AppError) {
    if (!fromDriver(err.cause)) return err;
    return new AppError(err.kind, err.message, {
      cause: sanitizeDbError(err.cause, statement, echo),
      retryAfterS: err.retryAfterS,
    });
  }
  if (!fromDriver(err)) return err;
  const pgError = ((err as { parent?: unknown }).parent ?? err) as Record<string, unknown>;
  const text = (k: string) => (typeof pgError[k] === 'string' ? (pgError[k] as string) : undefined);
  const failure = new DatabaseFailure(withoutValues(text('message') ?? err.message, statement.bind), {
    code: text('code'),
    constraint: text('constraint'),
    table: text('table'),
    column: text('column'),
    dataType: text('dataType'),
    sql: echo ? (statement.sql ?? (err as { sql?: string }).sql) : undefined,
    cert: certificateNames(pgError.cert),
  });
  if (err instanceof UniqueConstraintError) {
    return new UniqueConstraintError({
      message: failure.message,
      parent: Object.assign(failure, { sql: failure.sql ?? '' }),
      fields: {},
      errors: [],
    });
  }
  return failure;
}

/** invalid_sql_statement_name, duplicate_prepared_statement: a named statement met a pooled server connection it was not prepared on. */
const LOST_STATEMENT_SQLSTATE = /^(26000|42P05)$/;

/**
 * A named prepared statement that failed because a pooler handed the connection's statements to
 * another server connection: said for the operator (the caller sees INTERNAL with an error id).
 */
function lostPreparedStatement(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (!(err instanceof Error) || typeof code !== 'string' || !LOST_STATEMENT_SQLSTATE.test(code)) return err;
  // keeps the SQLSTATE, so translateDbError leaves it a bug (INTERNAL), not an outage
  return Object.assign(
    new Error(
      `${err.message}: named prepared statements do not survive a pooler that shares server connections ` +
        '(PgBouncer in transaction pooling mode before 1.21, or without max_prepared_statements); set DB_PREPARED_STATEMENTS=false',
      { cause: err },
    ),
    { code },
  );
}

/**
 * What an operator should do when the database (in practice PgBouncer, which accepts only the
 * startup parameters it tracks unless `ignore_startup_parameters` lists them) refused one of the
 * startup parameters this service sends; null for any other failure.
 */
export function explainStartupRefusal(
  err: unknown,
  { role, statementTimeoutMs }: { role: string; statementTimeoutMs: number },
): string | null {
  const seen = new Set<unknown>();
  for (let e = err; e instanceof Error && !seen.has(e); e = e.cause ?? (e as { parent?: unknown }).parent) {
    seen.add(e);
    const refused = /unsupported startup parameter: (\w+)/.exec(e.message)?.[1];
    if (!refused) continue;
    const fix =
      refused === 'statement_timeout'
        ? `set DB_STATEMENT_TIMEOUT_MS=0 and give the database role its statement_timeout instead (ALTER ROLE ${role} SET statement_timeout = '${statementTimeoutMs}ms'), or list statement_timeout in PgBouncer's ignore_startup_parameters (PgBouncer then drops the value)`
        : `list ${refused} in PgBouncer's ignore_startup_parameters`;
    return `the database refused the startup parameter ${refused} (PgBouncer accepts only the parameters it tracks): ${fix}; see the README, PgBouncer`;
  }
  return null;
}

/**
 * pg's TLS settings for one new connection, with the files read now (a replaced certificate is
 * used from the next connection on). sslmode=prefer goes through PreferTlsSocket: pg itself is
 * told plaintext, the socket asks for TLS.
 */
export async function connectionTls(
  settings: TlsSettings,
  host: string,
): Promise<{ ssl: TlsOptions | false; stream?: () => PreferTlsSocket }> {
  const material: TlsMaterial = {};
  for (const [file, path] of Object.entries(tlsFiles(settings)) as [keyof TlsMaterial, string][]) {
    try {
      material[file] = await fs.readFile(path);
    } catch (err) {
      throw unreadableFile(file, path, err);
    }
  }
  const options = tlsOptions(settings, host, material);
  if (settings.effective === 'prefer' && options) {
    return { ssl: false, stream: () => new PreferTlsSocket(options) };
  }
  return { ssl: options };
}

export function createDatabase(
  url: string,
  config: DbConfig,
  logger: Logger,
  observer?: PoolObserver,
): Database {
  const bornAt = new WeakMap<object, number>();
  const recycleMs = config.DB_POOL_RECYCLE_S * 1000;
  const log = logger.child({ component: 'db' });
  const { tls, ...target } = connectionOptions(url);

  const sequelize: Sequelize = new Sequelize({
    ...target,
    dialect: 'postgres',
    dialectModule: guardedPg,
    // DB_ECHO=false: no SQL in the logs at all. Bind parameters (hashes) are never logged.
    logging: config.DB_ECHO ? (sql: string) => log.info({ sql }, 'sql') : false,
    logQueryParameters: false,
    benchmark: false,
    pool: {
      max: config.DB_POOL_MAX,
      min: config.DB_POOL_MIN,
      acquire: config.DB_POOL_ACQUIRE_MS,
      idle: config.DB_POOL_IDLE_MS,
      evict: config.DB_POOL_EVICT_MS,
      // Reject a connection the driver saw fail, one being closed, or one older than DB_POOL_RECYCLE_S.
      validate: (connection: unknown) => {
        if (!dialectValidate(sequelize, connection)) return false;
        const born = bornAt.get(connection as object);
        return born === undefined || Date.now() - born < recycleMs;
      },
    },
    dialectOptions: {
      application_name: 'connectsphere-identity',
      // Always said (false: plaintext), so pg never falls back to PGSSLMODE from the environment.
      ssl: false,
      connectionTimeoutMillis: config.DB_CONNECT_TIMEOUT_MS,
      ...(config.DB_STATEMENT_TIMEOUT_MS > 0
        ? {
            statement_timeout: config.DB_STATEMENT_TIMEOUT_MS,
            query_timeout: config.DB_STATEMENT_TIMEOUT_MS + 1000,
          }
        : {}),
    },
  });
  if (tls.effective !== 'disable') {
    // Sequelize hands each new connection's config to this hook before it opens the connection.
    sequelize.addHook('beforeConnect', async (config) => {
      Object.assign(
        (config as { dialectOptions: object }).dialectOptions,
        await connectionTls(tls, target.host),
      );
    });
  }
  sequelize.addHook('afterConnect', (connection: unknown) => {
    bornAt.set(connection as object, Date.now());
  });
  // A call whose caller has gone (deadline passed, cancelled) does not wait for, or use, a connection.
  // Sequelize hands the query's options (with our `signal`) to both hooks.
  const signalOf = (options: object | undefined) => (options as { signal?: AbortSignal } | undefined)?.signal;
  sequelize.addHook('beforePoolAcquire', (options) => {
    if (signalOf(options)?.aborted)
      throw cancelled('the call was cancelled before it got a database connection');
  });
  sequelize.addHook('afterPoolAcquire', (connection, options) => {
    if (signalOf(options)?.aborted) {
      releaseConnection(sequelize, connection);
      throw cancelled('the call was cancelled while it waited for a database connection');
    }
  });
  if (observer) {
    instrumentPool(sequelize, {
      acquired: observer.acquired,
      released: observer.released,
      failed: (err) => {
        if (err instanceof ConnectionAcquireTimeoutError) observer.timedOut();
      },
    });
  }

  // every failure leaves through here: mapped to a domain error, and stripped of values (see DatabaseFailure)
  const run = async <T>(
    work: () => Promise<T>,
    statement: { sql?: string; bind?: unknown[] } = {},
  ): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      throw sanitizeDbError(translateDbError(err, config.DB_POOL_ACQUIRE_MS), statement, config.DB_ECHO);
    }
  };
  const queryOptions = ({ tx, signal }: QueryOptions) => ({ transaction: fromTx(tx), signal });

  const statementNames = new Map<string, string>();
  const statementName = (sql: string) => {
    let name = statementNames.get(sql);
    if (!name) {
      name = `cs_${createHash('sha1').update(sql).digest('hex').slice(0, 16)}`;
      statementNames.set(sql, name);
    }
    return name;
  };

  return {
    select: <T>(sql: string, bind?: unknown[], options: QueryOptions = {}) =>
      run(
        () =>
          sequelize.query(sql, {
            ...(bind ? { bind } : {}),
            type: QueryTypes.SELECT,
            raw: true,
            ...queryOptions(options),
          }) as Promise<T[]>,
        { sql, bind },
      ),
    read: <T>(sql: string, bind: unknown[] = [], signal?: AbortSignal) =>
      run(
        async () => {
          const connection: PgConnection = await acquireConnection(sequelize, { type: 'SELECT', signal });
          if (config.DB_ECHO) log.info({ sql }, 'sql');
          const statement = config.DB_PREPARED_STATEMENTS
            ? { name: statementName(sql), text: sql, values: bind }
            : { text: sql, values: bind };
          try {
            return (await connection.query(statement)).rows as T[];
          } catch (err) {
            throw lostPreparedStatement(err);
          } finally {
            releaseConnection(sequelize, connection);
          }
        },
        { sql, bind },
      ),
    execute: (sql: string, bind: unknown[] = [], options: QueryOptions = {}) =>
      run(
        async () => {
          const [, result] = await sequelize.query(sql, { bind, raw: true, ...queryOptions(options) });
          return (result as { rowCount?: number }).rowCount ?? 0;
        },
        { sql, bind },
      ),
    // Sequelize acquires a transaction's connection without the caller's options, so the pool
    // hooks cannot see the signal: it is checked before the transaction and again once it has its
    // connection, before the first statement of `work`.
    run: <T>(work: (tx: Tx) => Promise<T>, signal?: AbortSignal) =>
      run(() => {
        throwIfAborted(signal);
        return sequelize.transaction((t) => {
          throwIfAborted(signal);
          return work(toTx(t));
        });
      }),
    afterCommit(tx, fn) {
      const t = fromTx(tx);
      if (t) t.afterCommit(() => fn());
      else fn();
    },
    ping: () =>
      run(async () => void (await sequelize.query('SELECT 1', { type: QueryTypes.SELECT, raw: true }))),
    poolStats: () => poolCounts(sequelize),
    close: () => sequelize.close(),
  };
}
