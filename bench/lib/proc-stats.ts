/**
 * CPU and memory of a process tree from the outside (/proc): the server's Node processes (itself
 * and its cluster workers) and its embedded PostgreSQL (postmaster and backends), plus the whole
 * machine's busy CPU. CPU is in % of one core (200 % = both cores of a 2-core machine).
 */
import fs from 'node:fs';

const TICK_S = 0.01; // USER_HZ: 100 on every Linux architecture
const read = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return ''; // exited meanwhile
  }
};

interface Proc {
  pid: number;
  kind: 'node' | 'postgres' | 'other';
  cpuS: number;
  rssMb: number;
}

/** The process `root` and all its descendants, now. */
export function sampleTree(root: number): Proc[] {
  const all = new Map<number, { ppid: number; comm: string; cpuS: number }>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const text = read(`/proc/${name}/stat`);
    const close = text.lastIndexOf(')'); // comm may hold spaces; the fields after the last ')' are fixed
    if (close < 0) continue;
    const f = text.slice(close + 2).split(' ');
    const comm = text.slice(text.indexOf('(') + 1, close);
    all.set(Number(name), { ppid: Number(f[1]), comm, cpuS: (Number(f[11]) + Number(f[12])) * TICK_S });
  }
  const out: Proc[] = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop() as number;
    const p = all.get(pid);
    if (!p) continue;
    const node = /node|MainThread/.test(p.comm) ? 'node' : 'other';
    const kind = p.comm.startsWith('postgres') ? 'postgres' : node;
    const rss = kind === 'node' ? /^VmRSS:\s+(\d+) kB/m.exec(read(`/proc/${pid}/status`)) : null;
    out.push({ pid, kind, cpuS: p.cpuS, rssMb: rss ? Number(rss[1]) / 1024 : 0 });
    for (const [child, c] of all) if (c.ppid === pid) stack.push(child);
  }
  return out;
}

export const nodeRssMb = (root: number) => sampleTree(root).reduce((a, p) => a + p.rssMb, 0);

function machineBusyS(): number {
  const line = read('/proc/stat').split('\n')[0] ?? '';
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = line.split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) * TICK_S;
}

/** Server (Node) and PostgreSQL CPU, peak RSS and Node processes of the tree, and the machine's busy CPU. */
export type Usage = ReturnType<ReturnType<typeof sampler>>;

/** Samples the tree of `root` every 500 ms until the function it returns is called. */
export function sampler(root: number) {
  const samples: { at: number; procs: Proc[] }[] = [];
  const take = () => samples.push({ at: performance.now(), procs: sampleTree(root) });
  const machineAt = machineBusyS();
  take();
  const timer = setInterval(take, 500);
  return () => {
    clearInterval(timer);
    take();
    const wallS = Math.max(0.001, ((samples.at(-1)?.at ?? 0) - (samples[0]?.at ?? 0)) / 1000);
    // per process: the CPU between the first and the last sample it appears in
    const seen = new Map<number, { kind: Proc['kind']; from: number; to: number }>();
    for (const s of samples)
      for (const p of s.procs) {
        const e = seen.get(p.pid);
        if (e) e.to = p.cpuS;
        else seen.set(p.pid, { kind: p.kind, from: p.cpuS, to: p.cpuS });
      }
    const busy = (kind: Proc['kind']) => [...seen.values()].filter((e) => e.kind === kind);
    const cpu = (kind: Proc['kind']) => (busy(kind).reduce((a, e) => a + e.to - e.from, 0) / wallS) * 100;
    return {
      serverCpuPct: cpu('node'),
      pgCpuPct: cpu('postgres'),
      rssPeakMb: Math.max(...samples.map((s) => s.procs.reduce((a, p) => a + p.rssMb, 0))),
      nodeProcs: Math.max(...samples.map((s) => s.procs.filter((p) => p.kind === 'node').length)),
      machineBusyPct: ((machineBusyS() - machineAt) / wallS) * 100,
    };
  };
}
