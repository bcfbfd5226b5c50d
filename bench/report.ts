/**
 * One bench run: its shape (the JSON file), its verdicts, and two renderings of the same blocks:
 * plain-text tables (stdout) and a self-contained HTML page (no scripts, no CDN; inline SVG charts:
 * RPS and p99 against concurrency with the ceilings, latency histograms).
 */
import { BINS_PER_DECADE, type GroupSummary, MIX, type ServerOp, type Summary } from './lib/load.js';
import type { Usage } from './lib/proc-stats.js';
import type { RevocationResult } from './lib/revocation.js';

export const SCENARIOS = {
  getUserById: { label: 'GetUser by id', ceiling: 'echo', target: 50 },
  getUserByEmail: { label: 'GetUser by email', ceiling: 'echo' },
  batchGetUsers: { label: 'BatchGetUsers (50 ids)', ceiling: 'echo' },
  listUsers: { label: 'ListUsers (page of 50)', ceiling: 'echo' },
  validateToken: { label: 'ValidateToken', ceiling: 'echo', target: 50 },
  login: { label: 'Login', ceiling: 'bcrypt', target: 8 },
  register: { label: 'Register', ceiling: 'bcrypt', target: 8 },
  refreshToken: { label: 'RefreshToken (rotation)', ceiling: 'echo' },
  mixed: { label: 'Mixed workload', ceiling: 'echo' },
} as const;
export type Scenario = keyof typeof SCENARIOS;
type Info = { label: string; ceiling: string; target?: number };
export const info = (s: string) => SCENARIOS[s as Scenario] as Info;

/** One measured group of one step (without the sessions it handed back). */
export interface Row extends Omit<GroupSummary, 'sessionsOut' | 'registered'> {
  /** Of the server, or the echo server for its ceiling. */
  usage?: Usage;
  clientCpuPct: number;
  /** The ceiling it is compared with: measured right before it (paired), else at the start. */
  ceiling?: { kind: string; concurrency: number; rps: number; p99Ms: number; ratio: number; paired: boolean };
  pgCeilingRps?: number;
}
export type Verdict = { result: 'PASS' | 'FAIL' | 'INFO'; target: string; measured: string };
export interface RunResult {
  startedAt: string;
  elapsedS: number;
  machine: { cpus: number; cpuModel: string; node: string; loadAvg: number[] };
  options: { quick: boolean; bcryptRounds: number; seedUsers: number } & Record<string, unknown>;
  server: {
    env: Record<string, string>;
    startups: { label: string; ms: number; readyBy: string }[];
    idleRssMb?: number;
    idleRssAfterMb?: number;
    notes: string[];
    profiles: string[];
  };
  ceilings: Row[];
  pooling?: { pooled: Row; perQuery: Row };
  scenarios: Row[];
  flood?: { alone: Row; during: Row; login: Row };
  loginTiming?: { wrong: Row; unknown: Row };
  workers?: { nodeProcs: number[]; rows: Row[] };
  /** GetUser c=50 on fresh servers without and with the operations port, alternating, two rounds. */
  opsPort?: { off: Row[]; on: Row[]; scrapes: number; everyMs: number };
  /** The read cache: working sets (CACHE=on), revocation across two instances, CACHE=off. */
  cache?: { rows: CacheRow[]; off: CacheRow[]; revocation: RevocationResult; workingSet: number };
  verdicts: Verdict[];
}

/** One c=50 step of the cache runs, with the echo ceiling measured right before it. */
export interface CacheRow {
  label: string;
  row: Row;
  echo: Row;
  /** CACHE=off: the pg point-select ceiling (one round trip per call). */
  pg?: Row;
  /** Hits / lookups on the server during the window, by kind (session, user). */
  hitRatio: Record<string, number | undefined>;
}

const fmt = (n: number | undefined, digits = 0) =>
  n === undefined || !Number.isFinite(n)
    ? '-'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ms = (n?: number) => fmt(n, n !== undefined && n < 10 ? 2 : 1);
