/**
 * The run as one self-contained HTML page: no scripts, no CDN, charts drawn here as inline SVG
 * (RPS and p99 against concurrency per scenario with its ceiling, latency histograms).
 */
import { BINS_PER_DECADE, binLowerUs } from './protocol.js';
import { ceilingName, errorsCell, formatters } from './report-text.js';
import type { Row, RunResult, VerdictResult } from './results.js';
import { MIX, OP_LABEL, type Op, SCENARIO_INFO, SCENARIOS, type Scenario } from './scenarios.js';

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const { fmt, ms, rps } = formatters('–');

const COLORS = { main: '#2563eb', ceiling: '#6b7280', pg: '#059669', alt: '#dc2626' };

// --- charts -----------------------------------------------------------------------------------------

interface Series {
  name: string;
  color: string;
  values: (number | null)[];
  dashed?: boolean;
}

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm >= 5 ? 10 : norm >= 2 ? 5 : norm >= 1 ? 2 : 1) * mag;
}

const short = (v: number) =>
  v === 0
    ? '0'
    : v >= 1e6
      ? `${fmt(v / 1e6, 1)}M`
      : v >= 1e4
        ? `${fmt(v / 1e3)}k`
        : v >= 1000
          ? `${fmt(v / 1e3, 1)}k`
          : v >= 10
            ? fmt(v)
            : fmt(v, v >= 1 ? 1 : 2);

/** A line chart over categorical x (concurrency levels); log y when the values span > 2 decades. */
function lineChart(title: string, xs: number[], series: Series[], yUnit: string): string {
  const W = 420;
  const legend = 14 * series.length;
  const H = 230 + legend;
  const m = { l: 64, r: 14, t: 30 + legend, b: 44 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = series.flatMap((s) => s.values).filter((v): v is number => v !== null && v > 0);
  if (!all.length || !xs.length) return '';
  const min = Math.min(...all);
  const max = Math.max(...all);
  const log = max / min > 100;
  let y: (v: number) => number;
  let ticks: number[];
  if (log) {
    const lo = Math.floor(Math.log10(min));
    const hi = Math.ceil(Math.log10(max));
    y = (v) => m.t + ph - ((Math.log10(v) - lo) / Math.max(1, hi - lo)) * ph;
    ticks = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  } else {
    const step = niceStep(max, 4);
    const top = Math.ceil((max * 1.05) / step) * step;
    y = (v) => m.t + ph - (v / top) * ph;
    ticks = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
  }
  const x = (i: number) => m.l + (xs.length === 1 ? pw / 2 : (i / (xs.length - 1)) * pw);
  const parts: string[] = [];
  parts.push(`<text x="${W / 2}" y="16" class="ct">${esc(title)}</text>`);
  for (const t of ticks) {
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y(t)}" y2="${y(t)}" class="grid"/>`);
    parts.push(`<text x="${m.l - 6}" y="${y(t) + 4}" class="yl">${short(t)}</text>`);
  }
  xs.forEach((c, i) => {
    parts.push(`<text x="${x(i)}" y="${m.t + ph + 16}" class="xl">${c}</text>`);
  });
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 6}" class="xl">concurrency (virtual users)</text>`);
  parts.push(
    `<text x="12" y="${m.t + ph / 2}" class="xl" transform="rotate(-90 12 ${m.t + ph / 2})">${esc(yUnit)}${log ? ' (log)' : ''}</text>`,
  );
  series.forEach((s, si) => {
    const pts = s.values
      .map((v, i) => (v !== null && v > 0 ? [x(i), y(v)] : null))
      .filter((p): p is number[] => p !== null);
    if (pts.length > 1) {
      parts.push(
        `<polyline points="${pts.map((p) => p.join(',')).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
      );
    }
    for (const p of pts)
      parts.push(
        `<circle cx="${p[0]}" cy="${p[1]}" r="3.5" fill="${s.color}"><title>${esc(s.name)}</title></circle>`,
      );
    // legend: one row per series between the title and the plot
    const ly = 30 + si * 14;
    parts.push(
      `<line x1="${m.l}" x2="${m.l + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
    );
    parts.push(`<text x="${m.l + 22}" y="${ly + 4}" class="lg">${esc(s.name)}</text>`);
  });
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">${parts.join('')}</svg>`;
}

