/**
 * CPU and memory of the server from the outside: /proc/<pid>/stat (CPU ticks, parent pid) and
 * /proc/<pid>/status (VmRSS) of the server process and all its descendants, split into the Node
 * processes (the server, its cluster workers) and the embedded PostgreSQL (postmaster and
 * backends). CPU is reported in % of one core (200 % = both cores of this machine).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, seconds */
  cpuS: number;
}

function readStat(pid: number): ProcInfo | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may contain spaces: the fields after the last ')' are fixed.
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const f = text.slice(close + 2).split(' ');
    // after comm: state(0) ppid(1) ... utime(11) stime(12)
    return { pid, ppid: Number(f[1]), comm, cpuS: (Number(f[11]) + Number(f[12])) / CLK_TCK };
  } catch {
    return null; // exited meanwhile
  }
}

function readRssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export type ProcKind = 'node' | 'postgres' | 'other';

const kindOf = (comm: string): ProcKind =>
  comm.startsWith('postgres') ? 'postgres' : /node|MainThread/.test(comm) ? 'node' : 'other';

export interface TreeSample {
  at: number;
  procs: (ProcInfo & { kind: ProcKind; rssMb: number })[];
}

/** The process `root` and every descendant of it, right now. */
export function sampleTree(root: number): TreeSample {
  const all = new Map<number, ProcInfo>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = readStat(Number(name));
    if (info) all.set(info.pid, info);
  }
  const children = new Map<number, number[]>();
  for (const p of all.values()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const procs: TreeSample['procs'] = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop() as number;
    const info = all.get(pid);
    if (!info) continue;
    const kind = kindOf(info.comm);
    procs.push({ ...info, kind, rssMb: kind === 'node' ? readRssMb(pid) : 0 });
    stack.push(...(children.get(pid) ?? []));
  }
  return { at: performance.now(), procs };
}

/** Node processes in the tree of `root` (the server and its cluster workers). */
export const nodeProcessCount = (root: number): number =>
  sampleTree(root).procs.filter((p) => p.kind === 'node').length;

/** Whole-machine CPU counters from /proc/stat, seconds: busy (not idle, iowait or steal) and steal. */
function machineCpu(): { busyS: number; stealS: number } {
  try {
    const f = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return { busyS: (user + nice + system + irq + softirq) / CLK_TCK, stealS: steal / CLK_TCK };
  } catch {
    return { busyS: 0, stealS: 0 };
  }
}

export interface UsageSummary {
  /** CPU of the server's Node processes, % of one core, averaged over the window. */
  serverCpuPct: number;
  /** CPU of the embedded PostgreSQL (all its processes). */
  pgCpuPct: number;
  /** RSS of the server's Node processes (summed), MB: mean and peak of the samples. */
  rssMeanMb: number;
  rssPeakMb: number;
  nodeProcs: number;
  samples: number;
  /** The whole machine's busy CPU (every process, ours and others'), % of one core. */
  machineBusyPct: number;
  /** CPU the hypervisor gave to other guests while we wanted it, % of one core. */
  stealPct: number;
}

/** Samples the tree of `root` every `intervalMs` until `stop()`. */
export class TreeSampler {
  private readonly samples: TreeSample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private machineAtStart = machineCpu();

  constructor(
    private readonly root: number,
    private readonly intervalMs = 500,
  ) {}

  start(): this {
    this.machineAtStart = machineCpu();
    this.samples.push(sampleTree(this.root));
    this.timer = setInterval(() => this.samples.push(sampleTree(this.root)), this.intervalMs);
    return this;
  }

  stop(): UsageSummary {
    clearInterval(this.timer);
    this.samples.push(sampleTree(this.root));
    const machine = machineCpu();
    const first = this.samples[0] as TreeSample;
    const last = this.samples[this.samples.length - 1] as TreeSample;
    const wallS = Math.max(0.001, (last.at - first.at) / 1000);
    // Per process: CPU between the first and the last sample it appears in.
    const seen = new Map<number, { kind: ProcKind; from: number; to: number }>();
    for (const s of this.samples) {
      for (const p of s.procs) {
        const e = seen.get(p.pid);
        if (e) e.to = p.cpuS;
        else seen.set(p.pid, { kind: p.kind, from: p.cpuS, to: p.cpuS });
      }
    }
    let serverCpuS = 0;
    let pgCpuS = 0;
    for (const e of seen.values()) {
      if (e.kind === 'postgres') pgCpuS += e.to - e.from;
      else if (e.kind === 'node') serverCpuS += e.to - e.from;
    }
    const rss = this.samples.map((s) =>
      s.procs.filter((p) => p.kind === 'node').reduce((a, p) => a + p.rssMb, 0),
    );
    return {
      serverCpuPct: (serverCpuS / wallS) * 100,
      pgCpuPct: (pgCpuS / wallS) * 100,
      rssMeanMb: rss.reduce((a, b) => a + b, 0) / rss.length,
      rssPeakMb: Math.max(...rss),
      nodeProcs: Math.max(...this.samples.map((s) => s.procs.filter((p) => p.kind === 'node').length)),
      samples: this.samples.length,
      machineBusyPct: ((machine.busyS - this.machineAtStart.busyS) / wallS) * 100,
      stealPct: ((machine.stealS - this.machineAtStart.stealS) / wallS) * 100,
    };
  }
}
