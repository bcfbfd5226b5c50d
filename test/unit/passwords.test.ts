import { expect } from 'chai';
import type { AppError } from '../../src/errors.js';
import { type Bcrypt, createPasswordHasher } from '../../src/security/passwords.js';

/** A stand-in for bcrypt whose operations the test finishes by hand, recording each start. */
function manualBcrypt() {
  const started: { op: string; hash?: string; finish: () => void }[] = [];
  const impl: Bcrypt = {
    hash: ((password: string, rounds: number) =>
      new Promise<string>((resolve) => {
        started.push({
          op: 'hash',
          finish: () => resolve(`$2b$${String(rounds).padStart(2, '0')}$${password}`),
        });
      })) as Bcrypt['hash'],
    compare: ((password: string, hash: string) =>
      new Promise<boolean>((resolve) => {
        started.push({ op: 'compare', hash, finish: () => resolve(hash.endsWith(`$${password}`)) });
      })) as Bcrypt['compare'],
    getRounds: (hash: string) => Number(hash.split('$')[2]),
  };
  return { impl, started };
}
const tick = () => new Promise((r) => setImmediate(r));
const config = { BCRYPT_ROUNDS: 12, HASH_CONCURRENCY: 1, HASH_QUEUE_MAX: 2, HASH_QUEUE_PER_SOURCE: 10 };

describe('password hasher (bounded queue)', () => {
  it('runs at most HASH_CONCURRENCY operations, queues HASH_QUEUE_MAX, and refuses the rest with RESOURCE_EXHAUSTED', async () => {
    const { impl, started } = manualBcrypt();
    const hasher = createPasswordHasher(config, { bcrypt: impl });
    started.shift()?.finish(); // the dummy hash made at start-up
    const ops = [hasher.hash('one'), hasher.hash('two'), hasher.hash('three')];
    expect(hasher.stats()).to.include({ running: 1, waiting: 2 });
    expect(() => hasher.assertCapacity()).to.throw(/too many password operations/);
    const refused = await hasher.hash('four').catch((e: AppError) => e);
    expect((refused as AppError).kind).to.equal('RESOURCE_EXHAUSTED');
    for (let i = 0; i < 3; i++) {
      started.shift()?.finish();
      await tick();
    }
    expect(await Promise.all(ops)).to.deep.equal(['$2b$12$one', '$2b$12$two', '$2b$12$three']);
    expect(() => hasher.assertCapacity()).to.not.throw();
  });

  it('never starts the work of a caller that left the queue (deadline or cancel)', async () => {
    const { impl, started } = manualBcrypt();
    const hasher = createPasswordHasher(config, { bcrypt: impl });
    started.shift()?.finish();
    const first = hasher.hash('first');
    const gone = new AbortController();
    const late = hasher.hash('late', { signal: gone.signal }).catch((e: AppError) => e.kind);
    expect(hasher.stats().waiting).to.equal(1);
    gone.abort();
    expect(await late).to.equal('CANCELLED');
    expect(hasher.stats().waiting).to.equal(0);
    started.shift()?.finish();
    await first;
    await tick();
    expect(started, 'nothing started for the late caller').to.have.length(0);
    expect(hasher.stats().started).to.equal(1);
  });

  it('compares an unknown account against a dummy hash made at the configured cost', async () => {
    const { impl, started } = manualBcrypt();
    const hasher = createPasswordHasher(config, { bcrypt: impl });
    started.shift()?.finish();
    const result = hasher.verify('guess', null);
    await tick();
    const op = started.shift();
    expect(op?.op).to.equal('compare');
    expect(impl.getRounds(op?.hash as string)).to.equal(12);
    op?.finish();
    expect(await result, 'never true without an account').to.equal(false);
  });

  it('holds at most HASH_QUEUE_PER_SOURCE places for one client address, while other addresses still get in', async () => {
    const { impl, started } = manualBcrypt();
    const hasher = createPasswordHasher(
      { ...config, HASH_QUEUE_MAX: 10, HASH_QUEUE_PER_SOURCE: 2 },
      { bcrypt: impl },
    );
    started.shift()?.finish();
    const flood = [hasher.hash('a', { source: '203.0.113.1' }), hasher.hash('b', { source: '203.0.113.1' })];
    expect(() => hasher.assertCapacity('203.0.113.1')).to.throw(/too many password operations/);
    const third = await hasher.hash('c', { source: '203.0.113.1' }).catch((e: AppError) => e.kind);
    expect(third).to.equal('RESOURCE_EXHAUSTED');
    expect(() => hasher.assertCapacity('198.51.100.2')).to.not.throw();
    const other = hasher.hash('d', { source: '198.51.100.2' });
    for (let i = 0; i < 3; i++) {
      started.shift()?.finish();
      await tick();
    }
    await Promise.all([...flood, other]);
    expect(() => hasher.assertCapacity('203.0.113.1'), 'places come back').to.not.throw();
  });

  it('pads a failed compare against a lower-cost hash to the typical duration at the current cost, without CPU', async () => {
    const waits: number[] = [];
    let clock = 0;
    const realNow = performance.now.bind(performance);
    const timed: Bcrypt = {
      hash: (async (pw: string, rounds: number) => {
        clock += 200; // a hash at the current cost "takes" 200 ms
        return `$2b$${rounds}$${pw}`;
      }) as Bcrypt['hash'],
      compare: (async (pw: string, hash: string) => {
        clock += Number(hash.split('$')[2]) === 12 ? 200 : 50;
        return hash.endsWith(`$${pw}`);
      }) as Bcrypt['compare'],
      getRounds: (hash: string) => Number(hash.split('$')[2]),
    };
    performance.now = () => clock;
    try {
      const hasher = createPasswordHasher(config, { bcrypt: timed, wait: async (ms) => void waits.push(ms) });
      await hasher.verify('x', null); // learns the current cost's duration
      expect(await hasher.verify('guess', '$2b$10$secret')).to.equal(false);
      expect(waits).to.have.length(1);
      expect(waits[0]).to.be.closeTo(150, 1);
      expect(await hasher.verify('secret', '$2b$10$secret'), 'a success is not padded').to.equal(true);
      expect(await hasher.verify('guess', '$2b$12$secret'), 'nor a failure at the current cost').to.equal(
        false,
      );
      expect(waits).to.have.length(1);
      expect(hasher.stats().padded).to.equal(1);
    } finally {
      performance.now = realNow;
    }
  });

  it('says a hash of another cost needs a rehash', () => {
    const { impl } = manualBcrypt();
    const hasher = createPasswordHasher(config, { bcrypt: impl });
    expect(hasher.needsRehash('$2b$10$x')).to.equal(true);
    expect(hasher.needsRehash('$2b$12$x')).to.equal(false);
  });
});
