/**
 * Coalesces concurrent point lookups into one `= ANY($1)` query. On a small machine the cost of a
 * query is mostly its round trip (a write, a wake-up of the PostgreSQL backend, a read), so under
 * load the hot lookups (session checks, user by id/email) share round trips.
 *
 * - At most `maxInFlight` batches run at once; a lookup that arrives meanwhile waits for the next
 *   batch and never joins one already sent, so it always reads data committed before it arrived
 *   (a session revoked before the check began is seen as revoked). At low load a lookup is sent at
 *   once, so batching adds no latency there.
 * - A lookup whose call has gone (deadline, cancel) leaves the queue before its batch is sent; a
 *   batch whose callers have all gone does not take a connection.
 */
import { cancelled, resourceExhausted } from '../errors.js';

interface Waiter<K, V> {
  key: K;
  signal: AbortSignal | undefined;
  resolve: (value: V | undefined) => void;
  reject: (err: unknown) => void;
  timer?: NodeJS.Timeout;
}

export interface BatcherOptions {
  maxBatch: number;
  maxInFlight: number;
  /** A lookup that cannot be sent within this long fails like a pool acquire (DB_POOL_ACQUIRE_MS). */
  maxWaitMs: number;
}

export function createBatcher<K, V>(
  /** Loads a batch; `signal` aborts only when every caller in the batch has gone. */
  load: (keys: K[], signal: AbortSignal) => Promise<Map<K, V>>,
  { maxBatch, maxInFlight, maxWaitMs }: BatcherOptions,
): (key: K, signal?: AbortSignal) => Promise<V | undefined> {
  const pending: Waiter<K, V>[] = [];
  let inFlight = 0;

  const send = (batch: Waiter<K, V>[]) => {
    inFlight++;
    // The batch's own signal: aborted only when every caller in it has gone.
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
    const keys = [...new Set(batch.map((w) => w.key))];
    load(keys, all.signal)
      .then(
        (found) => {
          for (const w of batch) w.resolve(found.get(w.key));
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

  return (key, signal) =>
    new Promise<V | undefined>((resolve, reject) => {
      const w: Waiter<K, V> = { key, signal, resolve, reject };
      pending.push(w);
      pump();
      if (pending.includes(w)) {
        // it has to wait for a batch slot: bounded like a wait for a pooled connection
        w.timer = setTimeout(() => {
          const i = pending.indexOf(w);
          if (i < 0) return;
          pending.splice(i, 1);
          reject(resourceExhausted(`no database connection became free within ${maxWaitMs} ms; retry later`));
        }, maxWaitMs);
      }
    });
}
