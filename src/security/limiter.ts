/**
 * A bounded, fair work queue: at most `concurrency` jobs run at once, at most `queueMax` wait, and
 * one source (a client address or IPv6 network) holds at most `perSourceMax` places, running or
 * waiting. Each source waits in a line of its own, and a free slot goes to the sources in turn:
 * first the sources that arrived with nothing waiting (oldest first), then the others round-robin,
 * so one source's backlog delays another source's first job by at most one job per other waiting
 * source (and usually by none). When the queue is full
 * and a source with nothing waiting arrives, the newest waiter of the source with the longest line
 * is refused (RESOURCE_EXHAUSTED) to make room: a flood can fill the queue but never keep others
 * out. A caller that goes away while it waits (deadline or cancel) leaves and its job never starts.
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
  /** Who the work is for (a throttle source); '' for nobody in particular (a source of its own). */
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
  refuse: () => void;
}

export function createLimiter({ concurrency, queueMax, perSourceMax, busyMessage }: LimiterOptions): Limiter {
  let running = 0;
  let started = 0;
  let refused = 0;
  let waiting = 0;
  /** Each source's line, oldest first. */
  const lines = new Map<string, Waiter[]>();
  /** Sources with a line, in the order of their turns (a Map keeps insertion order): first those
   * not yet served since their line formed (newcomers, oldest first), then the others in rotation. */
  const newcomers = new Set<string>();
  const rotation = new Set<string>();
  /** Places (running and waiting) per source. */
  const places = new Map<string, number>();

  const take = (source: string) => places.set(source, (places.get(source) ?? 0) + 1);
  const give = (source: string) => {
    const n = (places.get(source) ?? 1) - 1;
    if (n > 0) places.set(source, n);
    else places.delete(source);
  };
  const full = () => running >= concurrency && waiting >= queueMax;
  /** The source whose line is longest (the first such in turn order), if any waits. */
  const longest = () => {
    let best: Waiter[] | undefined;
    for (const line of lines.values()) if (!best || line.length > best.length) best = line;
    return best;
  };
  /** Refused now: over its own share, or the queue is full and no room can be made for it. */
  const refusal = (source: string): boolean => {
    if (source !== '' && (places.get(source) ?? 0) >= perSourceMax) return true;
    if (!full()) return false;
    // room is made only for a source with nothing waiting, by a source with a longer line
    return lines.has(source) || (longest()?.length ?? 0) < 2;
  };
  const busy = () => {
    refused++;
    return resourceExhausted(busyMessage);
  };
  const remove = (waiter: Waiter) => {
    const line = lines.get(waiter.source);
    const i = line?.indexOf(waiter) ?? -1;
    if (!line || i < 0) return false;
    line.splice(i, 1);
    if (line.length === 0) {
      lines.delete(waiter.source);
      newcomers.delete(waiter.source);
      rotation.delete(waiter.source);
    }
    waiting--;
    give(waiter.source);
    return true;
  };
  /** The next source in turn starts its oldest waiter; the source goes to the end of the rotation. */
  const next = () => {
    const first = newcomers.values().next();
    const source = first.done ? rotation.values().next().value : first.value;
    if (source === undefined) return;
    newcomers.delete(source);
    rotation.delete(source);
    const line = lines.get(source) as Waiter[];
    const waiter = line.shift() as Waiter;
    if (line.length) rotation.add(source);
    else lines.delete(source);
    waiting--;
    waiter.start();
  };

  const runNow = <T>(work: () => Promise<T>, source: string) => {
    running++;
    started++;
    return work().finally(() => {
      running--;
      give(source);
      next();
    });
  };

  return {
    run(work, { signal, source = '' } = {}) {
      if (signal?.aborted) return Promise.reject(cancelled('the call was cancelled before its work started'));
      if (refusal(source)) return Promise.reject(busy());
      if (full()) {
        const victim = longest()?.at(-1) as Waiter; // exists: refusal() found someone waiting
        remove(victim);
        victim.refuse();
      }
      take(source);
      if (running < concurrency) return runNow(work, source);
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          source,
          start: () => {
            signal?.removeEventListener('abort', onAbort);
            runNow(work, source).then(resolve, reject);
          },
          refuse: () => {
            signal?.removeEventListener('abort', onAbort);
            reject(busy());
          },
        };
        const onAbort = () => {
          if (remove(waiter)) reject(cancelled('the call was cancelled while it waited'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        const line = lines.get(source);
        if (line) line.push(waiter);
        else {
          lines.set(source, [waiter]);
          newcomers.add(source);
        }
        waiting++;
      });
    },
    assertCapacity(source = '') {
      if (refusal(source)) throw busy();
    },
    stats: () => ({ running, waiting, started, refused }),
  };
}
