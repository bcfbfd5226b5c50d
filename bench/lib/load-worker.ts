/**
 * A load worker (forked by load.ts): closed-loop virtual users (VUs), one call in flight each,
 * against the server, the echo server, PostgreSQL or bcrypt; sends back HDR histograms.
 *
 * A group's VUs share `channels` real HTTP/2 connections: each grpc-js Client is made with
 * `grpc.use_local_subchannel_pool`, or all clients of one target would share one connection (and
 * under WORKERS=N every call would land on one worker). Every worker starts at `startAt`, warms up,
 * then records the calls that complete inside the window; then calls in flight are cancelled,
 * except refreshes, which may finish for 3 s so each VU keeps a token it knows is live.
 */
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import bcrypt from 'bcrypt';
import * as hdr from 'hdr-histogram-js';
import pg from 'pg';
import { AuthServiceService as A } from '../../src/gen/connectsphere/auth/v1/auth.js';
import { UserServiceService as U, User } from '../../src/gen/connectsphere/user/v1/user.js';
import type { GroupRequest, GroupResult, JobSpec, Op, ServerOp } from './load.js';
import * as load from './load.js';

/** The columns GetUser reads, by primary key: the raw-pg ceiling's point-select. */
const SELECT_USER = `SELECT id, email, display_name AS "displayName", roles, created_at AS "createTime",
  updated_at AS "updateTime" FROM users WHERE id = $1 AND deleted_at IS NULL`;
const send = (m: load.WorkerMessage) => process.send?.(m);
const randInt = (n: number) => Math.floor(Math.random() * n);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const fail = (message: string): never => {
  throw new Error(message);
};
const MIX_TABLE = Object.entries(load.MIX).flatMap(([op, w]) => new Array<ServerOp>(w).fill(op as ServerOp));
const ECHO = { path: '/bench.Echo/Echo', requestSerialize: Buffer.from, responseDeserialize: User.decode };
/** n in k near-equal parts, larger ones first. */
const split = (n: number, k: number) =>
  Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));

