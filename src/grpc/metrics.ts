/**
 * A grpc-js server interceptor that reports every RPC the server handles (our services, health
 * and reflection alike) to an `RpcObserver`: started, each message received and sent, and the
 * final code with the handling time. A call the client cancels, or whose deadline passes, ends
 * without a status from the handler: it counts as CANCELLED or DEADLINE_EXCEEDED, as in grpc-go.
 */
import {
  status as Code,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
} from '@grpc/grpc-js';

export type RpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

export interface RpcRecorder {
  started(): void;
  received(): void;
  sent(): void;
  handled(code: Code, seconds: number): void;
}

export interface RpcObserver {
  /** The recorder of one method, asked once per method path. */
  method(info: { type: RpcType; service: string; method: string }): RpcRecorder;
}

const typeOf = (d: ServerMethodDefinition<unknown, unknown>): RpcType =>
  d.requestStream
    ? d.responseStream
      ? 'bidi_stream'
      : 'client_stream'
    : d.responseStream
      ? 'server_stream'
      : 'unary';

/** `/pkg.Service/Method` → service and method names. */
export function splitPath(path: string): { service: string; method: string } {
  const slash = path.lastIndexOf('/');
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}

const deadlinePassed = (call: ServerInterceptingCallInterface) => {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) && at <= Date.now();
};

export function rpcMetricsInterceptor(observer: RpcObserver): ServerInterceptor {
  const recorders = new Map<string, RpcRecorder>();
  const recorderOf = (descriptor: ServerMethodDefinition<unknown, unknown>) => {
    let recorder = recorders.get(descriptor.path);
    if (!recorder) {
      recorder = observer.method({ type: typeOf(descriptor), ...splitPath(descriptor.path) });
      recorders.set(descriptor.path, recorder);
    }
    return recorder;
  };
  return (descriptor, call) => {
    const recorder = recorderOf(descriptor);
    const startedAt = performance.now();
    recorder.started();
    let done = false;
    const finish = (code: Code) => {
      if (done) return;
      done = true;
      recorder.handled(code, (performance.now() - startedAt) / 1000);
    };
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMessage(message, nextMessage) {
            recorder.received();
            nextMessage(message);
          },
          onCancel() {
            finish(deadlinePassed(call) ? Code.DEADLINE_EXCEEDED : Code.CANCELLED);
          },
        });
      },
      sendMessage(message, nextMessage) {
        recorder.sent();
        nextMessage(message);
      },
      sendStatus(status, nextStatus) {
        finish(status.code);
        nextStatus(status);
      },
    });
  };
}