const rps = (n?: number) => fmt(n, n !== undefined && n < 100 ? 1 : 0);
const pct = (n?: number) => (n === undefined ? '-' : `${fmt(n)}%`);
const errs = (r: Pick<Row, 'errors' | 'vusLost'>) =>
  Object.entries(r.errors)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ') + (r.vusLost ? ` (${r.vusLost} VUs lost)` : '') || '0';
export const ratio = (a = 0, b = 0) => a / Math.max(1e-9, b);

export function verdicts(run: RunResult): Verdict[] {
  const out: Verdict[] = [];
  const v = (ok: boolean | null, target: string, measured: string) =>
    out.push({ result: ok === null ? 'INFO' : ok ? 'PASS' : 'FAIL', target, measured });
  const at = (s: string, c: number) => run.scenarios.find((r) => r.workload === s && r.concurrency === c);
  for (const s of ['getUserById', 'validateToken']) {
    const [r, e, name] = [at(s, 50), at(s, 50)?.ceiling, `${info(s).label}, c=50`];
    if (!r || !e) continue;
    v(e.ratio >= 0.7, `${name}: RPS ≥ 0.7 × echo`, `${rps(r.rps)} vs ${rps(e.rps)} RPS = ${fmt(e.ratio, 2)}`);
    const measured = `${ms(r.p99Ms)} vs ${ms(e.p99Ms)} ms; errors ${errs(r)}`;
    v(r.p99Ms <= 3 * e.p99Ms && !r.errorTotal, `${name}: p99 ≤ 3 × echo p99, zero errors`, measured);
  }
  for (const s of ['login', 'register']) {
    const [r, e] = [at(s, 8), at(s, 8)?.ceiling];
    const target = `${info(s).label}, c=8: ≥ 0.9 × bcrypt ceiling (cost ${run.options.bcryptRounds})`;
    const measured = `${rps(r?.rps)} vs ${rps(e?.rps)} per s = ${fmt(e?.ratio, 2)}; errors ${r && errs(r)}`;
    if (r && e) v(e.ratio >= 0.9, target, measured);
  }
  const c100 = run.scenarios.filter((r) => r.concurrency === 100);
  const bad = c100
    .filter((r) => r.errorTotal || r.vusLost)
    .map((r) => `${info(r.workload).label}: ${errs(r)}`);
  const all = `0 errors in all ${c100.length} scenarios`;
  if (c100.length) v(!bad.length, 'c=100, default pool: zero errors, every scenario', bad.join('; ') || all);
  const { flood, loginTiming: lt, pooling: p, server, workers: w } = run;
  if (flood) {
    const x = ratio(flood.during.p99Ms, flood.alone.p99Ms);
    const measured = `${ms(flood.during.p99Ms)} vs ${ms(flood.alone.p99Ms)} ms alone = ${fmt(x, 2)}`;
    v(x <= 2, 'GetUser p99 during a login flood ≤ 2× alone (c=10; Login c=8)', measured);
  }
  if (lt) {
    const x = ratio(lt.unknown.p50Ms, lt.wrong.p50Ms);
    const measured = `${ms(lt.unknown.p50Ms)} vs ${ms(lt.wrong.p50Ms)} ms = ${fmt(x, 2)}`;
    v(x >= 0.8 && x <= 1.25, 'Login median: unknown email ÷ wrong password within 0.8–1.25', measured);
  }
  if (p) {
    const measured = `${rps(p.pooled.rps)} vs ${rps(p.perQuery.rps)} queries/s = ${fmt(ratio(p.pooled.rps, p.perQuery.rps), 1)} ×`;
    v(null, 'pooled vs new connection per query (the old claim: 10–100×)', measured);
  }
  const peak = fmt(Math.max(0, ...c100.map((r) => r.usage?.rssPeakMb ?? 0)));
  const rss = `idle ${fmt(server.idleRssMb)} MB; peak ${peak} MB at c=100; ${fmt(server.idleRssAfterMb)} MB idle after`;
  v(null, 'RSS', rss);
  const startups = server.startups.map((s) => `${s.label} ${fmt(s.ms)} ms`);
  v(null, 'start-up to SERVING, embedded database', startups.join('; '));
  if (w) {
    const [[one, two], honoured] = [w.rows.map((r) => r.rps), (w.nodeProcs[1] ?? 0) > (w.nodeProcs[0] ?? 0)];
    const procs = `${w.nodeProcs.join(' vs ')} Node processes${honoured ? '' : ': WORKERS=2 NOT honoured'}`;
    const measured = `${rps(one)} vs ${rps(two)} RPS = ${fmt(ratio(two, one), 2)}; ${procs}`;
    v(honoured ? null : false, 'GetUser by id c=50, WORKERS=1 vs 2', measured);
  }
  if (run.opsPort) {
    const { off, on, scrapes, everyMs } = run.opsPort;
    // the median of the rounds' costs: one round disturbed by the machine does not decide
    const costs = off.map((r, i) => 1 - ratio(on[i]?.rps, r.rps)).sort((a, b) => a - b);
    const mid = (costs.length - 1) / 2;
    const cost = ((costs[Math.floor(mid)] ?? 0) + (costs[Math.ceil(mid)] ?? 0)) / 2;
    const rounds = off.map((r, i) => `${rps(r.rps)} vs ${rps(on[i]?.rps)}`).join(', ');
    const measured = `${rounds} RPS (off vs on, by round): median cost ${fmt(cost * 100, 1)} %; ${scrapes} scrapes, one per ${everyMs} ms`;
    v(cost < 0.05, 'operations port (metrics collected and scraped) costs GetUser c=50 under 5 %', measured);
  }
  if (run.cache) {
    const { rows, off, revocation: r } = run.cache;
    const x = (c: CacheRow) => ratio(c.row.rps, c.echo.rps);
    const vsEcho = (c: CacheRow) => `${rps(c.row.rps)} vs ${rps(c.echo.rps)} RPS echo = ${fmt(x(c), 2)}`;
    const hits = (c: CacheRow) =>
      Object.entries(c.hitRatio)
        .filter(([, h]) => h !== undefined)
        .map(([k, h]) => `${k}s ${fmt((h ?? 0) * 100, 1)} % hits`)
        .join(', ');
    for (const c of rows.slice(0, 2))
      v(x(c) >= 0.9, `${c.label}, c=50: RPS ≥ 0.9 × echo`, `${vsEcho(c)}; ${hits(c)}; errors ${errs(c.row)}`);
    for (const c of rows.slice(2))
      v(
        null,
        `${c.label} (distinct users and sessions), c=50`,
        `${vsEcho(c)}; ${hits(c)}; errors ${errs(c.row)}`,
      );
    const late = `${r.lateTrue} active answers to requests sent > ${r.boundMs} ms after; ${r.neverSeen} trials never inactive`;
    v(
      r.p99Ms < r.boundMs && !r.lateTrue && !r.neverSeen,
      `revocation across instances (${r.trials} trials): B inactive within ${r.boundMs} ms at p99, never active after`,
      `p50 ${ms(r.p50Ms)}, p99 ${ms(r.p99Ms)}, max ${ms(r.maxMs)} ms after Logout returned on A; ${late}`,
    );
    v(
      !r.sameInstanceStale,
      `same instance: ValidateToken right after its own Logout is inactive, every trial`,
      `${r.sameInstanceStale} stale of ${r.trials}`,
    );
    for (const c of off) {
      const pgX = ratio(c.row.rps, c.pg?.rps);
      const measured = `${vsEcho(c)}; ${fmt(pgX, 2)} × pg point-select (${rps(c.pg?.rps)} RPS)`;
      // CACHE=off installs no cache code at all: the path of before the cache, for comparison with
      // earlier runs' ratios (the README's Latest results)
      v(null, `${c.label}, c=50 (the path before the cache)`, measured);
    }
  }
  return out;
}

