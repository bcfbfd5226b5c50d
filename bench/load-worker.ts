/**
 * A load worker: a child process (child_process.fork) that runs closed-loop virtual users (VUs)
 * against the server, the echo server, PostgreSQL or bcrypt, and sends back latency histograms.
 *
 * Each VU has one call in flight at a time. A group's VUs share `channels` real HTTP/2 connections:
 * every grpc-js Client is created with `grpc.use_local_subchannel_pool`, otherwise all clients of
 * one target share a single connection (and under WORKERS=N all calls would land on one worker).
 *
 * Timing of a job: every worker starts at `startAt`, warms up for `warmupMs`, then records the
 * calls that complete inside the measurement window. When the window ends, in-flight calls may
 * finish for `drainMs` (so a RefreshToken VU keeps a known-good token), then are cancelled.
 */
import {
  Client,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import bcrypt from 'bcrypt';
import pg from 'pg';
import { USER_COLUMNS } from '../src/db/sql.js';
import { AuthServiceService } from '../src/gen/connectsphere/auth/v1/auth.js';
import { User, UserServiceService } from '../src/gen/connectsphere/user/v1/user.js';
import {
  BIN_COUNT,
  binOf,
  encodeHistogram,
  type GroupResult,
  type GroupSpec,
  type JobResult,
  type JobSpec,
  newHistogram,
  type OpResult,
  type RunnerMessage,
  type WorkerContext,
  type WorkerMessage,
} from './protocol.js';
import {
  BATCH_SIZE,
  MIX,
  needsSessions,
  type Op,
  opsOf,
  PAGE_SIZE,
  type ServerOp,
  seededEmail,
} from './scenarios.js';

const WORKER = Number(process.env.BENCH_WORKER ?? 0);
const HARVEST_MAX = 2000;
const SELECT_USER_BY_ID = `SELECT ${USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL`;

let context: WorkerContext | undefined;

function send(message: WorkerMessage): void {
  process.send?.(message);
}

// --- calls ----------------------------------------------------------------------------------------

/** A call in flight that can be abandoned. */
interface Pending {
  promise: Promise<unknown>;
  cancel(): void;
  /** Let it finish when the window ends (a cancelled RefreshToken would leave its VU's token unknown). */
  drain?: boolean;
}

interface UnaryMethod<Req, Res> {
  path: string;
  requestSerialize: (value: Req) => Buffer;
  responseDeserialize: (value: Buffer) => Res;
}

function unary<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  token: string | undefined,
  deadlineMs: number,
  onResponse?: (response: Res) => void,
): Pending {
  let call: ClientUnaryCall | undefined;
  const promise = new Promise<void>((resolve, reject) => {
    const metadata = new Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    call = client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadata,
      { deadline: Date.now() + deadlineMs },
      (err, response) => {
        if (err) return reject(err);
        try {
          onResponse?.(response as Res);
          resolve();
        } catch (e) {
          reject(e); // never throw into grpc-js's callback
        }
      },
    );
  });
  return { promise, cancel: () => call?.cancel() };
}

const uncancellable = (promise: Promise<unknown>): Pending => ({ promise, cancel: () => {} });

const ECHO_METHOD: UnaryMethod<Buffer, User> = {
  path: '/bench.Echo/Echo',
  requestSerialize: (b) => b,
  // Decoded like a GetUser answer, so the client does the same work per call as for GetUser.
  responseDeserialize: (b) => User.decode(b),
};

function errorCode(err: unknown): string {
  const code = (err as Partial<ServiceError>)?.code;
  if (typeof code === 'number') return status[code] ?? `CODE_${code}`;
  if (typeof code === 'string') return code; // pg: SQLSTATE or a node error code
  return 'ERROR';
}

// --- recording -------------------------------------------------------------------------------------

class Recorder {
  ok = 0;
  errors: Record<string, number> = {};
  histogram = newHistogram();
  bins = new Array<number>(BIN_COUNT).fill(0);

  record(latencyUs: number, error: unknown, samples: Record<string, string>): void {
    if (error === undefined) {
      this.ok++;
      const us = Math.max(1, Math.round(latencyUs));
      this.histogram.recordValue(us);
      this.bins[binOf(us)] = (this.bins[binOf(us)] ?? 0) + 1;
      return;
    }
    const code = errorCode(error);
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    samples[code] ??= String((error as Error)?.message ?? error).slice(0, 300);
  }

