/**
 * The server as its own process (`src/main.ts` through tsx), for start-up, signal and restart tests:
 * a thin layer over bench/lib/server-process.ts, which the bench and the soak share.
 */
import path from 'node:path';
import {
  type ChildProc,
  type Exit,
  type LaunchOptions,
  ROOT,
  runToExit,
  startServer,
} from '../../bench/lib/server-process.js';
import { connect } from '../../src/client.js';
import { newAccount } from './server.js';
import { until } from './wait.js';

const TSX = ['--import', import.meta.resolve('tsx')];
const ts = (file: string, env: Record<string, string>, args: string[] = []): LaunchOptions => ({
  script: path.join(ROOT, file),
  args,
  nodeArgs: TSX,
  env: { NODE_ENV: 'test', OPS_PORT: '0', ...env },
});

export interface ServerProcess {
  child: ChildProc['child'];
  port: number;
  /** stdout and stderr lines so far. */
  output: string[];
  exited: Promise<Exit>;
  /** Resolves when a line matching `re` has been printed. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
}

/** Starts the server and resolves once it reports SERVING. */
export function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  return startServer(
    ts('src/main.ts', { GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', BCRYPT_ROUNDS: '4', ...env }),
  );
}

/** Runs the server expecting it to exit by itself (e.g. on a bad configuration). */
export const runUntilExit = (env: Record<string, string>, timeoutMs = 30_000) =>
  runToExit(ts('src/main.ts', env), timeoutMs);

/** Runs an operator command (src/cli.ts) to completion. */
export const runCli = (args: string[], env: Record<string, string>, timeoutMs = 30_000) =>
  runToExit(ts('src/cli.ts', env, args), timeoutMs);

/**
 * Registers an account on a WORKERS server, then calls GetUser `calls` times, each on a connection of
 * its own (the cluster spreads connections, not calls); returns the pids of the workers that served
 * those GetUsers, from their log lines.
 */
export async function getUserOnSeveralWorkers(proc: ServerProcess, calls = 6): Promise<Set<number>> {
  const acct = newAccount('workers');
  const first = connect(`127.0.0.1:${proc.port}`);
  const reg = await first.auth.register(acct);
  first.close();
  for (let i = 0; i < calls; i++) {
    const c = connect(`127.0.0.1:${proc.port}`, {
      token: reg.tokens?.accessToken,
      channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
    });
    await c.users.getUser({ lookup: { $case: 'email', value: acct.email } });
    c.close();
  }
  // a worker writes its line after it answered, through the primary's pipe: wait for all of them
  const lines = () => proc.output.filter((l) => l.includes('UserService/GetUser'));
  await until(`the ${calls} GetUser log lines`, () => lines().length >= calls, 10_000);
  return new Set(lines().map((l) => (JSON.parse(l) as { worker: number }).worker));
}