// --- blocks: what both renderings show -----------------------------------------------------------

/** `left`: how many leading columns are aligned left in text. */
type Table = { head: string[]; rows: string[][]; left: number };
interface Block {
  title: string;
  note?: string;
  table: Table;
  /** HTML only. */
  charts?: () => string;
}

const LAT = 'RPS|p50 ms|p90 ms|p99 ms|errors'.split('|');
const lat = (r: Summary & Pick<Row, 'vusLost'>) => {
  const latencies = [r.p50Ms, r.p90Ms, r.p99Ms].map((x) => (r.ok ? ms(x) : '-'));
  return [rps(r.rps), ...latencies, errs(r)];
};
const ceilingCell = ({ ceiling: e, concurrency: c }: Row) =>
  e ? `${rps(e.rps)} ${e.kind}${e.concurrency !== c ? `@${e.concurrency}` : ''}` : '-';

/** Two runs side by side, with their latency histograms. */
const compare = (title: string, note: string, a: string, b: string, rows?: Row[]): Block[] => {
  const runs = (rows ?? []).map((r, i): [string, Row] => [i ? b : a, r]);
  const cpu = (r: Row) => [r.usage?.serverCpuPct, r.clientCpuPct].map(pct);
  const cells = runs.map(([k, r]) => [k, ...lat(r), ms(r.maxMs), ...cpu(r)]);
  const table = { head: ['run', ...LAT, 'max ms', 'srv CPU', 'client CPU'], rows: cells, left: 1 };
  return rows?.length === 2 ? [{ title, note, table, charts: () => histogram(title, runs) }] : [];
};

