/**
 * Lowers the CPU priority (nice) of libuv's thread pool, where bcrypt's async API hashes, so that
 * on a busy machine the event loop (and PostgreSQL) win the CPU over hashing: a login flood then
 * slows logins, not every other RPC. On an idle machine nice changes nothing, hashing still gets
 * every free cycle. Linux only (there a thread's nice is its own: setpriority on a thread id).
 *
 * libuv's threads carry no name in Node 20, so they are found by what they do: a burst of short
 * hashes is run and the threads whose CPU time grew are the pool's.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from '../logger.js';

function cpuTicksByThread(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), Number(fields[11]) + Number(fields[12])); // utime + stime
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** Threads whose CPU time grew while `burst` ran on the pool, busiest first. */
async function poolThreads(poolSize: number, burst: () => Promise<unknown>): Promise<number[]> {
  const before = cpuTicksByThread();
  await Promise.all(Array.from({ length: poolSize * 3 }, burst));
  return [...cpuTicksByThread()]
    .filter(([tid]) => tid !== process.pid)
    .map(([tid, ticks]) => [tid, ticks - (before.get(tid) ?? 0)] as const)
    .filter(([, delta]) => delta > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, poolSize)
    .map(([tid]) => tid);
}

/**
 * `burst(cost)` must run one bcrypt hash at that cost; costs rise until every pool thread has used
 * enough CPU to show in /proc (10 ms ticks): typically ~30 ms of start-up.
 */
export async function deprioritizeThreadPool(
  nice: number,
  burst: (cost: number) => Promise<unknown>,
  logger: Logger,
): Promise<number[]> {
  if (nice <= 0 || process.platform !== 'linux') return [];
  const poolSize = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  let busy: number[] = [];
  for (const cost of [6, 7, 8, 9]) {
    busy = await poolThreads(poolSize, () => burst(cost));
    if (busy.length >= poolSize) break;
  }
  const changed: number[] = [];
  for (const tid of busy) {
    try {
      os.setPriority(tid, nice);
      changed.push(tid);
    } catch (err) {
      logger.warn({ err, tid }, 'could not lower the priority of a hashing thread');
    }
  }
  logger.debug({ threads: changed, nice }, 'hashing threads deprioritised');
  return changed;
}
