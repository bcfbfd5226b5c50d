/**
 * A bounded, fair work queue: at most `concurrency` jobs run at once, at most `queueMax` wait,
 * and one source (a client address) holds at most `perSourceMax` places, running or waiting, so a
 * single flooding address fills only its share while others still get in. Beyond those limits a
 * caller gets RESOURCE_EXHAUSTED at once. A caller that goes away while it waits (deadline or
 * cancel) leaves the queue and its job never starts.
 */
import { cancelled, resourceExhausted } from '../errors.js';

export interface LimiterOptions {
  concurrency: number;
  queueMax: number;
  perSourceMax: number;
  /** The RESOURCE_EXHAUSTED message. */
  busyMessage: string;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Who the work is for (a client address); '' for nobody in particular. */
  source?: string;
}

export interface Limiter {
  run<T>(work: () => Promise<T>, options?: RunOptions): Promise<T>;
  /** Throws RESOURCE_EXHAUSTED now if `run` for this source would be refused. */
  assertCapacity(source?: string): void;
  stats(): { running: number; waiting: number; started: number; refused: number };
}

interface Waiter {
  source: string;
  start: () => void;
}

export function createLimiter({ concurrency, queueMax, perSourceMax, busyMessage }: LimiterOptions): Limiter {
  let running = 0;
  let started = 0;
  let refused = 0;
  const queue: Waiter[] = [];
  const places = new Map<string, number>();

  const take = (source: string) => places.set(source, (places.get(source) ?? 0) + 1);
  const give = (source: string) => {
    const n = (places.get(source) ?? 1) - 1;
    if (n > 0) places.set(source, n);
    else places.delete(source);
  };
  const refusal = (source: string): boolean =>
    (source !== '' && (places.get(source) ?? 0) >= perSourceMax) ||
    (running >= concurrency && queue.length >= queueMax);
  const busy = () => {
    refused++;
    return resourceExhausted(busyMessage);
  };

  const runNow = <T>(work: () => Promise<T>, source: string) => {
    running++;
    started++;
    return work().finally(() => {
      running--;
      give(source);
      queue.shift()?.start();
    });
  };

  return {
    run(work, { signal, source = '' } = {}) {
      if (signal?.aborted) return Promise.reject(cancelled('the call was cancelled before its work started'));
      if (refusal(source)) return Promise.reject(busy());
      take(source);
      if (running < concurrency) return runNow(work, source);
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          source,
          start: () => {
            signal?.removeEventListener('abort', onAbort);
            runNow(work, source).then(resolve, reject);
          },
        };
        const onAbort = () => {
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          give(source);
          reject(cancelled('the call was cancelled while it waited'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(waiter);
      });
    },
    assertCapacity(source = '') {
      if (refusal(source)) throw busy();
    },
    stats: () => ({ running, waiting: queue.length, started, refused }),
  };
}