function scenarioCharts(run: RunResult, s: string): string {
  const rows = run.scenarios.filter((r) => r.workload === s);
  const { label, ceiling, target } = info(s);
  const shown = rows.find((r) => r.concurrency === target) ?? rows[0];
  if (!shown) return '';
  const [xs, c] = [rows.map((r) => r.concurrency), shown.concurrency];
  const paired = run.ceilings.find((x) => x.label === `${ceiling} (paired with ${s})`);
  const series = (k: 'rps' | 'p99Ms'): Series[] => [
    [label, rows.map((r) => r[k])],
    [`${ceiling} ceiling`, rows.map((r) => r.ceiling?.[k] ?? null)],
  ];
  const rpsSeries = series('rps');
  if (ceiling === 'echo') rpsSeries.push(['raw pg point-select', rows.map((r) => r.pgCeilingRps ?? null)]);
  const charts =
    lineChart(`${label}: RPS`, xs, 'OK answers / s', rpsSeries) +
    lineChart(`${label}: p99`, xs, 'ms', series('p99Ms'));
  const hist: [string, Row][] = [[`${label} c=${c}`, shown]];
  if (paired) hist.push([`${ceiling} ceiling c=${paired.concurrency}`, paired]);
  return `<h3>${esc(label)}</h3><div class="charts">${charts}</div>${histogram(`${label}: latency at c=${c}`, hist)}`;
}

