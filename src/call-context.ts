/**
 * The AbortSignal of the RPC being served, available to code that the call reaches without
 * passing it through every signature (the pool's acquire hook in src/db uses it, so a call whose
 * deadline passed while it waited for a connection does not go on to use one).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const storage = new AsyncLocalStorage<AbortSignal>();

export const runWithCallSignal = <T>(signal: AbortSignal, work: () => T): T => storage.run(signal, work);

export const currentCallSignal = (): AbortSignal | undefined => storage.getStore();