  result(): OpResult {
    const out = {
      ok: this.ok,
      errors: this.errors,
      histogram: encodeHistogram(this.histogram),
      bins: this.bins,
    };
    this.histogram.destroy();
    return out;
  }
}

// --- virtual users ---------------------------------------------------------------------------------

interface Vu {
  index: number;
  client: Client | undefined;
  token: string;
  /** Newest refresh token of this VU's session; null when it has none. */
  refresh: string | null;
  /** A refresh call is in flight or was cancelled: the token's state is unknown. */
  refreshUncertain: boolean;
  pageToken: string;
  seq: number;
}

interface Clock {
  measureFrom: number;
  measureTo: number;
  stopped: boolean;
  recorded: number;
  quota: number;
  inflight: Set<Pending>;
}

const MIX_TABLE: ServerOp[] = Object.entries(MIX).flatMap(([op, weight]) =>
  new Array<ServerOp>(weight).fill(op as ServerOp),
);

const randInt = (n: number) => Math.floor(Math.random() * n);

class GroupRun {
  readonly recorders = new Map<Op, Recorder>();
  readonly errorSamples: Record<string, string> = {};
  readonly harvested: string[] = [];
  readonly spares: string[];
  readonly vus: Vu[] = [];
  vusLost = 0;
  private clients: Client[] = [];
  private pool: pg.Pool | undefined;

  constructor(
    readonly spec: GroupSpec,
    readonly index: number,
    private readonly ctx: WorkerContext,
    private readonly jobId: string,
  ) {
    for (const op of opsOf(spec.workload)) this.recorders.set(op, new Recorder());
    const sessions = needsSessions(spec.workload) ? [...(spec.sessions ?? [])] : [];
    this.spares = sessions.slice(spec.vus);
    const grpcTarget = spec.workload === 'echo' ? ctx.echoTarget : ctx.target;
    const usesGrpc = !['pgPointSelect', 'pgConnectSelect', 'bcryptCompare'].includes(spec.workload);
    if (usesGrpc) {
      for (let i = 0; i < Math.max(1, Math.min(spec.channels, spec.vus)); i++) {
        this.clients.push(
          new Client(grpcTarget, credentials.createInsecure(), {
            'grpc.use_local_subchannel_pool': 1,
            'grpc.max_receive_message_length': 16 * 1024 * 1024,
          }),
        );
      }
    }
    if (spec.workload === 'pgPointSelect') {
      this.pool = new pg.Pool({ connectionString: ctx.pgUrl, max: spec.pgPoolSize ?? spec.vus });
      this.pool.on('error', () => {});
    }
    for (let i = 0; i < spec.vus; i++) {
      const index = WORKER * 10_000 + i;
      this.vus.push({
        index,
        client: this.clients.length ? this.clients[i % this.clients.length] : undefined,
        token: ctx.accessTokens.length ? (ctx.accessTokens[index % ctx.accessTokens.length] as string) : '',
        refresh: sessions[i] ?? null,
        refreshUncertain: false,
        pageToken: '',
        seq: 0,
      });
    }
  }

  /** Connects every channel (and the pg pool) before the clock starts. */
  async prepare(): Promise<void> {
    const deadline = Date.now() + 10_000;
    await Promise.all(
      this.clients.map(
        (c) =>
          new Promise<void>((resolve, reject) =>
            c.waitForReady(deadline, (err) => (err ? reject(err) : resolve())),
          ),
      ),
    );
    if (this.pool) {
      const warm = Array.from({ length: this.spec.pgPoolSize ?? 1 }, () => this.pool?.query('SELECT 1'));
      await Promise.all(warm);
    }
  }

  private pick(vu: Vu): Op {
    if (this.spec.workload !== 'mixed') return this.spec.workload;
    for (;;) {
      const op = MIX_TABLE[randInt(MIX_TABLE.length)] as ServerOp;
      if (op !== 'refreshToken' || vu.refresh) return op;
    }
  }

