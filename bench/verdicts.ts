/** The targets of the benchmark issue, checked against one run. */
import type { Row, RunResult, Verdict } from './results.js';
import { SCENARIO_INFO, type Scenario } from './scenarios.js';

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const find = (rows: Row[], name: string, c: number) =>
  rows.find((r) => r.name === name && r.concurrency === c);

const errorsText = (r: Row) =>
  r.errorTotal === 0
    ? '0 errors'
    : `${fmt(r.errorTotal)} errors (${Object.entries(r.errors)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ')})`;

export function computeVerdicts(run: RunResult): Verdict[] {
  const out: Verdict[] = [];
  const how = (r: Row) =>
    r.ceiling?.paired
      ? ' (ceiling measured right before)'
      : r.ceiling && r.ceiling.measurements > 1
        ? ` (ceiling = mean of ${r.ceiling.measurements})`
        : '';

  for (const name of ['getUserById', 'validateToken'] as Scenario[]) {
    const label = SCENARIO_INFO[name].label;
    const r = find(run.scenarios, name, 50);
    const echo = r?.ceiling;
    if (!r || !echo || echo.kind !== 'echo' || echo.concurrency !== 50) {
      out.push({ target: `${label} c=50 vs echo`, measured: 'not measured in this run', result: 'SKIP' });
      continue;
    }
    out.push({
      target: `${label} c=50: RPS >= 0.7 x echo ceiling`,
      measured: `${fmt(r.rps)} vs ${fmt(echo.rps)} RPS = ${fmt(echo.ratio, 2)} x${how(r)}`,
      result: echo.ratio >= 0.7 ? 'PASS' : 'FAIL',
    });
    out.push({
      target: `${label} c=50: zero errors`,
      measured: errorsText(r),
      result: r.errorTotal === 0 ? 'PASS' : 'FAIL',
    });
    out.push({
      target: `${label} c=50: p99 <= 3 x echo p99`,
      measured: `${fmt(r.p99Ms, 1)} ms vs 3 x ${fmt(echo.p99Ms, 1)} = ${fmt(3 * echo.p99Ms, 1)} ms`,
      result: r.p99Ms <= 3 * echo.p99Ms ? 'PASS' : 'FAIL',
    });
  }

  for (const name of ['login', 'register'] as Scenario[]) {
    const label = SCENARIO_INFO[name].label;
    const r = find(run.scenarios, name, 8);
    const ceiling = r?.ceiling;
    if (!r || !ceiling || ceiling.kind !== 'bcrypt' || ceiling.concurrency !== 8) {
      out.push({ target: `${label} c=8 vs bcrypt`, measured: 'not measured in this run', result: 'SKIP' });
      continue;
    }
    out.push({
      target: `${label} c=8: RPS >= 0.9 x bcrypt ceiling (cost ${run.options.bcryptRounds}, c=8)`,
      measured: `${fmt(r.rps, 1)} vs ${fmt(ceiling.rps, 1)} per s = ${fmt(ceiling.ratio, 2)} x${how(r)}; ${errorsText(r)}`,
      result: ceiling.ratio >= 0.9 ? 'PASS' : 'FAIL',
    });
  }

  const c100 = run.scenarios.filter((r) => r.concurrency === 100);
  for (const r of c100) {
    out.push({
      target: `c=100, default pool: zero errors — ${SCENARIO_INFO[r.name as Scenario]?.label ?? r.name}`,
      measured: errorsText(r) + (r.vusLost ? `; ${r.vusLost} VUs lost their session` : ''),
      result: r.errorTotal === 0 && r.vusLost === 0 ? 'PASS' : 'FAIL',
    });
  }
  if (c100.length === 0)
    out.push({ target: 'c=100: zero errors', measured: 'no c=100 step in this run', result: 'SKIP' });

  const rss100 = Math.max(0, ...c100.map((r) => r.usage?.rssPeakMb ?? 0));
  out.push({
    target: 'RSS of the server: idle and under c=100',
    measured:
      `idle ${run.server.idleRssMb !== undefined ? fmt(run.server.idleRssMb) : '?'} MB; ` +
      `c=100 peak ${c100.length ? fmt(rss100) : '?'} MB; idle after the load ${run.server.idleRssAfterLoadMb !== undefined ? fmt(run.server.idleRssAfterLoadMb) : '?'} MB`,
    result: 'INFO',
  });

  const cold = run.server.startups.find((s) => s.label === 'cold');
  const warm = run.server.startups.find((s) => s.label === 'warm');
  out.push({
    target: 'Start-up to SERVING, embedded PostgreSQL: cold (initdb) and warm',
    measured: `cold ${cold ? fmt(cold.ms) : '?'} ms, warm ${warm ? fmt(warm.ms) : '?'} ms`,
    result: cold && warm ? 'INFO' : 'SKIP',
  });

  if (run.workers) {
    const parts = run.workers.rows.map(
      (w) =>
        `WORKERS=${w.workers}: ${fmt(w.row.rps)} RPS, p99 ${fmt(w.row.p99Ms, 1)} ms, ${w.nodeProcs} Node process(es)`,
    );
    const note =
      run.workers.honoured === false
        ? ' — WORKERS=2 NOT honoured: the server ran a single Node process'
        : run.workers.honoured
          ? ''
          : ' — could not tell';
    out.push({
      target: 'GetUser by id c=50 with WORKERS=1 and WORKERS=2',
      measured: parts.join('; ') + note,
      result: run.workers.honoured === false ? 'FAIL' : 'INFO',
    });
  } else {
    out.push({
      target: 'GetUser with WORKERS=1 and WORKERS=2',
      measured: 'skipped (--no-compare-workers)',
      result: 'SKIP',
    });
  }

  if (run.interference) {
    const { alone, withLogin, login } = run.interference;
    out.push({
      target: 'GetUser p99 while Login runs (bcrypt on the libuv pool) vs alone, c=10',
      measured: `alone ${fmt(alone.p99Ms, 1)} ms (${fmt(alone.rps)} RPS); with Login c=8 ${fmt(withLogin.p99Ms, 1)} ms (${fmt(withLogin.rps)} RPS, Login ${fmt(login.rps, 1)}/s) = ${fmt(withLogin.p99Ms / Math.max(0.001, alone.p99Ms), 1)} x`,
      result: 'INFO',
    });
  }

  if (run.ceilings.pooling) {
    const { pooled, perQuery, ratio } = run.ceilings.pooling;
    out.push({
      target: 'Old claim: pooling is 10-100x faster than a connection per query',
      measured: `pooled ${fmt(pooled.rps)} vs new connection ${fmt(perQuery.rps)} queries/s = ${fmt(ratio, 1)} x (p50 ${fmt(pooled.p50Ms, 2)} vs ${fmt(perQuery.p50Ms, 2)} ms)`,
      result: 'INFO',
    });
  }
  return out;
}