function blocks(run: RunResult): Block[] {
  const head = 'scenario|c|RPS|p50 ms|p90 ms|p99 ms|errors|srv CPU|pg CPU|srv RSS MB|client CPU|machine';
  const rows = run.scenarios.map((r: Row) => [
    ...[info(r.workload).label, String(r.concurrency), ...lat(r)],
    ...[pct(r.usage?.serverCpuPct), pct(r.usage?.pgCpuPct), fmt(r.usage?.rssPeakMb), pct(r.clientCpuPct)],
    ...[pct(r.usage?.machineBusyPct), ceilingCell(r), fmt(r.ceiling?.ratio, 2), rps(r.pgCeilingRps)],
  ]);
  const out: Block[] = [
    {
      title: 'Scenarios',
      note: 'RPS = OK answers per second; CPU in % of one core; × ceiling = RPS / ceiling RPS',
      table: { head: `${head}|ceiling RPS|× ceiling|pg ceiling`.split('|'), rows, left: 1 },
      charts: () => Object.keys(SCENARIOS).reduce((html, s) => html + scenarioCharts(run, s), ''),
    },
  ];
  for (const r of run.scenarios.filter((x) => x.workload === 'mixed')) {
    const rows = Object.entries(r.byOp).map(([op, s]) => [op, String(MIX[op as ServerOp]), ...lat(s as Row)]);
    const table = { head: ['RPC', 'per 1000', ...LAT], rows, left: 1 };
    out.push({ title: `Mixed workload c=${r.concurrency}, per RPC`, table });
  }
  const { flood, loginTiming: lt, workers: w, pooling: p } = run;
  const floodT = 'GetUser by id c=10, alone and during a login flood';
  const floodNote = `Login c=8 beside it: ${rps(flood?.login.rps)}/s`;
  out.push(...compare(floodT, floodNote, 'alone', 'during the flood', flood && [flood.alone, flood.during]));
  const loginT = 'Login answered UNAUTHENTICATED, c=1 each';
  const loginNote = 'both run one bcrypt compare; p50 is the median';
  out.push(...compare(loginT, loginNote, 'wrong password', 'unknown email', lt && [lt.wrong, lt.unknown]));
  const procs = `Node processes: ${w?.nodeProcs}`;
  out.push(...compare('GetUser by id c=50, by WORKERS', procs, 'WORKERS=1', 'WORKERS=2', w?.rows));
  const op = run.opsPort;
  const opsRows = op?.off.flatMap((r, i) => [r, op.on[i]].filter((x): x is Row => x !== undefined));
  const opsNote =
    op &&
    `fresh servers in turn, off and on in alternating order, ${op.off.length} rounds; /metrics scraped every ${op.everyMs} ms when on`;
  if (opsRows?.length) {
    const rows = opsRows.map((r, i) => [
      `${i % 2 ? 'on' : 'off'} (round ${Math.floor(i / 2) + 1})`,
      ...lat(r),
    ]);
    out.push({
      title: 'GetUser by id c=50, without and with the operations port',
      note: opsNote,
      table: { head: ['ops port', ...LAT], rows, left: 1 },
    });
  }

  const cache = run.cache;
  if (cache) {
    const rows = [...cache.rows, ...cache.off].map((c) => [
      c.label,
      ...lat(c.row),
      rps(c.echo.rps),
      fmt(ratio(c.row.rps, c.echo.rps), 2),
      ['session', 'user']
        .map((k) => (c.hitRatio[k] === undefined ? '-' : `${fmt((c.hitRatio[k] ?? 0) * 100, 1)}%`))
        .join(' / '),
    ]);
    out.push({
      title: 'Read cache, c=50 (each step right after its echo ceiling)',
      note: `working set: the distinct users and sessions the calls pick from at random (${fmt(cache.workingSet)}); hits: sessions / users`,
      table: { head: ['step', ...LAT, 'echo RPS', '× echo', 'hits'], rows, left: 1 },
    });
  }
  const ceilingRows = run.ceilings.map((r) => [r.label, `${r.concurrency}`, ...lat(r), pct(r.clientCpuPct)]);
  const ceilings = { head: ['ceiling', 'c', ...LAT, 'client CPU'], rows: ceilingRows, left: 1 };
  out.push({ title: 'Ceilings (same load workers; the server idle)', table: ceilings });
  const poolT = 'Point-select c=10: pooled, or a new connection per query';
  const poolNote = 'the old claim: 10–100×';
  out.push(...compare(poolT, poolNote, 'pooled', 'new connection', p && [p.pooled, p.perQuery]));
  const profiles = run.server.profiles.map((f) => `CPU profile (DevTools or speedscope): ${f}`);
  const notes = [...run.server.notes, ...profiles];
  const verdictRows = run.verdicts.map((x) => [x.result, x.target, x.measured]);
  const table = { head: ['result', 'target', 'measured'], rows: verdictRows, left: 3 };
  return [...out, { title: 'Verdicts', note: notes.join('\n') || undefined, table }];
}

const header = ({ startedAt, machine: m, options: o, elapsedS, server }: RunResult) =>
  `${startedAt} · ${m.cpus} × ${m.cpuModel} · Node ${m.node} · load average ${m.loadAvg.join(' ')} · ` +
  `${o.quick ? 'quick · ' : ''}${fmt(o.seedUsers)} users · took ${fmt(elapsedS)} s\n` +
  `server env: ${pairs(server.env).join(' ')}`;
const pairs = (env: Record<string, string>) => Object.entries(env).map(([k, v]) => `${k}=${v}`);

export function renderText(run: RunResult): string {
  const table = ({ head, rows, left }: Table) => {
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const pad = (c: string, i: number) => (i < left ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0));
    const line = (cells: string[]) => cells.map(pad).join('  ').trimEnd();
    return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
  };
  const block = (b: Block) =>
    `== ${b.title} ${'='.repeat(Math.max(3, 96 - b.title.length))}\n${b.note ? `${b.note}\n` : ''}${table(b.table)}\n`;
  return `\n${header(run)}\n\n${blocks(run).map(block).join('\n')}`;
}