  private start(op: Op, vu: Vu): Pending {
    const { ctx } = this;
    const client = vu.client as Client;
    const dl = ctx.deadlineMs;
    const randomId = () => ctx.ids[randInt(ctx.ids.length)] as string;
    const harvest = (r: { tokens?: { refreshToken: string } }) => {
      if (r.tokens && this.harvested.length < HARVEST_MAX) this.harvested.push(r.tokens.refreshToken);
    };
    switch (op) {
      case 'getUserById':
        return unary(
          client,
          UserServiceService.getUser,
          { lookup: { $case: 'id', value: randomId() } },
          vu.token,
          dl,
        );
      case 'getUserByEmail':
        return unary(
          client,
          UserServiceService.getUser,
          { lookup: { $case: 'email', value: seededEmail(1 + randInt(ctx.userCount)) } },
          vu.token,
          dl,
        );
      case 'batchGetUsers': {
        // consecutive seeded users: 50 distinct ids, at a random place
        const from = randInt(Math.max(1, ctx.ids.length - BATCH_SIZE));
        return unary(
          client,
          UserServiceService.batchGetUsers,
          { ids: ctx.ids.slice(from, from + BATCH_SIZE) },
          vu.token,
          dl,
        );
      }
      case 'listUsers':
        // each VU pages through the users in order, and starts again at the end
        return unary(
          client,
          UserServiceService.listUsers,
          { pageSize: PAGE_SIZE, pageToken: vu.pageToken, query: '' },
          vu.token,
          dl,
          (r) => {
            vu.pageToken = r.nextPageToken;
          },
        );
      case 'validateToken':
        return unary(
          client,
          AuthServiceService.validateToken,
          { accessToken: vu.token },
          undefined,
          dl,
          (r) => {
            if (!r.active) throw new Error('ValidateToken answered active=false for a live token');
          },
        );
      case 'login':
        return unary(
          client,
          AuthServiceService.login,
          { email: seededEmail(1 + randInt(ctx.userCount)), password: ctx.password },
          undefined,
          dl,
          harvest,
        );
      case 'register':
        return unary(
          client,
          AuthServiceService.register,
          {
            // unique per run, job, worker, group, VU and call
            email: `reg-${ctx.runTag}-${this.jobId}-w${WORKER}g${this.index}v${vu.index}n${vu.seq++}@bench.example.com`,
            password: ctx.password,
            displayName: `Bench Registrant ${vu.seq}`,
          },
          undefined,
          dl,
          harvest,
        );
      case 'refreshToken':
        return this.refresh(vu);
      case 'echo':
        return unary(client, ECHO_METHOD, Buffer.from(ctx.echoPayload, 'base64'), undefined, dl);
      case 'pgPointSelect':
        return uncancellable((this.pool as pg.Pool).query(SELECT_USER_BY_ID, [randomId()]));
      case 'pgConnectSelect':
        return uncancellable(
          (async () => {
            const c = new pg.Client({ connectionString: ctx.pgUrl });
            c.on('error', () => {});
            await c.connect();
            try {
              await c.query(SELECT_USER_BY_ID, [randomId()]);
            } finally {
              await c.end();
            }
          })(),
        );
      case 'bcryptCompare':
        return uncancellable(
          bcrypt.compare(ctx.password, ctx.bcryptHash).then((ok) => {
            if (!ok) throw new Error('bcrypt compare returned false');
          }),
        );
    }
  }

  /** RefreshToken with this VU's own session, always with its newest refresh token. */
  private refresh(vu: Vu): Pending {
    vu.refreshUncertain = true;
    const pending = unary(
      vu.client as Client,
      AuthServiceService.refreshToken,
      { refreshToken: vu.refresh as string },
      undefined,
      this.ctx.deadlineMs,
      (r) => {
        if (r.tokens) vu.refresh = r.tokens.refreshToken;
        vu.refreshUncertain = false;
      },
    );
    pending.drain = true;
    pending.promise.catch((err: unknown) => {
      if ((err as ServiceError).code !== status.UNAUTHENTICATED) return;
      // The session is gone (e.g. an earlier answer was lost and the retry counted as a replay).
      vu.refresh = this.spares.pop() ?? null;
      vu.refreshUncertain = false;
      if (!vu.refresh) this.vusLost++;
    });
    return pending;
  }

