/**
 * Merging the workers' answers into one summary per op and group: HDR histograms are added,
 * counts summed, RPS is the sum over workers of OK answers / measurement window.
 */
import { BIN_COUNT, decodeHistogram, encodeHistogram, type JobResult, newHistogram } from './protocol.js';
import type { Op, Workload } from './scenarios.js';

export interface LatencySummary {
  /** OK answers per second (errors are not counted as throughput). */
  rps: number;
  ok: number;
  errors: Record<string, number>;
  errorTotal: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  bins: number[];
  /** Merged HDR histogram (µs), compressed base64, for later analysis. */
  histogram: string;
}

export interface GroupSummary extends LatencySummary {
  label: string;
  workload: Workload;
  concurrency: number;
  byOp: Partial<Record<Op, LatencySummary>>;
  windowS: number;
  vusLost: number;
  errorSamples: Record<string, string>;
  sessionsOut: string[];
  harvested: string[];
}

interface Part {
  ok: number;
  errors: Record<string, number>;
  histogram: string;
  bins: number[];
  windowMs: number;
}

function summarise(parts: Part[]): LatencySummary {
  const h = newHistogram();
  const bins = new Array<number>(BIN_COUNT).fill(0);
  const errors: Record<string, number> = {};
  let ok = 0;
  let rps = 0;
  for (const p of parts) {
    const d = decodeHistogram(p.histogram);
    h.add(d);
    d.destroy();
    p.bins.forEach((n, i) => {
      bins[i] = (bins[i] ?? 0) + n;
    });
    for (const [code, n] of Object.entries(p.errors)) errors[code] = (errors[code] ?? 0) + n;
    ok += p.ok;
    rps += p.ok / (p.windowMs / 1000);
  }
  const ms = (us: number) => us / 1000;
  const out: LatencySummary = {
    rps,
    ok,
    errors,
    errorTotal: Object.values(errors).reduce((a, b) => a + b, 0),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    maxMs: ms(h.maxValue),
    meanMs: ms(h.mean),
    bins,
    histogram: encodeHistogram(h),
  };
  h.destroy();
  return out;
}

/** One summary per group label across the workers' results of one job. */
export function mergeGroups(
  results: JobResult[],
  specs: { label: string; workload: Workload; concurrency: number }[],
): GroupSummary[] {
  return specs.map((spec) => {
    const parts = results.flatMap((r) =>
      r.groups.filter((g) => g.label === spec.label).map((g) => ({ g, windowMs: r.windowMs })),
    );
    const byOp: GroupSummary['byOp'] = {};
    const ops = new Set(parts.flatMap(({ g }) => Object.keys(g.ops) as Op[]));
    for (const op of ops) {
      byOp[op] = summarise(
        parts.flatMap(({ g, windowMs }) => {
          const r = g.ops[op];
          return r ? [{ ...r, windowMs }] : [];
        }),
      );
    }
    const total = summarise(
      parts.flatMap(({ g, windowMs }) => Object.values(g.ops).map((r) => ({ ...r, windowMs }))),
    );
    const errorSamples: Record<string, string> = {};
    for (const { g } of parts) Object.assign(errorSamples, g.errorSamples);
    return {
      ...total,
      label: spec.label,
      workload: spec.workload,
      concurrency: spec.concurrency,
      byOp,
      windowS: Math.max(...parts.map((p) => p.windowMs), 0) / 1000,
      vusLost: parts.reduce((a, { g }) => a + g.vusLost, 0),
      errorSamples,
      sessionsOut: parts.flatMap(({ g }) => g.sessionsOut),
      harvested: parts.flatMap(({ g }) => g.harvested),
    };
  });
}
