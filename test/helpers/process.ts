/** The server as its own process (`node src/main.ts` through tsx), for start-up, signal and restart tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'src/main.ts');
const CLI = path.join(ROOT, 'src/cli.ts');
const TSX = import.meta.resolve('tsx');

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  /** stdout and stderr lines so far. */
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when a line matching `re` has been printed. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
}

function launch(
  env: Record<string, string>,
  script = MAIN,
  args: string[] = [],
): Omit<ServerProcess, 'port'> {
  // A clean environment (no DATABASE_URL or .env of the developer's) in an empty working directory.
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-proc-'));
  const child = spawn(process.execPath, ['--import', TSX, script, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const listeners = new Set<(line: string) => void>();
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        output.push(line);
        for (const l of listeners) l(line);
      }
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      fs.rmSync(cwd, { recursive: true, force: true });
      resolve({ code, signal });
    }),
  );
  const waitForLine = (re: RegExp, timeoutMs = 60_000) =>
    new Promise<string>((resolve, reject) => {
      const seen = output.find((l) => re.test(l));
      if (seen) return resolve(seen);
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`no line matching ${re} within ${timeoutMs} ms; output:\n${output.join('\n')}`));
      }, timeoutMs);
      const check = (line: string) => {
        if (!re.test(line)) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(line);
      };
      listeners.add(check);
      void exited.then(() => {
        if (!listeners.has(check)) return;
        clearTimeout(timer);
        listeners.delete(check);
        reject(new Error(`server exited before printing ${re}; output:\n${output.join('\n')}`));
      });
    });
  return { child, output, exited, waitForLine };
}

/** Starts the server and resolves once it reports SERVING. */
export async function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const proc = launch({ GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', BCRYPT_ROUNDS: '4', ...env });
  const line = await proc.waitForLine(/"msg":"SERVING"/);
  return { ...proc, port: (JSON.parse(line) as { port: number }).port };
}

/** Runs the server expecting it to exit by itself (e.g. on a bad configuration). */
export async function runUntilExit(env: Record<string, string>, timeoutMs = 30_000) {
  const proc = launch(env);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const { code } = await proc.exited;
  clearTimeout(timer);
  return { code, output: proc.output.join('\n') };
}

/** Runs an operator command (src/cli.ts) to completion. */
export async function runCli(args: string[], env: Record<string, string>, timeoutMs = 30_000) {
  const proc = launch(env, CLI, args);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const { code } = await proc.exited;
  clearTimeout(timer);
  return { code, output: proc.output.join('\n') };
}
