/** The hashing queue's fairness: one line per source served in turn, and room made for a newcomer. */
import { expect } from 'chai';
import type { AppError } from '../../src/errors.js';
import { createLimiter } from '../../src/security/limiter.js';

const tick = () => new Promise((r) => setImmediate(r));

/** A limiter whose jobs the test finishes by hand; `order` records which job started, in order. */
function manual(options: { concurrency?: number; queueMax?: number; perSourceMax?: number } = {}) {
  const limiter = createLimiter({
    concurrency: 1,
    queueMax: 100,
    perSourceMax: 100,
    busyMessage: 'busy',
    ...options,
  });
  const order: string[] = [];
  const finishers: (() => void)[] = [];
  const outcome: Record<string, string> = {};
  const submit = (name: string, source: string, signal?: AbortSignal) => {
    const p = limiter.run(
      () =>
        new Promise<void>((resolve) => {
          order.push(name);
          finishers.push(resolve);
        }),
      { source, signal },
    );
    p.then(
      () => {
        outcome[name] = 'OK';
      },
      (e: AppError) => {
        outcome[name] = e.kind;
      },
    );
    return p.catch(() => {});
  };
  /** Finishes the running job(s) one at a time until nothing runs. */
  const drain = async () => {
    while (finishers.length) {
      finishers.shift()?.();
      await tick();
    }
  };
  return { limiter, order, outcome, submit, drain, finish: () => finishers.shift()?.() };
}

describe('hashing queue (fair between sources)', () => {
  it("serves the waiting sources in turn: a newcomer waits at most one job per other waiting source, not for a flood's backlog", async () => {
    const q = manual();
    for (let i = 0; i < 6; i++) q.submit(`a${i}`, 'A'); // a0 runs, a1..a5 wait
    for (let i = 0; i < 3; i++) q.submit(`b${i}`, 'B');
    q.submit('c0', 'C');
    await q.drain();
    expect(q.order).to.deep.equal(['a0', 'a1', 'b0', 'c0', 'a2', 'b1', 'a3', 'b2', 'a4', 'a5']);
  });

  it('serves a source that arrives with nothing waiting before the rotation of backlogs', async () => {
    const q = manual();
    const finishOne = async () => {
      q.finish();
      await tick();
    };
    for (let i = 0; i < 4; i++) q.submit(`a${i}`, 'A');
    await finishOne(); // a1 runs
    q.submit('b0', 'B'); // next: A's backlog is in rotation already
    await q.drain();
    expect(q.order).to.deep.equal(['a0', 'a1', 'b0', 'a2', 'a3']);
  });

  it('when full, refuses the newest waiter of the longest line to make room for a source with nothing waiting', async () => {
    const q = manual({ queueMax: 4 });
    for (let i = 0; i < 4; i++) q.submit(`a${i}`, 'A'); // a0 runs, a1..a3 wait
    q.submit('b0', 'B'); // the queue is full now (4 waiting)
    expect(q.limiter.stats()).to.include({ running: 1, waiting: 4 });
    q.submit('c0', 'C');
    await tick();
    expect(q.outcome.a3, "the flood's newest waiter").to.equal('RESOURCE_EXHAUSTED');
    expect(q.limiter.stats()).to.include({ waiting: 4, refused: 1 });
    q.submit('a4', 'A');
    await tick();
    expect(q.outcome.a4, 'a source already waiting is refused itself').to.equal('RESOURCE_EXHAUSTED');
    expect(() => q.limiter.assertCapacity('A')).to.throw(/busy/);
    expect(() => q.limiter.assertCapacity('D')).to.not.throw();
    await q.drain();
    expect(q.order).to.deep.equal(['a0', 'a1', 'b0', 'c0', 'a2']);
    expect(q.outcome).to.include({ b0: 'OK', c0: 'OK', a2: 'OK' });
  });

  it('makes no room by refusing a source that has a single waiter', async () => {
    const q = manual({ queueMax: 2 });
    q.submit('a0', 'A');
    q.submit('a1', 'A');
    q.submit('b0', 'B');
    q.submit('c0', 'C');
    await tick();
    expect(q.outcome.c0).to.equal('RESOURCE_EXHAUSTED');
    expect(q.outcome.a1).to.equal(undefined);
    await q.drain();
    expect(q.order).to.deep.equal(['a0', 'a1', 'b0']);
  });

  it('keeps HASH_QUEUE_PER_SOURCE: places running and waiting per source', async () => {
    const q = manual({ perSourceMax: 2 });
    q.submit('a0', 'A');
    q.submit('a1', 'A');
    q.submit('a2', 'A');
    await tick();
    expect(q.outcome.a2).to.equal('RESOURCE_EXHAUSTED');
    expect(() => q.limiter.assertCapacity('B')).to.not.throw();
    await q.drain();
    expect(() => q.limiter.assertCapacity('A'), 'places come back').to.not.throw();
  });

  it('never starts the job of a waiter that left, and serves the others in turn', async () => {
    const q = manual();
    const gone = new AbortController();
    q.submit('a0', 'A');
    q.submit('a1', 'A', gone.signal);
    q.submit('b0', 'B');
    gone.abort();
    await tick();
    expect(q.outcome.a1).to.equal('CANCELLED');
    expect(q.limiter.stats()).to.include({ waiting: 1 });
    await q.drain();
    expect(q.order).to.deep.equal(['a0', 'b0']);
    expect(q.limiter.stats()).to.include({ running: 0, waiting: 0, started: 2 });
  });
});
