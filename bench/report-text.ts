/** The run as plain-text tables (what `npm run bench` prints on stdout). */
import type { Row, RunResult } from './results.js';
import { MIX, OP_LABEL, type Op, SCENARIO_INFO, SCENARIOS, type Scenario } from './scenarios.js';

/** Number formatting shared by the text and HTML reports; `missing` stands for no value. */
export const formatters = (missing: string) => {
  const fmt = (n: number | undefined, digits = 0) =>
    n === undefined || !Number.isFinite(n)
      ? missing
      : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  return {
    fmt,
    ms: (n: number | undefined) => fmt(n, n !== undefined && n < 10 ? 2 : 1),
    rps: (n: number | undefined) => fmt(n, n !== undefined && n < 100 ? 1 : 0),
  };
};
const { fmt, ms, rps } = formatters('-');

/** A plain-text table; `align` has one letter per column, l or r (default: first left, rest right). */
export function table(
  headers: string[],
  rows: string[][],
  align = `l${'r'.repeat(headers.length - 1)}`,
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (align[i] === 'l' ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const errorsCell = (r: Row): string =>
  r.errorTotal === 0
    ? '0'
    : Object.entries(r.errors)
        .map(([code, n]) => `${code} ${fmt(n)}`)
        .join(', ');

export const ceilingName = (r: Row): string =>
  `${OP_LABEL[r.workload as Op] ?? r.name}${/\((.*)\)$/.exec(r.label)?.[1] ? ` (${/\((.*)\)$/.exec(r.label)?.[1]})` : ''}`;

function ceilingTable(rows: Row[]): string {
  return table(
    ['ceiling', 'c', 'RPS', 'p50 ms', 'p90 ms', 'p99 ms', 'errors', 'client CPU'],
    rows.map((r) => [
      ceilingName(r),
      String(r.concurrency),
      rps(r.rps),
      ms(r.p50Ms),
      ms(r.p90Ms),
      ms(r.p99Ms),
      errorsCell(r),
      `${fmt(r.clientCpuPct)}%`,
    ]),
  );
}

function scenarioTable(rows: Row[]): string {
  return table(
    [
      'c',
      'RPS',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'errors',
      'srv CPU',
      'pg CPU',
      'srv RSS MB',
      'client CPU',
      'machine',
      'ceiling RPS',
      'x ceiling',
      'pg ceiling',
    ],
    rows.map((r) => [
      String(r.concurrency),
      rps(r.rps),
      ms(r.p50Ms),
      ms(r.p90Ms),
      ms(r.p99Ms),
      errorsCell(r) + (r.vusLost ? ` (${r.vusLost} VUs lost)` : ''),
      r.usage ? `${fmt(r.usage.serverCpuPct)}%` : '-',
      r.usage ? `${fmt(r.usage.pgCpuPct)}%` : '-',
      r.usage ? `${fmt(r.usage.rssPeakMb)}` : '-',
      `${fmt(r.clientCpuPct)}%`,
      r.machineBusyPct !== undefined ? `${fmt(r.machineBusyPct)}%` : '-',
      r.ceiling
        ? `${rps(r.ceiling.rps)} ${r.ceiling.kind}${r.ceiling.concurrency !== r.concurrency ? `@${r.ceiling.concurrency}` : ''}`
        : '-',
      r.ceiling ? fmt(r.ceiling.ratio, 2) : '-',
      r.pgCeilingRps !== undefined ? rps(r.pgCeilingRps) : '-',
    ]),
    'rrrrrlrrrrrrrr',
  );
}

function mixedBreakdown(run: RunResult): string {
  const rows = run.scenarios.filter((r) => r.name === 'mixed');
  if (!rows.length) return '';
  const out: string[] = [];
  for (const r of rows) {
    const alone = run.scenarios.find((x) => x.name === 'getUserById' && x.concurrency === r.concurrency);
    out.push(
      `mixed c=${r.concurrency}, per RPC (weights per 1000: ${Object.entries(MIX)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}):`,
    );
    out.push(
      table(
        ['RPC', 'RPS', 'p50 ms', 'p99 ms', 'errors'],
        Object.entries(r.byOp).map(([op, s]) => [
          OP_LABEL[op as Op] ?? op,
          rps(s?.rps),
          s?.ok ? ms(s.p50Ms) : 'none done',
          s?.ok ? ms(s.p99Ms) : 'in window',
          s?.errorTotal
            ? Object.entries(s.errors)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ')
            : '0',
        ]),
      ),
    );
    const g = r.byOp.getUserById;
    if (g && alone) {
      out.push(
        `GetUser(id) p99 in the mix (with Login/Register bcrypt work): ${ms(g.p99Ms)} ms vs alone at c=${alone.concurrency}: ${ms(alone.p99Ms)} ms`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}

export function renderText(run: RunResult): string {
  const o = run.options;
  const s: string[] = [];
  const h = (title: string) => s.push('', `== ${title} ${'='.repeat(Math.max(0, 96 - title.length))}`);

  h('Run');
  s.push(
    `${run.startedAt}  ${run.machine.cpus} x ${run.machine.cpuModel}, ${run.machine.memGb} GB, Node ${run.machine.node}, load average at start ${run.machine.loadAvgAtStart.join(' ')}`,
    `${o.quick ? 'quick preset; ' : ''}${o.requests ? `${o.requests} requests` : `${o.durationS} s`} per step after ${o.warmupS} s warm-up; ${fmt(o.seedUsers)} users; BCRYPT_ROUNDS=${o.bcryptRounds}; ${o.procs} load processes x ${o.channels} channels; deadline ${o.deadlineMs} ms; took ${fmt(run.elapsedS)} s${run.server.buildS ? ` (build ${fmt(run.server.buildS, 1)} s)` : ''}`,
    `server env: ${Object.entries(run.server.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );

  h('Start-up and memory');
  s.push(
    table(
      ['start', 'WORKERS', 'to SERVING ms', 'seen by'],
      run.server.startups.map((x) => [
        x.label,
        String(x.workers),
        fmt(x.ms),
        x.readyBy === 'log' ? 'SERVING log line' : 'health check',
      ]),
    ),
    `seed: ${fmt(run.seed.users)} users by SQL in ${fmt(run.seed.sqlMs)} ms; tables after the run: ${
      run.seed.tablesAfter
        ? Object.entries(run.seed.tablesAfter)
            .map(([k, v]) => `${k} ${fmt(v)}`)
            .join(', ')
        : '?'
    }`,
    `server RSS: idle ${fmt(run.server.idleRssMb)} MB; peak under c=100 ${fmt(Math.max(0, ...run.scenarios.filter((r) => r.concurrency === 100).map((r) => r.usage?.rssPeakMb ?? 0)))} MB; idle after the load ${fmt(run.server.idleRssAfterLoadMb)} MB`,
  );

  h('Ceilings (same load workers and harness; the server is idle)');
  s.push(
    ceilingTable([...run.ceilings.echo, ...run.ceilings.pg, ...run.ceilings.bcrypt, ...run.ceilings.paired]),
  );
  if (run.ceilings.pooling) {
    const { pooled, perQuery, ratio } = run.ceilings.pooling;
    s.push(
      '',
      `pooled vs new connection per query (c=10, same point-select): ${rps(pooled.rps)} vs ${rps(perQuery.rps)} queries/s = ${fmt(ratio, 1)} x; p50 ${ms(pooled.p50Ms)} vs ${ms(perQuery.p50Ms)} ms` +
        ` (the old claim was "10-100x faster with pooling")`,
    );
  }

  h('Scenarios (RPS = OK answers per second; CPU in % of one core; "x ceiling" = RPS / ceiling RPS)');
  for (const name of SCENARIOS) {
    const rows = run.scenarios.filter((r) => r.name === name);
    if (!rows.length) continue;
    const info = SCENARIO_INFO[name as Scenario];
    s.push('', `${info.label} — ${info.rpc}; ceiling: ${info.ceiling}`, scenarioTable(rows));
  }
  const mixed = mixedBreakdown(run);
  if (mixed) s.push('', mixed);

  if (run.interference) {
    const { alone, withLogin, login } = run.interference;
    h('Event loop and CPU during Login (GetUser by id c=10)');
    s.push(
      table(
        ['run', 'GetUser RPS', 'p50 ms', 'p99 ms', 'max ms', 'Login/s', 'srv CPU'],
        [
          [
            'GetUser alone',
            rps(alone.rps),
            ms(alone.p50Ms),
            ms(alone.p99Ms),
            ms(alone.maxMs),
            '-',
            `${fmt(alone.usage?.serverCpuPct)}%`,
          ],
          [
            'GetUser + Login c=8',
            rps(withLogin.rps),
            ms(withLogin.p50Ms),
            ms(withLogin.p99Ms),
            ms(withLogin.maxMs),
            rps(login.rps),
            `${fmt(withLogin.usage?.serverCpuPct)}%`,
          ],
        ],
      ),
    );
  }

  if (run.workers) {
    h('WORKERS (Node cluster)');
    s.push(
      table(
        ['WORKERS', 'Node processes', 'GetUser RPS c=50', 'p99 ms', 'srv CPU', 'errors'],
        run.workers.rows.map((w) => [
          String(w.workers),
          String(w.nodeProcs),
          rps(w.row.rps),
          ms(w.row.p99Ms),
          `${fmt(w.row.usage?.serverCpuPct)}%`,
          errorsCell(w.row),
        ]),
      ),
    );
    if (run.workers.honoured === false)
      s.push('WORKERS=2 was NOT honoured: the server ran one Node process.');
  }

  h('Verdicts');
  s.push(
    table(
      ['result', 'target', 'measured'],
      run.verdicts.map((v) => [v.result, v.target, v.measured]),
      'lll',
    ),
  );

  if (run.server.notes.length) {
    h('Notes');
    s.push(...run.server.notes.map((n) => `- ${n}`));
  }

  if (run.profiles.summary) {
    const p = run.profiles.summary;
    h('Server CPU profile (warm server, self time)');
    s.push(`${p.file}: ${fmt(p.busyMs)} ms busy of ${fmt(p.totalMs)} ms`);
    s.push(
      table(
        ['self %', 'self ms', 'function', 'where'],
        p.topFunctions.map((e) => [fmt(e.pct, 1), fmt(e.selfMs), e.name, e.where]),
        'rrll',
      ),
    );
    s.push(
      '',
      table(
        ['self %', 'self ms', 'package'],
        p.byPackage.map((e) => [fmt(e.pct, 1), fmt(e.selfMs), e.name]),
        'rrl',
      ),
    );
  }
  s.push('');
  return s.join('\n');
}