interface Pending {
  promise: Promise<unknown>;
  cancel(): void;
  /** May finish after the window (a cancelled refresh would leave its VU's token unknown). */
  drain?: boolean;
}
interface Method<Req, Res> {
  path: string;
  requestSerialize: (v: Req) => Buffer;
  responseDeserialize: (b: Buffer) => Res;
}
interface Vu {
  n: number;
  client: Client;
  token: string;
  /** Newest refresh token of this VU's session; `unsure` while a refresh is in flight or was cancelled. */
  refresh: string | null;
  unsure: boolean;
  pageToken: string;
  seq: number;
}
type Recorder = Omit<load.OpResult, 'histogram'> & { histogram: hdr.Histogram };
type Clock = { from: number; to: number; stopped: boolean; inflight: Set<Pending> };
type Out = Omit<GroupResult, 'ops' | 'label'>;
const ok = () => undefined;
const rec = (): Recorder => ({ ok: 0, errors: {}, bins: Array(80).fill(0), histogram: load.newHistogram() });
type SignedIn = { tokens?: { refreshToken: string } };
type CallOpts<Res> = { token?: string; expect?: status; onOk?: (r: Res) => void };
const LOCAL_POOL = { 'grpc.use_local_subchannel_pool': 1 };
/** VU n's address in 198.18.0.0/15, the range set aside for benchmarks (RFC 2544). */
const clientAddress = (n: number) => `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;

class Group {
  readonly recorders = new Map<Op, Recorder>();
  readonly out: Out = { sessionsOut: [], registered: [], vusLost: 0, errorSamples: {} };
  readonly spares: string[];
  readonly vus: Vu[] = [];
  private readonly clients: Client[] = [];
  private readonly pool?: pg.Pool;

  private readonly tag: string;

  constructor(
    readonly g: GroupRequest,
    job: JobSpec,
    private readonly ctx: load.WorkerContext,
  ) {
    this.tag = `${job.id}w${job.worker}`;
    const { worker: w, workers: n } = job;
    const share = split(g.concurrency, Math.min(g.maxProcs ?? n, n));
    const [vus, own] = [share[w] ?? 0, share.slice(0, w).reduce((a, b) => a + b, 0)];
    // this worker's VUs get consecutive sessions; the spares are dealt round-robin
    const all = load.needsSessions(g.workload) ? (g.sessions ?? []) : [];
    const sessions = all.slice(own, own + vus);
    this.spares = all.slice(g.concurrency).filter((_, i) => i % n === w);
    for (const op of g.workload === 'mixed' ? Object.keys(load.MIX) : [g.workload])
      this.recorders.set(op as Op, rec());
    const target = (g.workload === 'echo' ? ctx.echoTarget : ctx.target) as string;
    for (let i = 0; i < Math.min(job.channels, vus); i++)
      this.clients.push(new Client(target, credentials.createInsecure(), LOCAL_POOL));
    const max = g.pgPoolTotal && Math.max(1, Math.ceil((g.pgPoolTotal * vus) / g.concurrency));
    if (g.workload === 'pgPointSelect' && vus) this.pool = new pg.Pool({ connectionString: ctx.pgUrl, max });
    this.pool?.on('error', () => {});
    for (let i = 0; i < vus; i++) {
      const [n, client] = [w * 10_000 + i, this.clients[i % this.clients.length] as Client];
      const token = ctx.accessTokens[n % Math.max(1, ctx.accessTokens.length)] ?? '';
      this.vus.push({ n, client, token, refresh: sessions[i] ?? null, unsure: false, pageToken: '', seq: 0 });
    }
  }

  /** Connects every channel and the pg pool before the clock starts. */
  async prepare() {
    const deadline = Date.now() + 10_000;
    const ready = (c: Client) => new Promise((y, n) => c.waitForReady(deadline, (e) => (e ? n(e) : y(0))));
    await Promise.all(this.clients.map(ready));
    const pool = this.pool;
    if (pool) await Promise.all(Array.from({ length: pool.options.max }, () => pool.query('SELECT 1')));
  }

  /** One unary call; with `expect`, that status is the success and OK a failure. */
  private call<Req, Res>(vu: Vu, m: Method<Req, Res>, request: Req, o: CallOpts<Res> = {}): Pending {
    let call: { cancel(): void } | undefined;
    const promise = new Promise<void>((resolve, reject) => {
      const md = new Metadata();
      if (o.token) md.set('authorization', `Bearer ${o.token}`);
      md.set('x-forwarded-for', clientAddress(vu.n)); // each VU is a client of its own (see BENCH_SERVER_ENV)
      const { path, requestSerialize: ser, responseDeserialize: de } = m;
      const options = { deadline: Date.now() + this.ctx.deadlineMs };
      call = vu.client.makeUnaryRequest(path, ser, de, request, md, options, (err, res) => {
        if (o.expect !== undefined)
          return err?.code === o.expect ? resolve() : reject(err ?? new Error('OK'));
        if (err) return reject(err);
        try {
          o.onOk?.(res as Res);
          resolve();
        } catch (e) {
          reject(e); // never throw into grpc-js's callback
        }
      });
    });
    return { promise, cancel: () => call?.cancel() };
  }

  private start(op: Op, vu: Vu): Pending {
    const { ctx, out } = this;
    const token = ctx.spreadTokens ? (ctx.accessTokens[randInt(ctx.accessTokens.length)] ?? '') : vu.token;
    const auth = { token };
    const id = () => ctx.ids[randInt(ctx.ids.length)] as string;
    const email = () => load.seededEmail(1 + randInt(ctx.userCount));
    const unique = (what: string) =>
      `${what}-${ctx.runTag}-${this.tag}v${vu.n}n${vu.seq++}@bench.example.com`;
    const signedIn = (r: SignedIn) =>
      r.tokens && out.sessionsOut.length < 2000 && out.sessionsOut.push(r.tokens.refreshToken);
    const local = (promise: Promise<unknown>): Pending => ({ promise, cancel: () => {} });
    const from = randInt(Math.max(1, ctx.ids.length - 50));
    const unauthenticated = { expect: status.UNAUTHENTICATED };
    switch (op) {
      case 'getUserById':
        return this.call(vu, U.getUser, { lookup: { $case: 'id', value: id() } }, auth);
      case 'getUserByEmail':
        return this.call(vu, U.getUser, { lookup: { $case: 'email', value: email() } }, auth);
      case 'batchGetUsers':
        return this.call(vu, U.batchGetUsers, { ids: ctx.ids.slice(from, from + 50) }, auth);
      case 'listUsers': {
        // each VU pages through the users in order, then starts again
        const onOk = (r: { nextPageToken: string }) => Object.assign(vu, { pageToken: r.nextPageToken });
        const page = { pageSize: 50, pageToken: vu.pageToken, query: '' };
        return this.call(vu, U.listUsers, page, { ...auth, onOk });
      }
      case 'validateToken': {
        const onOk = (r: { active: boolean }) => r.active || fail('active=false for a live token');
        // the caller is a service with tokens.introspect, as production requires (INTROSPECTION_AUTH)
        const introspector = { token: ctx.introspectionToken, onOk };
        return this.call(vu, A.validateToken, { accessToken: token }, introspector);
      }
      case 'login':
        return this.call(vu, A.login, { email: email(), password: ctx.password }, { onOk: signedIn });
      case 'loginWrongPassword':
        return this.call(vu, A.login, { email: email(), password: `not ${ctx.password}` }, unauthenticated);
      case 'loginUnknownEmail':
        return this.call(vu, A.login, { email: unique('ghost'), password: ctx.password }, unauthenticated);
      case 'register': {
        const request = { email: unique('reg'), password: ctx.password, displayName: `Bench ${vu.seq}` };
        const onOk = (r: SignedIn) => {
          signedIn(r);
          out.registered.push(request.email);
        };
        return this.call(vu, A.register, request, { onOk });
      }
      case 'refreshToken':
        return this.refresh(vu);
      case 'echo':
        return this.call(vu, ECHO, Buffer.from(ctx.echoPayload ?? '', 'base64'));
      case 'pgPointSelect':
        return local((this.pool as pg.Pool).query(SELECT_USER, [id()]));
      case 'pgConnectSelect': {
        const c = new pg.Client({ connectionString: ctx.pgUrl });
        c.on('error', () => {});
        return local(c.connect().then(() => c.query(SELECT_USER, [id()]).finally(() => c.end())));
      }
      case 'bcryptCompare':
        return local(bcrypt.compare(ctx.password, ctx.bcryptHash ?? '').then((ok) => ok || fail('no match')));
    }
  }

  /** RefreshToken on this VU's own session, always with its newest token. */
  private refresh(vu: Vu): Pending {
    vu.unsure = true;
    const onOk = (r: SignedIn) =>
      Object.assign(vu, { refresh: r.tokens?.refreshToken ?? null, unsure: false });
    const p = this.call(vu, A.refreshToken, { refreshToken: vu.refresh ?? '' }, { onOk });
    p.promise.catch((err: ServiceError) => {
      if (err?.code !== status.UNAUTHENTICATED) return;
      // the session is gone (an earlier answer was lost and the retry counted as a replay)
      [vu.refresh, vu.unsure] = [this.spares.pop() ?? null, false];
      if (!vu.refresh) this.out.vusLost++;
    });
    return { ...p, drain: true };
  }

  async loop(vu: Vu, clock: Clock) {
    const { workload, record = true } = this.g;
    if (workload === 'refreshToken' && !vu.refresh) this.out.vusLost++;
    while (!clock.stopped && !(workload === 'refreshToken' && !vu.refresh)) {
      let op: load.Workload = workload;
      while (op === 'mixed' || (op === 'refreshToken' && !vu.refresh))
        op = MIX_TABLE[randInt(MIX_TABLE.length)] as ServerOp;
      const [started, pending] = [performance.now(), this.start(op as Op, vu)];
      clock.inflight.add(pending);
      const error = await pending.promise.then(ok, (err: unknown) => err ?? new Error('rejected'));
      clock.inflight.delete(pending);
      const [ended, r] = [performance.now(), this.recorders.get(op as Op) as Recorder];
      if (!record || ended < clock.from || ended > clock.to) continue;
      if (error === undefined) {
        const us = Math.max(1, Math.round((ended - started) * 1000));
        r.ok++;
        r.histogram.recordValue(us);
        r.bins[load.binOf(us)]++;
        continue;
      }
      const c = (error as Partial<ServiceError>).code;
      const code = typeof c === 'number' ? (status[c] ?? `CODE_${c}`) : typeof c === 'string' ? c : 'ERROR';
      r.errors[code] = (r.errors[code] ?? 0) + 1;
      this.out.errorSamples[code] ??= String((error as Error).message ?? error).slice(0, 300);
    }
  }

  async finish(): Promise<GroupResult> {
    for (const c of this.clients) c.close();
    await this.pool?.end().catch(() => {});
    const ops: GroupResult['ops'] = {};
    for (const [op, { histogram, ...r }] of this.recorders) {
      ops[op] = { ...r, histogram: hdr.encodeIntoCompressedBase64(histogram) };
      histogram.destroy();
    }
    const live = this.vus.filter((v) => v.refresh && !v.unsure).map((v) => v.refresh as string);
    if (load.needsSessions(this.g.workload)) this.out.sessionsOut.push(...live, ...this.spares);
    return { label: this.g.label, ops, ...this.out };
  }
}

async function runJob(job: JobSpec, ctx: load.WorkerContext): Promise<load.WorkerMessage> {
  const groups = job.groups.map((g) => new Group(g, job, ctx));
  await Promise.all(groups.map((g) => g.prepare()));
  await sleep(job.startAt - Date.now());
  const from = performance.now() + job.warmupMs;
  const clock: Clock = { from, to: from + job.durationMs, stopped: false, inflight: new Set() };
  let cpu = process.cpuUsage();
  const warm = setTimeout(() => {
    cpu = process.cpuUsage();
  }, job.warmupMs);
  const loops = Promise.all(groups.flatMap((g) => g.vus.map((vu) => g.loop(vu, clock))));
  await Promise.race([loops, sleep(clock.to - performance.now())]);
  [clock.stopped, clock.to] = [true, Math.min(clock.to, performance.now())];
  clearTimeout(warm);
  const used = process.cpuUsage(cpu);
  for (const p of clock.inflight) if (!p.drain) p.cancel();
  await Promise.race([loops, sleep(3000)]);
  for (const p of clock.inflight) p.cancel();
  await loops;
  const [windowMs, cpuMs] = [Math.max(1, clock.to - clock.from), (used.user + used.system) / 1000];
  return { type: 'result', windowMs, cpuMs, groups: await Promise.all(groups.map((g) => g.finish())) };
}

let context: load.WorkerContext | undefined;
process.on('message', (m: load.RunnerMessage) => {
  if (m.type === 'context') context = m.context;
  else if (!context) send({ type: 'failed', error: 'no context before the job' });
  else
    runJob(m.job, context).then(send, (err: unknown) =>
      send({ type: 'failed', error: String((err as Error)?.stack ?? err) }),
    );
});
process.on('disconnect', () => process.exit(0)); // never outlive the runner
send({ type: 'hello' });
