/**
 * The echo ceiling: a bare grpc-js server, in its own process, with one unary method that sends
 * the request bytes straight back (no decoding, no auth, no database, no logging). The runner
 * sends it an encoded User message, so request and answer are the size of a GetUser answer.
 * What the real server reaches against this, with the same clients, is the cost of everything
 * it does beyond gRPC itself.
 *
 * Reports its port to the parent over IPC: `{ type: 'listening', port }`.
 */
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
} from '@grpc/grpc-js';

const identity = (b: Buffer) => b;

export const ECHO_SERVICE: ServiceDefinition = {
  echo: {
    path: '/bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: 'Echo',
  },
};

const server = new Server();
server.addService(ECHO_SERVICE, {
  echo: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
    callback(null, call.request),
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`echo server: ${err.message}\n`);
    process.exit(1);
  }
  process.send?.({ type: 'listening', port });
});

const stop = () => server.tryShutdown(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('disconnect', () => process.exit(0));
