/**
 * The echo ceiling: a bare grpc-js server in its own process whose one unary method sends the
 * request bytes straight back (no decoding, auth, database or logging). The bench sends it an
 * encoded User, so both ways are the size of a GetUser answer; what the real server reaches against
 * this, with the same clients, is the cost of everything it does beyond gRPC itself. Started like
 * the real server (lib/server-process.ts): it prints `{"msg":"SERVING","port":N}`.
 */
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';

const server = new Server();
const echo = (call: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => done(null, call.request);
server.register(
  '/bench.Echo/Echo',
  echo,
  (b: Buffer) => b,
  (b: Buffer) => b,
  'unary',
);
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${JSON.stringify({ msg: 'SERVING', port })}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
