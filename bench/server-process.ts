/**
 * The production server under test, as its own process: `node dist/src/main.js` (built by the
 * runner's first step) with a clean environment, in an empty working directory (so no developer
 * `.env` changes what is measured).
 *
 * Ready means: the `{"msg":"SERVING"}` line on stdout, or — since that line is logged at `info`
 * and load runs use LOG_LEVEL=warn — the port accepting connections and grpc.health.v1 answering
 * SERVING. Start-up time is measured from spawn to ready.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus, HealthService } from '../src/gen/health/v1/health.js';
import { SERVER_MAIN } from './paths.js';
import { nodeProcessCount } from './proc-stats.js';

export interface ServerOptions {
  dataDir: string;
  port: number;
  env: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  timeoutMs?: number;
}

export interface RunningServer {
  child: ChildProcess;
  pid: number;
  port: number;
  address: string;
  /** ms from spawn to ready */
  startupMs: number;
  /** How readiness was seen: the SERVING log line or the health check. */
  readyBy: 'log' | 'health';
  /** Node processes in the server's tree once ready (1 without a cluster). */
  nodeProcs: number;
  /** Last lines of stdout/stderr, for error messages. */
  tail(): string;
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** One grpc.health.v1 Check of the overall status ("") with a fresh channel. */
export async function healthStatus(
  address: string,
  timeoutMs = 2000,
): Promise<HealthCheckResponse_ServingStatus> {
  const client = new Client(address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  try {
    return await new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        HealthService.check.path,
        HealthService.check.requestSerialize,
        HealthService.check.responseDeserialize,
        { service: '' },
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(err) : resolve(res?.status ?? HealthCheckResponse_ServingStatus.UNKNOWN)),
      ),
    );
  } finally {
    client.close();
  }
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-bench-cwd-'));
  const started = performance.now();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), SERVER_MAIN], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? cwd,
      ...options.env,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: String(options.port),
      DATA_DIR: options.dataDir,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let sawServing = false;
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buf += chunk;
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const line of parts) {
        if (line.includes('"msg":"SERVING"')) sawServing = true;
        lines.push(line);
        if (lines.length > 50) lines.shift();
      }
    });
  }
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      fs.rmSync(cwd, { recursive: true, force: true });
      resolve(exit);
    }),
  );
  const tail = () => lines.join('\n');
  const address = `127.0.0.1:${options.port}`;

  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  let readyBy: RunningServer['readyBy'] | undefined;
  while (!readyBy) {
    if (exit) throw new Error(`the server exited during start-up (${JSON.stringify(exit)}):\n${tail()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the server was not ready within ${options.timeoutMs ?? 120_000} ms:\n${tail()}`);
    }
    if (sawServing) readyBy = 'log';
    else if (await canConnect(options.port)) {
      const st = await healthStatus(address).catch(() => HealthCheckResponse_ServingStatus.UNKNOWN);
      if (st === HealthCheckResponse_ServingStatus.SERVING) readyBy = sawServing ? 'log' : 'health';
    }
    if (!readyBy) await sleep(10);
  }
  const startupMs = performance.now() - started;
  const pid = child.pid as number;

  return {
    child,
    pid,
    port: options.port,
    address,
    startupMs,
    readyBy,
    nodeProcs: nodeProcessCount(pid),
    tail,
    async stop(timeoutMs = 30_000) {
      const t0 = performance.now();
      if (!exit) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      const done = await exited;
      return { ...done, ms: performance.now() - t0 };
    },
  };
}