// --- HTML ----------------------------------------------------------------------------------------

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const COLORS = ['#2563eb', '#6b7280', '#059669', '#dc2626'];
type Series = [string, (number | null)[]];
const short = (v: number) =>
  v >= 1000 ? `${fmt(v / 1000, v >= 1e4 ? 0 : 1)}k` : fmt(v, v >= 10 || !v ? 0 : 2);
const text = (x: number, y: number, cls: string, s: string, extra = '') =>
  `<text x="${x}" y="${y}" class="${cls}"${extra}>${esc(s)}</text>`;
const line = (x1: number, x2: number, y1: number, y2: number, extra: string) =>
  `<line x1="${x1}" x2="${x2}" y1="${y1}" y2="${y2}" ${extra}/>`;
/** Title and one legend row per series above a plot of height 180 that starts at y = top(names). */
const top = (names: unknown[]) => 34 + 14 * names.length;
function frame(W: number, title: string, names: string[], bar: boolean, plot: string[]) {
  const H = top(names) + 220;
  const legend = names.map((n, i) => {
    const [y, c] = [30 + i * 14, COLORS[i]];
    const bars = `<rect x="50" y="${y - 6}" width="14" height="9" fill="${c}"/>`;
    return (bar ? bars : line(50, 64, y, y, `stroke="${c}" stroke-width="2"`)) + text(68, y + 4, 'lg', n);
  });
  const head = `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">${text(W / 2, 16, 'ct', title)}`;
  return `${head}${legend.join('')}${plot.join('')}</svg>`;
}

/** Over categorical x (concurrency levels); log y when the values span more than two decades. */
function lineChart(title: string, xs: number[], unit: string, series: Series[]): string {
  const all = series.flatMap(([, v]) => v).filter((v): v is number => v !== null && v > 0);
  if (!all.length) return '';
  const [lo, hi, L, W, T] = [Math.min(...all), Math.max(...all), 58, 420, top(series)];
  const log = hi / lo > 100;
  const [a, b] = log ? [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))] : [0, hi * 1.1];
  const ticks = log
    ? Array.from({ length: b - a + 1 }, (_, i) => 10 ** (a + i))
    : [0, 1, 2, 3, 4].map((i) => (b * i) / 4);
  const y = (v: number) => T + 180 - (((log ? Math.log10(v) : v) - a) / Math.max(1e-9, b - a)) * 180;
  const x = (i: number) => L + (xs.length === 1 ? 0.5 : i / (xs.length - 1)) * (W - L - 14);
  const tick = (t: number) =>
    line(L, W - 14, y(t), y(t), 'class="grid"') + text(L - 6, y(t) + 4, 'yl', short(t));
  const parts = ticks.map(tick);
  parts.push(...xs.map((c, i) => text(x(i), T + 196, 'xl', String(c))));
  parts.push(text(W / 2, T + 214, 'xl', `concurrency; ${unit}${log ? ' (log)' : ''}`));
  series.forEach(([name, values], si) => {
    const pts = values.flatMap((v, i) => (v !== null && v > 0 ? [[x(i), y(v)]] : []));
    const style = `fill="none" stroke="${COLORS[si]}" stroke-width="2"${si ? ' stroke-dasharray="5 4"' : ''}`;
    if (pts.length > 1) parts.push(`<polyline points="${pts.join(' ')}" ${style}/>`);
    const dot = `r="3.5" fill="${COLORS[si]}"><title>${esc(name)}</title></circle>`;
    parts.push(...pts.map(([px, py]) => `<circle cx="${px}" cy="${py}" ${dot}`));
  });
  return frame(
    W,
    title,
    series.map(([n]) => n),
    false,
    parts,
  );
}

