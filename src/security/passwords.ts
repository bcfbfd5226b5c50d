/**
 * bcrypt through its async API (libuv thread pool), so hashing never blocks the event loop.
 * Hashing work goes through a bounded, fair queue (limiter.ts): at most HASH_CONCURRENCY at once,
 * HASH_QUEUE_MAX waiting, HASH_QUEUE_PER_SOURCE places per client address.
 *
 * Timing: a failed compare costs what one at the current cost does, whatever the account. An
 * unknown account is compared against a dummy hash made at the current cost; a stored hash of a
 * lower cost (made before a BCRYPT_ROUNDS change) compares faster, so a failure against it waits,
 * without using the CPU, for the rest of the typical duration of a compare at the current cost.
 */
import os from 'node:os';
import bcrypt from 'bcrypt';
import type { AppConfig } from '../config.js';
import { createLimiter, type RunOptions } from './limiter.js';

export interface PasswordHasher {
  hash(password: string, options?: RunOptions): Promise<string>;
  /** Compares against `hash`, or against a dummy hash at the current cost when `hash` is null,
   * so an unknown account costs the same time as a wrong password. */
  verify(password: string, hash: string | null, options?: RunOptions): Promise<boolean>;
  /** True when `hash` was made at another cost than the configured one. */
  needsRehash(hash: string): boolean;
  /** Throws RESOURCE_EXHAUSTED now if a new operation for `source` would be refused: lets callers
   * skip the database work that precedes hashing when the answer is already known. */
  assertCapacity(source?: string): void;
  /** Operations running and waiting, started and refused since start-up, and failures padded to the current cost. */
  stats(): { running: number; waiting: number; started: number; refused: number; padded: number };
}

export type HasherConfig = Pick<
  AppConfig,
  'BCRYPT_ROUNDS' | 'HASH_CONCURRENCY' | 'HASH_QUEUE_MAX' | 'HASH_QUEUE_PER_SOURCE'
>;

/** Told how long each bcrypt operation took (the metrics: src/ops/metrics.ts). */
export interface HashObserver {
  done(operation: 'hash' | 'compare', seconds: number): void;
}

/** The bcrypt calls used (the unit tests pass a controllable stand-in), and how to wait. */
export type Bcrypt = Pick<typeof bcrypt, 'hash' | 'compare' | 'getRounds'>;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function createPasswordHasher(
  config: HasherConfig,
  options: {
    /** The bcrypt calls (the unit tests pass a controllable stand-in). */
    bcrypt?: Bcrypt;
    /** How to wait (the padding of a failure against a lower-cost hash). */
    wait?: (ms: number) => Promise<void>;
    observer?: HashObserver;
  } = {},
): PasswordHasher {
  const { bcrypt: impl = bcrypt, wait = sleep, observer } = options;
  const rounds = config.BCRYPT_ROUNDS;
  const limiter = createLimiter({
    concurrency: config.HASH_CONCURRENCY || Math.max(1, os.availableParallelism()),
    queueMax: config.HASH_QUEUE_MAX,
    perSourceMax: config.HASH_QUEUE_PER_SOURCE,
    busyMessage: 'too many password operations in progress; retry in a few seconds',
  });
  let padded = 0;
  /** Typical duration of a compare at the current cost (ms): an moving average of real ones. */
  let typicalMs: number | undefined;
  const observe = (ms: number) => {
    typicalMs = typicalMs === undefined ? ms : typicalMs * 0.9 + ms * 0.1;
  };
  const costOf = (hash: string) => {
    try {
      return impl.getRounds(hash);
    } catch {
      return -1;
    }
  };

  let dummyHash: Promise<string> | undefined;
  const getDummyHash = () => {
    dummyHash ??= (async () => {
      const started = performance.now();
      const made = await impl.hash('connectsphere-dummy-password', rounds);
      observe(performance.now() - started); // a hash costs about what a compare does
      return made;
    })();
    return dummyHash;
  };
  // Made once at start-up, at the current cost, so the first unknown-email login is not faster.
  getDummyHash().catch(() => {
    dummyHash = undefined;
  });

  const compare = (password: string, target: string, options?: RunOptions) =>
    limiter.run(async () => {
      const started = performance.now();
      const ok = await impl.compare(password, target);
      const ms = performance.now() - started;
      observer?.done('compare', ms / 1000);
      return { ok, ms };
    }, options);

  return {
    hash: (password, options) =>
      limiter.run(async () => {
        const started = performance.now();
        const made = await impl.hash(password, rounds);
        observer?.done('hash', (performance.now() - started) / 1000);
        return made;
      }, options),
    async verify(password, hash, options) {
      const target = hash ?? (await getDummyHash());
      const cost = costOf(target);
      const { ok, ms } = await compare(password, target, options);
      if (cost === rounds) observe(ms);
      else if (!ok && cost < rounds) {
        padded++;
        await wait(Math.max(0, (typicalMs ?? 0) - ms));
      }
      return ok && hash !== null;
    },
    needsRehash: (hash) => costOf(hash) !== rounds,
    assertCapacity: (source) => limiter.assertCapacity(source),
    stats: () => ({ ...limiter.stats(), padded }),
  };
}
