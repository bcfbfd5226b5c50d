/**
 * The server (or the operator CLI) as its own process, for the tests, the bench and the soak:
 * a clean environment (PATH and HOME, then only what the caller gives: no developer `.env` or
 * DATABASE_URL leaks in) in an empty temporary working directory, stdout and stderr captured as
 * lines. The bench and the soak run the compiled `dist/src/main.js` with plain node; the tests run
 * `src/main.ts` through tsx (`nodeArgs: ['--import', tsx]`).
 *
 * Ready means the `"msg":"SERVING"` log line, or, when the port is known beforehand (the bench runs
 * at LOG_LEVEL=warn, where that line is not written), grpc.health.v1 answering SERVING.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { promiseClient } from '../../src/client.js';
import * as health from '../../src/gen/health/v1/health.js';

/** The repository root: the nearest folder above this file with a package.json (bench/ or dist/bench/). */
export const ROOT = (() => {
  let dir = import.meta.dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && dir !== path.dirname(dir)) dir = path.dirname(dir);
  return dir;
})();
export const SERVER_JS = path.join(ROOT, 'dist/src/main.js');

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export interface LaunchOptions {
  script: string;
  args?: string[];
  /** The child's whole environment besides PATH and HOME. */
  env?: Record<string, string>;
  /** Node flags before the script, e.g. `--import <tsx>` or `--cpu-prof`. */
  nodeArgs?: string[];
  /** Keep only the last this many lines in `output` (default: all; a soak writes millions). */
  maxLines?: number;
  /** Called with every line of stdout and stderr. */
  onLine?: (line: string) => void;
}

export interface ChildProc {
  child: ChildProcess;
  /** stdout and stderr lines so far. */
  output: string[];
  exited: Promise<Exit>;
  /** Resolves with the first line matching `re` (printed before or after the call). */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (default SIGTERM; null: none), SIGKILL after `timeoutMs`; resolves with the exit. */
  stop(signal?: NodeJS.Signals | null, timeoutMs?: number): Promise<Exit>;
}

export function launch(o: LaunchOptions): ChildProc {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-proc-'));
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), o.script, ...(o.args ?? [])], {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? cwd, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const listeners = new Set<(line: string) => void>();
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (buf + chunk).split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        output.push(line);
        if (o.maxLines && output.length > o.maxLines) output.shift();
        o.onLine?.(line);
        for (const l of listeners) l(line);
      }
    });
  }
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      fs.rmSync(cwd, { recursive: true, force: true });
      exit = { code, signal };
      resolve(exit);
    }),
  );
  const waitForLine = (re: RegExp, timeoutMs = 60_000) =>
    new Promise<string>((resolve, reject) => {
      const seen = output.find((l) => re.test(l));
      if (seen) return resolve(seen);
      const done = (err?: Error, line?: string) => {
        clearTimeout(timer);
        listeners.delete(check);
        if (err) reject(err);
        else resolve(line as string);
      };
      const fail = (why: string) => new Error(`${why}; output:\n${output.slice(-50).join('\n')}`);
      const check = (line: string) => re.test(line) && done(undefined, line);
      const timer = setTimeout(() => done(fail(`no line matching ${re} within ${timeoutMs} ms`)), timeoutMs);
      listeners.add(check);
      void exited.then(() => listeners.has(check) && done(fail(`the process exited before printing ${re}`)));
    });
  const stop = async (signal: NodeJS.Signals | null = 'SIGTERM', timeoutMs = 30_000) => {
    if (!exit && signal) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const result = await exited;
    clearTimeout(timer);
    return result;
  };
  return { child, output, exited, waitForLine, stop };
}

/** Runs a process expecting it to exit by itself (a config error, a CLI command); SIGKILL after `timeoutMs`. */
export async function runToExit(o: LaunchOptions, timeoutMs = 30_000) {
  const proc = launch(o);
  const { code } = await proc.stop(null, timeoutMs);
  return { code, output: proc.output.join('\n') };
}

/** Whether grpc.health.v1 answers SERVING for the whole server, asked on a fresh channel. */
async function healthy(address: string) {
  const options = { 'grpc.use_local_subchannel_pool': 1 };
  const channel = new health.HealthClient(address, credentials.createInsecure(), options);
  const answer = await promiseClient(health.HealthService, channel, { deadlineMs: 500 })
    .check({ service: '' })
    .catch(() => undefined);
  channel.close();
  return answer?.status === health.HealthCheckResponse_ServingStatus.SERVING;
}

export type ServerProc = Awaited<ReturnType<typeof startServer>>;

/**
 * Launches a server and resolves once it serves, with its port and address, `startupMs` from spawn
 * to ready and `readyBy`. With `port` (its GRPC_PORT, which the caller also sets in `env`) readiness
 * may come from the health service too; without, the SERVING line must appear and gives the port.
 */
export async function startServer(o: LaunchOptions & { port?: number; timeoutMs?: number }) {
  const started = performance.now();
  const timeoutMs = o.timeoutMs ?? 60_000;
  const proc = launch(o);
  const port = (line: string) => (JSON.parse(line) as { port: number }).port;
  const serving = proc.waitForLine(/"msg":"SERVING"/, timeoutMs);
  const fromLog = serving.then((l) => ({ port: port(l), readyBy: 'log' as const }));
  let polling = o.port !== undefined;
  const fromHealth = async () => {
    while (polling) {
      if (await healthy(`127.0.0.1:${o.port}`)) return { port: o.port as number, readyBy: 'health' as const };
      await new Promise((r) => setTimeout(r, 20));
    }
    return new Promise<never>(() => {});
  };
  try {
    const ready = await Promise.race(polling ? [fromLog, fromHealth()] : [fromLog]);
    return { ...proc, ...ready, address: `127.0.0.1:${ready.port}`, startupMs: performance.now() - started };
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  } finally {
    polling = false;
    fromLog.catch(() => {});
  }
}