/** Share of OK calls per log-spaced latency bucket, with p50 and p99 marks. */
function histogram(title: string, series: [string, Pick<Row, 'bins' | 'p50Ms' | 'p99Ms'>][]): string {
  const used = series.flatMap(([, s]) => s.bins.flatMap((n, i) => (n > 0 ? [i] : [])));
  if (!used.length) return '';
  const [D, L, W, T] = [BINS_PER_DECADE, 48, 860, top(series)];
  const lo = Math.max(0, Math.floor((Math.min(...used) - 1) / D) * D);
  const hi = Math.ceil((Math.max(...used) + 2) / D) * D;
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const shares = series.map(([, s]) => s.bins.map((n) => n / Math.max(1, sum(s.bins))));
  const [max, bw] = [Math.max(...shares.flat()) * 1.1, (W - L - 12) / (hi - lo)];
  const x = (k: number) => L + (k - lo) * bw;
  const y = (f: number) => T + 180 - (f / max) * 180;
  const parts = [text(W / 2, T + 214, 'xl', 'latency (log scale); bars: share of OK calls')];
  for (let k = lo; k <= hi; k += D) {
    const us = 10 ** (k / D);
    const label = us >= 1e6 ? `${us / 1e6} s` : us >= 1e3 ? `${us / 1e3} ms` : `${us} µs`;
    parts.push(line(x(k), x(k), T, T + 180, 'class="grid"'), text(x(k), T + 196, 'xl', label));
  }
  series.forEach(([name, s], si) => {
    const [w, c] = [bw / series.length, COLORS[si]];
    shares[si]?.forEach((f, k) => {
      const tip = `<title>${esc(name)}: ${fmt(f * 100, 1)} %</title>`;
      const box = `x="${x(k) + si * w}" y="${y(f)}" width="${Math.max(1, w - 1)}" height="${T + 180 - y(f)}"`;
      if (f > 0 && k >= lo && k < hi) parts.push(`<rect ${box} fill="${c}" opacity="0.75">${tip}</rect>`);
    });
    for (const [i, v] of [s.p50Ms, s.p99Ms].entries()) {
      const px = x(Math.log10(Math.max(1, v * 1000)) * D);
      const end = px > W - 140 ? ' text-anchor="end"' : '';
      parts.push(line(px, px, T, T + 180, `stroke="${c}" stroke-dasharray="3 3"`));
      const [tx, ty] = [end ? px - 3 : px + 3, T + 10 + si * 24 + i * 11];
      parts.push(text(tx, ty, 'lg', `p${i ? 99 : 50} ${ms(v)} ms`, ` style="fill:${c}"${end}`));
    }
  });
  return frame(
    W,
    title,
    series.map(([n]) => n),
    true,
    parts,
  );
}

export function renderHtml(run: RunResult): string {
  const cell = (c: string) => `<td${/^(PASS|FAIL|INFO)$/.test(c) ? ` class="${c}"` : ''}>${esc(c)}</td>`;
  const table = ({ head, rows }: Table) =>
    `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</table>`;
  const all = blocks(run);
  const section = (b: Block) =>
    `<section><h2>${esc(b.title)}</h2>${b.note ? `<p>${esc(b.note)}</p>` : ''}${table(b.table)}${b.charts?.() ?? ''}</section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ConnectSphere identity bench ${esc(run.startedAt)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:20px;color:#111827;background:#f9fafb}
h1{font-size:22px}h2{font-size:17px;margin:0 0 8px}h3{font-size:15px;margin:14px 0 4px}p,pre{color:#6b7280;white-space:pre-wrap}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px 16px;margin:14px 0;overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{padding:3px 8px;border-bottom:1px solid #f0f0f0;text-align:right}
th{color:#6b7280}td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:12px}
.PASS,.FAIL,.INFO{color:#fff;font-weight:700}.PASS{background:#16a34a}.FAIL{background:#dc2626}.INFO{background:#2563eb}
svg .ct{font-size:13px;font-weight:600;text-anchor:middle}svg .xl{font-size:11px;text-anchor:middle;fill:#6b7280}
svg .yl{font-size:11px;text-anchor:end;fill:#6b7280}svg .lg{font-size:11px;fill:#374151}svg .grid{stroke:#eef0f3}
</style></head><body>
<h1>ConnectSphere identity service — benchmark</h1><pre>${esc(header(run))}</pre>
${[...all.slice(-1), ...all.slice(0, -1)].map(section).join('\n')}
</body></html>
`;
}
