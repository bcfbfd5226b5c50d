/**
 * The standard health service (grpc-health-check) with a bound on its Watch streams: at most
 * `maxWatchers` open at once in the process, refused beyond with RESOURCE_EXHAUSTED, each released
 * when its caller cancels or its connection goes. Without it one connection held 20,000 watchers.
 * A Watch of a name this server does not serve gets SERVICE_UNKNOWN and stays open (as the health
 * protocol says) without a place in the library's per-name table, so caller-chosen names never
 * accumulate there.
 */
import {
  status as Code,
  type handleServerStreamingCall,
  type Server,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';

export interface BoundedHealth {
  setStatus(service: string, status: ServingStatus): void;
  addToServer(server: Server): void;
  /** Watch streams open now. */
  watchers(): number;
}

type WatchCall = ServerWritableStream<{ service: string }, { status: string }>;

export function createHealth(names: string[], maxWatchers: number): BoundedHealth {
  const known = new Set(names);
  const health = new HealthImplementation(Object.fromEntries(names.map((n) => [n, 'NOT_SERVING'])));
  let open = 0;

  const bounded =
    (watch: handleServerStreamingCall<unknown, unknown>) =>
    (call: WatchCall): void => {
      if (open >= maxWatchers) {
        call.emit('error', {
          code: Code.RESOURCE_EXHAUSTED,
          details: `too many health watchers (${maxWatchers}); use Check, or retry later`,
        });
        return;
      }
      open++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        open--;
      };
      call.once('cancelled', release);
      call.once('close', release);
      if (known.has(call.request.service)) watch(call as never);
      else call.write({ status: 'SERVICE_UNKNOWN' });
    };

  return {
    setStatus: (service, status) => health.setStatus(service, status),
    watchers: () => open,
    addToServer(server) {
      health.addToServer({
        addService: (definition, implementation: UntypedServiceImplementation) =>
          server.addService(definition, {
            ...implementation,
            watch: bounded(implementation.watch as handleServerStreamingCall<unknown, unknown>),
          }),
      });
    },
  };
}