  async loop(vu: Vu, clock: Clock): Promise<void> {
    if (this.spec.workload === 'refreshToken' && !vu.refresh) {
      this.vusLost++;
      return;
    }
    while (!clock.stopped) {
      if (this.spec.workload === 'refreshToken' && !vu.refresh) return;
      const op = this.pick(vu);
      const started = performance.now();
      const pending = this.start(op, vu);
      clock.inflight.add(pending);
      let error: unknown;
      try {
        await pending.promise;
      } catch (err) {
        error = err ?? new Error('rejected');
      }
      clock.inflight.delete(pending);
      const ended = performance.now();
      if (this.spec.record !== false && ended >= clock.measureFrom && ended <= clock.measureTo) {
        this.recorders.get(op)?.record((ended - started) * 1000, error, this.errorSamples);
        if (error === undefined && ++clock.recorded >= clock.quota) {
          clock.measureTo = ended;
          clock.stopped = true;
        }
      }
    }
  }

  async finish(): Promise<GroupResult> {
    for (const c of this.clients) c.close();
    await this.pool?.end().catch(() => {});
    const ops: GroupResult['ops'] = {};
    for (const [op, r] of this.recorders) ops[op] = r.result();
    const sessionsOut = needsSessions(this.spec.workload)
      ? [
          ...this.vus.filter((v) => v.refresh && !v.refreshUncertain).map((v) => v.refresh as string),
          ...this.spares,
        ]
      : [];
    return {
      label: this.spec.label,
      ops,
      sessionsOut,
      harvested: this.harvested,
      vusLost: this.vusLost,
      errorSamples: this.errorSamples,
    };
  }
}

// --- jobs ------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function runJob(job: JobSpec, ctx: WorkerContext): Promise<JobResult> {
  const groups = job.groups.map((spec, i) => new GroupRun(spec, i, ctx, job.id));
  await Promise.all(groups.map((g) => g.prepare()));
  const lateMs = Math.max(0, Date.now() - job.startAt);
  await sleep(job.startAt - Date.now());

  const t0 = performance.now();
  const clock: Clock = {
    measureFrom: t0 + job.warmupMs,
    measureTo: Number.POSITIVE_INFINITY,
    stopped: false,
    recorded: 0,
    quota: job.requests > 0 ? job.requests : Number.POSITIVE_INFINITY,
    inflight: new Set(),
  };
  let cpuAtStart = process.cpuUsage();
  const warm = setTimeout(() => {
    cpuAtStart = process.cpuUsage();
  }, job.warmupMs);
  // The window ends after durationMs, or later for slow ops, once minSamples OK calls were recorded.
  const stop = setInterval(() => {
    const now = performance.now();
    if (now < t0 + job.warmupMs + job.durationMs) return;
    if (clock.recorded < job.minSamples && now < t0 + job.warmupMs + job.maxDurationMs) return;
    clock.measureTo = Math.min(clock.measureTo, now);
    clock.stopped = true;
  }, 10);

  const loops = groups.flatMap((g) => g.vus.map((vu) => g.loop(vu, clock)));
  // Ends when every VU has stopped (duration over, or the request quota reached).
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (clock.stopped) {
        clearInterval(check);
        resolve();
      }
    }, 5);
    void Promise.all(loops).then(() => {
      clock.stopped = true;
    });
  });
  clearInterval(stop);
  clearTimeout(warm);
  const cpu = process.cpuUsage(cpuAtStart);
  const windowMs = Math.max(1, Math.min(clock.measureTo, performance.now()) - clock.measureFrom);
  // Calls still in flight are not recorded: cancel them (the server drops a cancelled call that
  // waits for a bcrypt slot), except refreshes, which may finish for up to drainMs.
  for (const p of clock.inflight) if (!p.drain) p.cancel();
  await Promise.race([Promise.all(loops), sleep(job.drainMs)]);
  for (const p of clock.inflight) p.cancel();
  await Promise.all(loops);

  return {
    id: job.id,
    worker: WORKER,
    windowMs,
    lateMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    groups: await Promise.all(groups.map((g) => g.finish())),
  };
}

process.on('message', (message: RunnerMessage) => {
  if (message.type === 'context') {
    context = message.context;
  } else if (message.type === 'run') {
    const { job } = message;
    if (!context) {
      send({ type: 'failed', id: job.id, error: 'no context received before the job' });
      return;
    }
    runJob(job, context).then(
      (result) => send({ type: 'result', result }),
      (err: unknown) => send({ type: 'failed', id: job.id, error: String((err as Error)?.stack ?? err) }),
    );
  } else if (message.type === 'exit') {
    process.exit(0);
  }
});
// The runner went away (or crashed): never outlive it.
process.on('disconnect', () => process.exit(0));
send({ type: 'hello', worker: WORKER, pid: process.pid });
