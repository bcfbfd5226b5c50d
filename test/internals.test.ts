/**
 * The contract of src/db/internals.ts: each reach past the public API of Sequelize or pg, checked
 * against the installed versions with a real connection. If an upgrade changes any of these, this
 * fails here, loudly, instead of the pool silently losing its validation or the hot path its
 * prepared statements.
 */
import { expect } from 'chai';
import { Sequelize } from 'sequelize';
import {
  acquireConnection,
  dialectValidate,
  guardedPg,
  poolCounts,
  releaseConnection,
} from '../src/db/internals.js';
import { connectionOptions } from '../src/db/url.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

describe('library internals we rely on (Sequelize 6, pg 8)', () => {
  let db: TestDatabase;
  let sequelize: Sequelize;
  const seen: unknown[] = [];
  before(async () => {
    db = await createTestDatabase();
    sequelize = new Sequelize({
      ...connectionOptions(db.url),
      dialect: 'postgres',
      dialectModule: guardedPg,
      logging: false,
      pool: { max: 2, min: 0, acquire: 5000 },
    });
    sequelize.addHook('afterPoolAcquire', (_connection, options) => {
      seen.push(options);
    });
  });
  after(async () => {
    await sequelize?.close();
    await db?.drop();
  });

  it('acquireConnection hands out a pooled pg client that runs named prepared statements, through the pool hooks with our options', async () => {
    const signal = new AbortController().signal;
    const c = await acquireConnection(sequelize, { type: 'SELECT', signal });
    try {
      const q = { name: 'contract_stmt', text: 'SELECT $1::int + 1 AS n', values: [41] };
      expect((await c.query(q)).rows).to.deep.equal([{ n: 42 }]);
      expect((await c.query(q)).rows, 'the named statement again').to.deep.equal([{ n: 42 }]);
      expect((seen.at(-1) as { signal?: AbortSignal }).signal, 'the hook sees our signal').to.equal(signal);
    } finally {
      releaseConnection(sequelize, c);
    }
  });

  it("poolCounts reads the pool's size, available, using and waiting", async () => {
    const idle = poolCounts(sequelize);
    for (const k of ['size', 'available', 'using', 'waiting'] as const) expect(idle[k], k).to.be.a('number');
    const a = await acquireConnection(sequelize, { type: 'SELECT' });
    const b = await acquireConnection(sequelize, { type: 'SELECT' });
    const third = acquireConnection(sequelize, { type: 'SELECT' });
    await new Promise((r) => setImmediate(r)); // past the pool hooks, into the pool's queue
    expect(poolCounts(sequelize)).to.include({ size: 2, using: 2, waiting: 1 });
    releaseConnection(sequelize, a);
    const c = await third;
    releaseConnection(sequelize, b);
    releaseConnection(sequelize, c);
    expect(poolCounts(sequelize)).to.include({ using: 0, available: 2, waiting: 0 });
  });

  it("dialectValidate is Sequelize's own check: false for a connection that errored or is closing", async () => {
    const good = await acquireConnection(sequelize, { type: 'SELECT' });
    expect(dialectValidate(sequelize, good)).to.equal(true);
    (good as unknown as { emit(e: string, err: Error): void }).emit('error', new Error('socket hang up'));
    expect(dialectValidate(sequelize, good), 'after an error event (GuardedClient sets _invalid)').to.equal(
      false,
    );
    releaseConnection(sequelize, good);

    const closing = await acquireConnection(sequelize, { type: 'SELECT' });
    const ended = (closing as unknown as { end(): Promise<void> }).end();
    expect(dialectValidate(sequelize, closing), 'while ending (_ending)').to.equal(false);
    await ended;
    releaseConnection(sequelize, closing);
  });
});
