import { expect } from 'chai';
import { batchQueueTimeout, createBatcher } from '../../src/db/batcher.js';
import { AppError } from '../../src/errors.js';

/** A load whose batches the test finishes by hand. */
function controlledLoad<K extends { id: string }>() {
  const batches: { keys: K[]; signal: AbortSignal; finish: (err?: Error) => void }[] = [];
  const load = (keys: K[], signal: AbortSignal) =>
    new Promise<Map<string, string>>((resolve, reject) => {
      batches.push({
        keys,
        signal,
        finish: (err) => (err ? reject(err) : resolve(new Map(keys.map((k) => [k.id, `value of ${k.id}`])))),
      });
    });
  return { batches, load };
}
const key = (id: string) => ({ id, extra: { nested: id } });
const tick = () => new Promise((r) => setImmediate(r));

describe('batcher', () => {
  it('sends a lookup at once when nothing is in flight', async () => {
    const { batches, load } = controlledLoad<{ id: string }>();
    const get = createBatcher(
      { load, keyOf: (k) => k.id },
      { maxBatch: 10, maxInFlight: 2, maxWaitMs: 1000 },
    );
    const a = get(key('a'));
    expect(batches).to.have.length(1);
    batches[0]?.finish();
    expect(await a).to.equal('value of a');
  });

  it('coalesces lookups that arrive while maxInFlight batches run, deduplicated by keyOf, and never adds to a sent batch', async () => {
    const { batches, load } = controlledLoad<{ id: string }>();
    const get = createBatcher(
      { load, keyOf: (k) => k.id },
      { maxBatch: 10, maxInFlight: 1, maxWaitMs: 1000 },
    );
    const first = get(key('a'));
    const waiting = [get(key('b')), get(key('c')), get(key('b'))];
    expect(batches, 'the others wait for the slot').to.have.length(1);
    expect(batches[0]?.keys.map((k) => k.id)).to.deep.equal(['a']);
    expect(get.pending()).to.equal(3);
    batches[0]?.finish();
    await first;
    await tick();
    expect(batches).to.have.length(2);
    expect(
      batches[1]?.keys.map((k) => k.id),
      'one key per identity',
    ).to.deep.equal(['b', 'c']);
    batches[1]?.finish();
    expect(await Promise.all(waiting)).to.deep.equal(['value of b', 'value of c', 'value of b']);
  });

  it('splits the queue into batches of at most maxBatch', async () => {
    const { batches, load } = controlledLoad<{ id: string }>();
    const get = createBatcher({ load, keyOf: (k) => k.id }, { maxBatch: 2, maxInFlight: 1, maxWaitMs: 1000 });
    const all = ['a', 'b', 'c', 'd', 'e'].map((id) => get(key(id)));
    for (let i = 0; i < 3; i++) {
      batches[i]?.finish();
      await tick();
    }
    expect(batches.map((b) => b.keys.length)).to.deep.equal([1, 2, 2]);
    await Promise.all(all);
  });

  it('fails a lookup that waits longer than maxWaitMs for a slot with its own RESOURCE_EXHAUSTED', async () => {
    const { batches, load } = controlledLoad<{ id: string }>();
    const get = createBatcher({ load, keyOf: (k) => k.id }, { maxBatch: 10, maxInFlight: 1, maxWaitMs: 5 });
    const first = get(key('a'));
    const err = await get(key('b')).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(AppError);
    expect((err as AppError).kind).to.equal('RESOURCE_EXHAUSTED');
    expect((err as AppError).message).to.equal(batchQueueTimeout(5));
    expect(get.pending()).to.equal(0);
    batches[0]?.finish();
    await first;
    await tick();
    expect(batches, 'the timed-out lookup is never sent').to.have.length(1);
  });

  it('drops a lookup whose caller has gone before its batch is sent, with CANCELLED', async () => {
    const { batches, load } = controlledLoad<{ id: string }>();
    const get = createBatcher(
      { load, keyOf: (k) => k.id },
      { maxBatch: 10, maxInFlight: 1, maxWaitMs: 1000 },
    );
    const first = get(key('a'));
    const gone = new AbortController();
    const dropped = get(key('b'), gone.signal).catch((e: AppError) => e.kind);
    const kept = get(key('c'));
    gone.abort();
    batches[0]?.finish();
    await first;
    await tick();
    expect(await dropped).to.equal('CANCELLED');
    expect(batches[1]?.keys.map((k) => k.id)).to.deep.equal(['c']);
    batches[1]?.finish();
    await kept;
  });

  it("aborts a batch's own signal only when every caller in it has gone", async () => {
    const { batches, load } = controlledLoad<{ id: string }>();
    const get = createBatcher(
      { load, keyOf: (k) => k.id },
      { maxBatch: 10, maxInFlight: 1, maxWaitMs: 1000 },
    );
    const hold = get(key('x'));
    const one = new AbortController();
    const two = new AbortController();
    const a = get(key('a'), one.signal).catch(() => 'gone');
    const b = get(key('b'), two.signal).catch(() => 'gone');
    batches[0]?.finish();
    await hold;
    await tick();
    const batch = batches[1];
    one.abort();
    expect(batch?.signal.aborted, 'one caller remains').to.equal(false);
    two.abort();
    expect(batch?.signal.aborted).to.equal(true);
    batch?.finish(new Error('aborted'));
    expect(await Promise.all([a, b])).to.deep.equal(['gone', 'gone']);
  });

  it('fails every lookup of a batch whose load fails, and keeps serving', async () => {
    const { batches, load } = controlledLoad<{ id: string }>();
    const get = createBatcher(
      { load, keyOf: (k) => k.id },
      { maxBatch: 10, maxInFlight: 1, maxWaitMs: 1000 },
    );
    const a = get(key('a')).catch((e: Error) => e.message);
    batches[0]?.finish(new Error('database down'));
    expect(await a).to.equal('database down');
    const b = get(key('b'));
    batches[1]?.finish();
    expect(await b).to.equal('value of b');
  });
});
