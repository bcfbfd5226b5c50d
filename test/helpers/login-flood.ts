/**
 * A login flood from its own process (so its client work does not share the server's event loop):
 * `tsx test/helpers/login-flood.ts <address> <email> <password> <concurrency> <seconds>`.
 * Each loop logs in again at once after an answer, and 20 ms after a RESOURCE_EXHAUSTED (a client
 * that backs off a little). Prints `{"OK": n, "RESOURCE_EXHAUSTED": n, ...}` at the end.
 */
import { Code, connect, type ServiceError } from '../../src/client.js';

const [address, email, password, concurrency, seconds] = process.argv.slice(2);
const client = connect(address as string, { deadlineMs: 30_000 });
const end = Date.now() + Number(seconds) * 1000;
const codes: Record<string, number> = {};
await Promise.all(
  Array.from({ length: Number(concurrency) }, async () => {
    while (Date.now() < end) {
      const code = await client.auth.login({ email: email as string, password: password as string }).then(
        () => 'OK',
        (e: ServiceError) => Code[e.code] as string,
      );
      codes[code] = (codes[code] ?? 0) + 1;
      if (code === 'RESOURCE_EXHAUSTED') await new Promise((r) => setTimeout(r, 20));
      else if (code !== 'OK') return;
    }
  }),
);
client.close();
process.stdout.write(`${JSON.stringify(codes)}\n`);
