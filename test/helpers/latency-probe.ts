/**
 * GetUser latencies from their own process, so the measuring client does not share the server's
 * event loop: `tsx test/helpers/latency-probe.ts <address> <token> <userId> <concurrency> <ms>`.
 * Warms up for 500 ms, then prints the latencies (ms) of the calls made in the window as JSON.
 */
import { connect } from '../../src/client.js';

const [address, token, userId, concurrency, windowMs] = process.argv.slice(2);
const client = connect(address as string, { token, deadlineMs: 10_000 });
const getUser = () => client.users.getUser({ lookup: { $case: 'id', value: userId as string } });

const run = async (ms: number, record: number[] | undefined) => {
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: Number(concurrency) }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        await getUser();
        record?.push(performance.now() - t);
      }
    }),
  );
};
await run(500, undefined);
const latencies: number[] = [];
await run(Number(windowMs), latencies);
client.close();
process.stdout.write(`${JSON.stringify(latencies)}\n`);
