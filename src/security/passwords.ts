/**
 * bcrypt through its async API (libuv thread pool), so hashing never blocks the event loop.
 * Hashing work is bounded: at most `concurrency` operations run at once, at most `queueMax` wait;
 * beyond that callers get RESOURCE_EXHAUSTED at once. A caller that goes away while it waits
 * (deadline or cancel) leaves the queue and never starts a hash.
 */
import os from 'node:os';
import bcrypt from 'bcrypt';
import type { AppConfig } from '../config.js';
import { cancelled, resourceExhausted } from '../errors.js';

export interface PasswordHasher {
  hash(password: string, signal?: AbortSignal): Promise<string>;
  /** Compares against `hash`, or against a dummy hash at the current cost when `hash` is null,
   * so an unknown account costs the same time as a wrong password. */
  verify(password: string, hash: string | null, signal?: AbortSignal): Promise<boolean>;
  /** True when `hash` was made at another cost than the configured one. */
  needsRehash(hash: string): boolean;
  /** Throws RESOURCE_EXHAUSTED now if a new operation would be refused: lets callers skip the
   * database work that precedes hashing when the answer is already known. */
  assertCapacity(): void;
  /** Operations running, callers waiting, and operations started since start-up. */
  stats(): { running: number; waiting: number; started: number };
}

export type HasherConfig = Pick<AppConfig, 'BCRYPT_ROUNDS' | 'HASH_CONCURRENCY' | 'HASH_QUEUE_MAX'>;

interface Waiter {
  start: () => void;
}

/** The three bcrypt calls used (the unit tests pass a controllable stand-in). */
export type Bcrypt = Pick<typeof bcrypt, 'hash' | 'compare' | 'getRounds'>;

export function createPasswordHasher(config: HasherConfig, impl: Bcrypt = bcrypt): PasswordHasher {
  const rounds = config.BCRYPT_ROUNDS;
  const queueMax = config.HASH_QUEUE_MAX;
  const concurrency = config.HASH_CONCURRENCY || Math.max(1, os.availableParallelism());
  let running = 0;
  let started = 0;
  const queue: Waiter[] = [];
  let dummyHash: Promise<string> | undefined;

  const release = () => {
    running--;
    const next = queue.shift();
    if (next) next.start();
  };

  const busy = () => resourceExhausted('too many password operations in progress; retry in a few seconds');

  /** Runs `work` when a slot is free; rejects at once if the queue is full or the caller is gone. */
  const withSlot = <T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
    if (signal?.aborted) return Promise.reject(cancelled('the call was cancelled before hashing started'));
    const runNow = () => {
      running++;
      started++;
      return work().finally(release);
    };
    if (running < concurrency) return runNow();
    if (queue.length >= queueMax) return Promise.reject(busy());
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          runNow().then(resolve, reject);
        },
      };
      const onAbort = () => {
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        reject(cancelled('the call was cancelled while waiting for hashing'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
    });
  };

  const getDummyHash = () => {
    dummyHash ??= impl.hash('connectsphere-dummy-password', rounds);
    return dummyHash;
  };

  // Made once at start-up, at the current cost, so the first unknown-email login is not faster.
  getDummyHash().catch(() => {
    dummyHash = undefined;
  });

  return {
    hash: (password, signal) => withSlot(() => impl.hash(password, rounds), signal),
    async verify(password, hash, signal) {
      const target = hash ?? (await getDummyHash());
      const ok = await withSlot(() => impl.compare(password, target), signal);
      return ok && hash !== null;
    },
    needsRehash: (hash) => {
      try {
        return impl.getRounds(hash) !== rounds;
      } catch {
        return true;
      }
    },
    assertCapacity: () => {
      if (running >= concurrency && queue.length >= queueMax) throw busy();
    },
    stats: () => ({ running, waiting: queue.length, started }),
  };
}
