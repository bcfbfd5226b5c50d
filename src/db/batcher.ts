/**
 * Coalesces concurrent point lookups into one `= ANY($1)` query. On a small machine the cost of a
 * query is mostly its round trip (a write, a wake-up of the PostgreSQL backend, a read), so under
 * load the hot lookups (session checks, user by id/email) share round trips.
 *
 * - At most `maxInFlight` batches run at once; a lookup that arrives meanwhile waits for the next
 *   batch and never joins one already sent, so it always reads data committed before it arrived
 *   (a session revoked before the check began is seen as revoked). At low load a lookup is sent at
 *   once, so batching adds no latency there.
 * - A lookup that waits longer than `maxWaitMs` for a batch slot fails with RESOURCE_EXHAUSTED
 *   (`BATCH_QUEUE_TIMEOUT`), its own limit, distinct from the pool's acquire timeout.
 * - A lookup whose call has gone (deadline, cancel) leaves the queue before its batch is sent; a
 *   batch whose callers have all gone does not take a connection.
 */
import { cancelled, resourceExhausted } from '../errors.js';

interface Waiter<K, V> {
  key: K;
  id: string;
  signal: AbortSignal | undefined;
  resolve: (value: V | undefined) => void;
  reject: (err: unknown) => void;
  timer?: NodeJS.Timeout;
}

export interface BatcherOptions {
  maxBatch: number;
  maxInFlight: number;
  /** How long a lookup may wait for a batch slot. */
  maxWaitMs: number;
  /** Where the batcher is counted (the metrics' pending-lookups gauge). */
  registry?: BatcherRegistry;
}

/** The batchers of one process, for a total of the lookups they hold. */
export interface BatcherRegistry {
  add(batcher: { pending(): number }): void;
  pending(): number;
}
export function createBatcherRegistry(): BatcherRegistry {
  const all: { pending(): number }[] = [];
  return {
    add: (b) => void all.push(b),
    pending: () => all.reduce((sum, b) => sum + b.pending(), 0),
  };
}

export const batchQueueTimeout = (ms: number) =>
  `the database is busy: this lookup waited ${ms} ms for a batch slot; retry later`;

export interface Batcher<K, V> {
  (key: K, signal?: AbortSignal): Promise<V | undefined>;
  /** Lookups waiting for a batch slot now. */
  pending(): number;
}

export function createBatcher<K, V>(
  spec: {
    /** Loads a batch of distinct keys; the result is keyed by `keyOf`. `signal` aborts only when every caller in the batch has gone. */
    load: (keys: K[], signal: AbortSignal) => Promise<Map<string, V>>;
    /** The identity of a key: lookups with the same one share a result. */
    keyOf: (key: K) => string;
  },
  { maxBatch, maxInFlight, maxWaitMs, registry }: BatcherOptions,
): Batcher<K, V> {
  const { load, keyOf } = spec;
  const pending: Waiter<K, V>[] = [];
  let inFlight = 0;

  const send = (batch: Waiter<K, V>[]) => {
    inFlight++;
    const all = new AbortController();
    let gone = 0;
    for (const w of batch) {
      w.signal?.addEventListener(
        'abort',
        () => {
          if (++gone === batch.length) all.abort();
        },
        { once: true },
      );
    }
    const distinct = new Map<string, K>();
    for (const w of batch) if (!distinct.has(w.id)) distinct.set(w.id, w.key);
    load([...distinct.values()], all.signal)
      .then(
        (found) => {
          for (const w of batch) w.resolve(found.get(w.id));
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err);
        },
      )
      .finally(() => {
        inFlight--;
        pump();
      });
  };

  const pump = () => {
    while (inFlight < maxInFlight && pending.length > 0) {
      const batch: Waiter<K, V>[] = [];
      while (batch.length < maxBatch && pending.length > 0) {
        const w = pending.shift() as Waiter<K, V>;
        clearTimeout(w.timer);
        if (w.signal?.aborted) w.reject(cancelled('the call was cancelled while it waited for the database'));
        else batch.push(w);
      }
      if (batch.length > 0) send(batch);
    }
  };

  const lookup = (key: K, signal?: AbortSignal) =>
    new Promise<V | undefined>((resolve, reject) => {
      const w: Waiter<K, V> = { key, id: keyOf(key), signal, resolve, reject };
      pending.push(w);
      pump();
      if (pending.includes(w)) {
        w.timer = setTimeout(() => {
          const i = pending.indexOf(w);
          if (i < 0) return;
          pending.splice(i, 1);
          reject(resourceExhausted(batchQueueTimeout(maxWaitMs)));
        }, maxWaitMs);
      }
    });
  const batcher = Object.assign(lookup, { pending: () => pending.length });
  registry?.add(batcher);
  return batcher;
}
