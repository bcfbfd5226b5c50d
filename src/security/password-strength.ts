/**
 * New passwords (Register, ChangePassword) must not be well-known common or breached passwords,
 * nor built from the account's own email or display name. The knowledge is offline (zxcvbn-ts'
 * dictionaries, in strength-worker.ts), the check runs on a worker thread behind a bounded, fair
 * queue (a flood of crafted passwords costs the worker, never the event loop), and a password
 * passes with a zxcvbn score of at least 3 (about 10^8 guesses), given the user's own words.
 */
import { Worker } from 'node:worker_threads';
import { createLimiter, type RunOptions } from './limiter.js';

export interface PasswordStrength {
  /** Why `password` is too weak for this account, or null when it is fine. */
  problem(
    password: string,
    account: { email: string; displayName: string },
    options?: RunOptions,
  ): Promise<string | null>;
}

export const MIN_SCORE = 3;

/** The account's own words: the email's local part and domain name, the display name, and their pieces. */
export function personalWords(account: { email: string; displayName: string }): string[] {
  const [local = '', domain = ''] = account.email.toLowerCase().split('@');
  const name = account.displayName.toLowerCase();
  const pieces = [
    local,
    ...local.split(/[._+-]+/),
    domain.split('.')[0] ?? '',
    name,
    name.replace(/\s+/g, ''),
    ...name.split(/\s+/),
  ];
  return [...new Set(pieces.filter((p) => p.length >= 3))];
}

/** A plain rule zxcvbn misses when the words are spread out: take the account's own words away
 * (longest first) and fewer than 4 letters are left. */
export function builtFromAccount(password: string, words: readonly string[]): boolean {
  const letters = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '');
  const bare = letters(password);
  const rest = [...words]
    .map(letters)
    .sort((a, b) => b.length - a.length)
    .reduce((left, w) => (w ? left.split(w).join('') : left), bare);
  return rest !== bare && rest.replace(/\p{N}/gu, '').length < 4;
}

/**
 * The estimator's worker, one per process, started at the first check (its dictionaries take about
 * a second and 40 MB to load) and shared by every server in the process; it keeps the process alive
 * only while a check is in flight.
 */
let worker: Worker | undefined;
let nextId = 0;
const waiting = new Map<
  number,
  { resolve: (r: { score: number; warning: string }) => void; reject: (e: Error) => void }
>();
function estimator(): Worker {
  if (worker) return worker;
  // Built, the worker is the .js file beside this one; from the TypeScript sources (tests, npm run
  // dev) a small bootstrap loads the .ts file through tsx.
  const entry = import.meta.url.endsWith('.ts') ? './strength-worker.dev.mjs' : './strength-worker.js';
  const w = new Worker(new URL(entry, import.meta.url));
  w.on('message', (m: { id: number; score?: number; warning?: string; error?: string }) => {
    const p = waiting.get(m.id);
    waiting.delete(m.id);
    if (waiting.size === 0) w.unref(); // idle: never keeps the process alive
    if (m.error !== undefined) p?.reject(new Error(m.error));
    else p?.resolve({ score: m.score ?? 0, warning: m.warning ?? '' });
  });
  w.on('error', (err) => {
    for (const p of waiting.values()) p.reject(err);
    waiting.clear();
    worker = undefined;
  });
  worker = w;
  return w;
}
const score = (password: string, userInputs: string[]) =>
  new Promise<{ score: number; warning: string }>((resolve, reject) => {
    const id = nextId++;
    waiting.set(id, { resolve, reject });
    const w = estimator();
    w.ref(); // busy: the answer is awaited
    w.postMessage({ id, password, userInputs });
  });

export function createPasswordStrength(options: {
  queueMax: number;
  perSourceMax: number;
}): PasswordStrength {
  const limiter = createLimiter({
    concurrency: 1,
    queueMax: options.queueMax,
    perSourceMax: options.perSourceMax,
    busyMessage: 'too many password checks in progress; retry in a few seconds',
  });

  return {
    async problem(password, account, runOptions) {
      const words = personalWords(account);
      if (builtFromAccount(password, words))
        return 'must not be built from your email address or display name';
      const result = await limiter.run(() => score(password, words), runOptions);
      if (result.score >= MIN_SCORE) return null;
      const why = result.warning
        ? `${result.warning.replace(/\.$/, '').replace(/^./, (c) => c.toLowerCase())}; `
        : '';
      return `is too easy to guess (${why}use a longer phrase of uncommon words)`;
    },
  };
}