interface HistSeries {
  name: string;
  color: string;
  bins: number[];
  p50: number;
  p99: number;
}

/** Latency distribution: share of calls per log-spaced bucket (10 per decade), with p50/p99 marks. */
function histogramChart(title: string, series: HistSeries[]): string {
  const W = 860;
  const legend = 14 * series.length;
  const H = 210 + legend;
  const m = { l: 48, r: 12, t: 30 + legend, b: 40 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const used = series.flatMap((s) => s.bins.map((n, i) => (n > 0 ? i : -1))).filter((i) => i >= 0);
  if (!used.length) return '';
  const lo = Math.max(0, Math.floor((Math.min(...used) - 1) / BINS_PER_DECADE) * BINS_PER_DECADE);
  const hi = Math.ceil((Math.max(...used) + 2) / BINS_PER_DECADE) * BINS_PER_DECADE;
  const shares = series.map((s) => {
    const total = s.bins.reduce((a, b) => a + b, 0) || 1;
    return s.bins.map((n) => n / total);
  });
  const top = Math.max(...shares.flat()) * 1.1;
  const bw = pw / (hi - lo);
  const x = (k: number) => m.l + (k - lo) * bw;
  const xOfUs = (us: number) => x(Math.log10(Math.max(1, us)) * BINS_PER_DECADE);
  const y = (f: number) => m.t + ph - (f / top) * ph;
  const parts: string[] = [`<text x="${W / 2}" y="16" class="ct">${esc(title)}</text>`];
  for (let k = lo; k <= hi; k += BINS_PER_DECADE) {
    const us = binLowerUs(k);
    const label = us >= 1e6 ? `${us / 1e6} s` : us >= 1e3 ? `${us / 1e3} ms` : `${us} µs`;
    parts.push(`<line x1="${x(k)}" x2="${x(k)}" y1="${m.t}" y2="${m.t + ph}" class="grid"/>`);
    parts.push(`<text x="${x(k)}" y="${m.t + ph + 16}" class="xl">${label}</text>`);
  }
  parts.push(
    `<text x="${m.l + pw / 2}" y="${H - 6}" class="xl">latency (log scale; bars: share of OK calls)</text>`,
  );
  series.forEach((s, si) => {
    const share = shares[si] as number[];
    const w = bw / series.length;
    for (let k = lo; k < hi; k++) {
      const f = share[k] ?? 0;
      if (f <= 0) continue;
      parts.push(
        `<rect x="${x(k) + si * w}" y="${y(f)}" width="${Math.max(1, w - 1)}" height="${m.t + ph - y(f)}" fill="${s.color}" opacity="0.75"><title>${esc(s.name)}: ${fmt(f * 100, 1)} % in ${ms(binLowerUs(k) / 1000)}–${ms(binLowerUs(k + 1) / 1000)} ms</title></rect>`,
      );
    }
    for (const [label, v] of [
      ['p50', s.p50],
      ['p99', s.p99],
    ] as const) {
      const px = xOfUs(v * 1000);
      parts.push(
        `<line x1="${px}" x2="${px}" y1="${m.t}" y2="${m.t + ph}" stroke="${s.color}" stroke-dasharray="3 3"/>`,
      );
      const right = px > W - 140; // label on the left of its line near the right edge
      parts.push(
        `<text x="${right ? px - 3 : px + 3}" y="${m.t + 10 + si * 24 + (label === 'p99' ? 11 : 0)}" class="lg" fill="${s.color}"${right ? ' text-anchor="end"' : ''}>${label} ${ms(v)} ms</text>`,
      );
    }
    // legend: one row per series between the title and the plot
    const ly = 30 + si * 14;
    parts.push(`<rect x="${m.l}" y="${ly - 6}" width="14" height="9" fill="${s.color}"/>`);
    parts.push(`<text x="${m.l + 18}" y="${ly + 3}" class="lg">${esc(s.name)}</text>`);
  });
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img">${parts.join('')}</svg>`;
}

// --- page ---------------------------------------------------------------------------------------------

const badge = (r: VerdictResult) => `<span class="b ${r.toLowerCase()}">${r}</span>`;

function rowsTable(rows: Row[], withCeiling: boolean): string {
  const head = [
    'c',
    'RPS',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'errors',
    ...(withCeiling ? ['server CPU', 'pg CPU', 'server RSS MB'] : []),
    'client CPU',
    ...(withCeiling ? ['ceiling RPS', '× ceiling', 'pg ceiling'] : []),
  ];
  const body = rows.map((r) => {
    const cells = [
      String(r.concurrency),
      rps(r.rps),
      ms(r.p50Ms),
      ms(r.p90Ms),
      ms(r.p99Ms),
      `<span class="wrap${r.errorTotal ? ' err' : ''}">${esc(errorsCell(r))}${r.vusLost ? ` (${r.vusLost} VUs lost)` : ''}</span>`,
      ...(withCeiling
        ? [
            r.usage ? `${fmt(r.usage.serverCpuPct)} %` : '–',
            r.usage ? `${fmt(r.usage.pgCpuPct)} %` : '–',
            r.usage ? fmt(r.usage.rssPeakMb) : '–',
          ]
        : []),
      `${fmt(r.clientCpuPct)} %`,
      ...(withCeiling
        ? [
            r.ceiling
              ? `${rps(r.ceiling.rps)} <small>${r.ceiling.kind}${r.ceiling.concurrency !== r.concurrency ? ` @${r.ceiling.concurrency}` : ''}</small>`
              : '–',
            r.ceiling ? fmt(r.ceiling.ratio, 2) : '–',
            r.pgCeilingRps !== undefined ? rps(r.pgCeilingRps) : '–',
          ]
        : []),
    ];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`;
}

function scenarioSection(run: RunResult, name: Scenario): string {
  const rows = run.scenarios.filter((r) => r.name === name);
  if (!rows.length) return '';
  const info = SCENARIO_INFO[name];
  const xs = rows.map((r) => r.concurrency);
  const ceilings = info.ceiling === 'echo' ? run.ceilings.echo : run.ceilings.bcrypt;
  /** The ceiling measurement a row was compared with (its paired one, or one from the start). */
  const ceilingAt = (r: Row) =>
    r.ceiling?.paired
      ? run.ceilings.paired.find(
          (c) => c.label.endsWith(`(paired with ${name})`) && c.concurrency === r.ceiling?.concurrency,
        )
      : ceilings.find((c) => c.concurrency === r.ceiling?.concurrency);
  const rpsChart = lineChart(
    `${info.label}: RPS`,
    xs,
    [
      { name: info.label, color: COLORS.main, values: rows.map((r) => r.rps) },
      {
        name: `${info.ceiling} ceiling`,
        color: COLORS.ceiling,
        values: rows.map((r) => r.ceiling?.rps ?? null),
        dashed: true,
      },
      ...(info.ceiling === 'echo'
        ? [
            {
              name: 'raw pg point-select',
              color: COLORS.pg,
              values: rows.map((r) => r.pgCeilingRps ?? null),
              dashed: true,
            },
          ]
        : []),
    ],
    'OK answers / s',
  );
  const p99Chart = lineChart(
    `${info.label}: p99 latency`,
    xs,
    [
      { name: info.label, color: COLORS.main, values: rows.map((r) => r.p99Ms) },
      {
        name: `${info.ceiling} ceiling p99`,
        color: COLORS.ceiling,
        values: rows.map((r) => r.ceiling?.p99Ms ?? null),
        dashed: true,
      },
    ],
    'ms',
  );
  const last = rows.find((r) => r.concurrency === info.targetLevel) ?? (rows[rows.length - 1] as Row);
  const ceil = ceilingAt(last);
  const hist = histogramChart(`${info.label}: latency distribution at c=${last.concurrency}`, [
    {
      name: `${info.label} c=${last.concurrency}`,
      color: COLORS.main,
      bins: last.bins,
      p50: last.p50Ms,
      p99: last.p99Ms,
    },
    ...(ceil
      ? [
          {
            name: `${info.ceiling} ceiling c=${ceil.concurrency}`,
            color: COLORS.ceiling,
            bins: ceil.bins,
            p50: ceil.p50Ms,
            p99: ceil.p99Ms,
          },
        ]
      : []),
  ]);
  let extra = '';
  if (name === 'mixed') {
    extra = rows
      .map((r) => {
        const body = Object.entries(r.byOp)
          .map(
            ([op, s]) =>
              `<tr><td>${esc(OP_LABEL[op as Op] ?? op)}</td><td>${MIX[op as keyof typeof MIX] ?? ''}</td><td>${rps(s?.rps)}</td>${s?.ok ? `<td>${ms(s.p50Ms)}</td><td>${ms(s.p99Ms)}</td>` : '<td colspan="2">none completed in the window</td>'}<td>${
                s?.errorTotal
                  ? esc(
                      Object.entries(s.errors)
                        .map(([k, v]) => `${k} ${v}`)
                        .join(', '),
                    )
                  : '0'
              }</td></tr>`,
          )
          .join('');
        return `<h4>c=${r.concurrency}, per RPC</h4><table><thead><tr><th>RPC</th><th>per 1000</th><th>RPS</th><th>p50 ms</th><th>p99 ms</th><th>errors</th></tr></thead><tbody>${body}</tbody></table>`;
      })
      .join('');
  }
  const errors = rows.flatMap((r) =>
    Object.entries(r.errorSamples).map(([k, v]) => `<li>c=${r.concurrency} <b>${esc(k)}</b>: ${esc(v)}</li>`),
  );
  return `<section><h3>${esc(info.label)} <small>${esc(info.rpc)} · compared with the ${info.ceiling} ceiling</small></h3>
${rowsTable(rows, true)}
<div class="charts">${rpsChart}${p99Chart}</div>${hist}${extra}
${errors.length ? `<details><summary>error messages</summary><ul>${errors.join('')}</ul></details>` : ''}</section>`;
}

export function renderHtml(run: RunResult): string {
  const o = run.options;
  const cold = run.server.startups.find((s) => s.label === 'cold');
  const warm = run.server.startups.find((s) => s.label === 'warm');
  const c100 = run.scenarios.filter((r) => r.concurrency === 100);
  const rss100 = c100.length ? Math.max(...c100.map((r) => r.usage?.rssPeakMb ?? 0)) : undefined;
  const counts: Record<string, number> = {};
  for (const v of run.verdicts) counts[v.result] = (counts[v.result] ?? 0) + 1;
  const card = (label: string, value: string, sub = '') =>
    `<div class="card"><div class="cl">${esc(label)}</div><div class="cv">${value}</div><div class="cs">${sub}</div></div>`;

  const cards = [
    card(
      'verdicts',
      `${counts.PASS ?? 0} pass · ${counts.FAIL ?? 0} fail`,
      `${counts.INFO ?? 0} info, ${counts.SKIP ?? 0} skipped`,
    ),
    card(
      'start-up to SERVING',
      `${fmt(cold?.ms)} / ${fmt(warm?.ms)} ms`,
      'cold (initdb) / warm embedded PostgreSQL',
    ),
    card('server RSS', `${fmt(run.server.idleRssMb)} / ${fmt(rss100)} MB`, 'idle / peak under c=100'),
    run.ceilings.pooling
      ? card(
          'pooling vs new connection',
          `${fmt(run.ceilings.pooling.ratio, 1)} ×`,
          'point-select, c=10 (claim: 10–100×)',
        )
      : '',
    run.workers
      ? card(
          'GetUser c=50 by WORKERS',
          run.workers.rows.map((w) => `${w.workers}: ${rps(w.row.rps)}`).join(' · '),
          run.workers.honoured === false
            ? '<span class="err">WORKERS=2 not honoured</span>'
            : `${run.workers.rows.map((w) => `${w.nodeProcs} proc`).join(' / ')}`,
        )
      : '',
    run.interference
      ? card(
          'GetUser p99 during Login',
          `${ms(run.interference.alone.p99Ms)} → ${ms(run.interference.withLogin.p99Ms)} ms`,
          'c=10 alone → with Login c=8',
        )
      : '',
  ].join('');

  const verdicts = `<table class="verdicts"><thead><tr><th></th><th>target</th><th>measured</th></tr></thead><tbody>${run.verdicts
    .map((v) => `<tr><td>${badge(v.result)}</td><td>${esc(v.target)}</td><td>${esc(v.measured)}</td></tr>`)
    .join('')}</tbody></table>`;

  const ceilingRows = [
    ...run.ceilings.echo,
    ...run.ceilings.pg,
    ...run.ceilings.bcrypt,
    ...run.ceilings.paired,
  ];
  const ceilingTable = `<table><thead><tr><th>ceiling</th><th>c</th><th>RPS</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>errors</th><th>client CPU</th></tr></thead><tbody>${ceilingRows
    .map(
      (r) =>
        `<tr><td>${esc(ceilingName(r))}</td><td>${r.concurrency}</td><td>${rps(r.rps)}</td><td>${ms(r.p50Ms)}</td><td>${ms(r.p90Ms)}</td><td>${ms(r.p99Ms)}</td><td>${esc(errorsCell(r))}</td><td>${fmt(r.clientCpuPct)} %</td></tr>`,
    )
    .join('')}</tbody></table>`;
  const pooling = run.ceilings.pooling
    ? `<p>Pooled connection vs a new connection per query (same point-select, c=10): <b>${rps(run.ceilings.pooling.pooled.rps)}</b> vs <b>${rps(run.ceilings.pooling.perQuery.rps)}</b> queries/s = <b>${fmt(run.ceilings.pooling.ratio, 1)} ×</b>; p50 ${ms(run.ceilings.pooling.pooled.p50Ms)} vs ${ms(run.ceilings.pooling.perQuery.p50Ms)} ms. The old app claimed “10–100× faster with pooling”.</p>${histogramChart(
        'point-select latency: pooled vs new connection per query (c=10)',
        [
          {
            name: 'pooled',
            color: COLORS.pg,
            bins: run.ceilings.pooling.pooled.bins,
            p50: run.ceilings.pooling.pooled.p50Ms,
            p99: run.ceilings.pooling.pooled.p99Ms,
          },
          {
            name: 'new connection per query',
            color: COLORS.alt,
            bins: run.ceilings.pooling.perQuery.bins,
            p50: run.ceilings.pooling.perQuery.p50Ms,
            p99: run.ceilings.pooling.perQuery.p99Ms,
          },
        ],
      )}`
    : '';

  let interference = '';
  if (run.interference) {
    const { alone, withLogin, login } = run.interference;
    interference = `<section><h2>GetUser while Login runs</h2>
<p>The server cannot be instrumented from outside, so event-loop blocking shows as GetUser latency: GetUser by id at c=10 alone, then again with Login at c=8 in parallel (bcrypt at cost ${o.bcryptRounds} on the libuv pool, ${rps(login.rps)} logins/s). p99 ${ms(alone.p99Ms)} → <b>${ms(withLogin.p99Ms)} ms</b>, RPS ${rps(alone.rps)} → ${rps(withLogin.rps)}.</p>
${histogramChart('GetUser by id c=10: alone vs with Login c=8', [
  { name: 'alone', color: COLORS.main, bins: alone.bins, p50: alone.p50Ms, p99: alone.p99Ms },
  {
    name: 'with Login c=8',
    color: COLORS.alt,
    bins: withLogin.bins,
    p50: withLogin.p50Ms,
    p99: withLogin.p99Ms,
  },
])}</section>`;
  }

  let profile = '';
  if (run.profiles.summary) {
    const p = run.profiles.summary;
    profile = `<section><h2>Server CPU profile</h2><p>${esc(p.file)} — ${fmt(p.busyMs)} ms busy. Open it in Chrome DevTools (Performance → Load profile) or speedscope.</p>
<div class="charts"><table><thead><tr><th>self %</th><th>function</th><th>where</th></tr></thead><tbody>${p.topFunctions
      .map(
        (e) =>
          `<tr><td>${fmt(e.pct, 1)}</td><td>${esc(e.name)}</td><td class="l"><small>${esc(e.where)}</small></td></tr>`,
      )
      .join('')}</tbody></table>
<table><thead><tr><th>self %</th><th>package</th></tr></thead><tbody>${p.byPackage.map((e) => `<tr><td>${fmt(e.pct, 1)}</td><td class="l">${esc(e.name)}</td></tr>`).join('')}</tbody></table></div></section>`;
  }

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ConnectSphere identity bench ${esc(run.startedAt)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:20px;color:#111827;background:#f9fafb}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
h3{font-size:16px;margin:0 0 8px}h3 small,h4{font-weight:normal;color:#6b7280;font-size:13px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px 16px;margin:14px 0;overflow-x:auto}
.wrap{display:inline-block;white-space:normal;max-width:200px;text-align:left}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid #f0f0f0;text-align:right;white-space:nowrap}th{color:#6b7280;font-weight:600}
td:first-child,th:first-child,td.l{text-align:left}.verdicts td,.verdicts th{text-align:left;white-space:normal}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:150px}
.cl{color:#6b7280;font-size:12px}.cv{font-size:20px;font-weight:600}.cs{color:#6b7280;font-size:12px}
.b{display:inline-block;border-radius:4px;padding:1px 6px;font-size:12px;font-weight:700;color:#fff}.pass{background:#16a34a}.fail{background:#dc2626}.info{background:#2563eb}.skip{background:#9ca3af}
.err{color:#dc2626}.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
svg{background:#fff}svg .ct{font-size:13px;font-weight:600;text-anchor:middle;fill:#111827}svg .xl{font-size:11px;text-anchor:middle;fill:#6b7280}
svg .yl{font-size:11px;text-anchor:end;fill:#6b7280}svg .lg{font-size:11px;fill:#374151}svg .grid{stroke:#eef0f3}
.meta{color:#6b7280}
</style></head><body>
<h1>ConnectSphere identity service — benchmark</h1>
<div class="meta">${esc(run.startedAt)} · ${run.machine.cpus} × ${esc(run.machine.cpuModel)}, ${run.machine.memGb} GB · Node ${esc(run.machine.node)} · load average at start ${run.machine.loadAvgAtStart.join(' ')} · ${o.quick ? 'quick preset · ' : ''}${o.requests ? `${o.requests} requests` : `${o.durationS} s`} per step after ${o.warmupS} s warm-up · ${fmt(o.seedUsers)} users · BCRYPT_ROUNDS=${o.bcryptRounds} · ${o.procs} load processes × ${o.channels} channels · took ${fmt(run.elapsedS)} s</div>
<div class="cards">${cards}</div>
<section><h2>Verdicts</h2>${verdicts}${run.server.notes.length ? `<ul>${run.server.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}</section>
<h2>Scenarios</h2>
<p class="meta">RPS counts OK answers per second. CPU is in % of one core (${run.machine.cpus * 100} % = the whole machine); server CPU is the server's Node process(es), pg CPU the embedded PostgreSQL; client CPU the load workers. × ceiling = RPS / the ceiling's RPS at the same concurrency (bcrypt ceilings at c ≤ 8).</p>
${SCENARIOS.map((s) => scenarioSection(run, s)).join('\n')}
${interference}
<section><h2>Ceilings</h2><p>Measured in the same run with the same load workers while the server was idle: a bare grpc-js echo server (${esc('an encoded User')} each way), the same point-select through a raw <code>pg</code> Pool, and bcrypt compare at cost ${o.bcryptRounds} through bcrypt's async API (libuv pool).</p>${ceilingTable}${pooling}</section>
${profile}
<section><h2>Start-up</h2><table><thead><tr><th>start</th><th>WORKERS</th><th>to SERVING ms</th><th>seen by</th></tr></thead><tbody>${run.server.startups
    .map(
      (s) =>
        `<tr><td>${esc(s.label)}</td><td>${s.workers}</td><td>${fmt(s.ms)}</td><td>${s.readyBy === 'log' ? 'SERVING log line' : 'health check'}</td></tr>`,
    )
    .join(
      '',
    )}</tbody></table><p class="meta">Seed: ${fmt(run.seed.users)} users with one SQL statement in ${fmt(run.seed.sqlMs)} ms. Server environment: <code>${esc(
    Object.entries(run.server.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' '),
  )}</code></p></section>
</body></html>
`;
}
