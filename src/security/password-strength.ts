/**
 * New passwords (Register, ChangePassword) must not be well-known common or breached passwords,
 * keyboard runs, repeats or sequences, nor built from the account's own email or display name; a
 * random one of 8 characters passes. The knowledge is offline (zxcvbn-ts' dictionaries; the rule is
 * password-judge.ts), the check runs on a worker thread behind a bounded, fair queue (a flood of
 * crafted passwords costs the worker, never the event loop), given the user's own words.
 */
import { Worker } from 'node:worker_threads';
import { createLimiter, type RunOptions } from './limiter.js';
import type { Weakness } from './password-judge.js';

export interface PasswordStrength {
  /** Why `password` is too weak for this account, or null when it is fine. */
  problem(
    password: string,
    account: { email: string; displayName: string },
    options?: RunOptions,
  ): Promise<string | null>;
}

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

const EXPLAINED: Record<Weakness, string> = {
  'common password': 'it is mostly a common or breached password',
  'your email or name': 'it is mostly your email address or display name',
  'word or name': 'it is mostly a common word or name with a few characters added',
  'keyboard pattern': 'it is mostly a run of neighbouring keys',
  'repeated characters': 'it is mostly repeated characters',
  sequence: 'it is mostly a sequence such as abcd or 1234',
  'year or date': 'it is mostly a year or a date',
};
/** The caller's message: what made it weak (never the password itself) and what passes. */
export function tooEasy(weakness: Weakness): string {
  return `is too easy to guess (${EXPLAINED[weakness]}); use 8 or more random characters or a longer phrase of uncommon words`;
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
  { resolve: (r: { weakness: Weakness | null }) => void; reject: (e: Error) => void }
>();
function estimator(): Worker {
  if (worker) return worker;
  // Built, the worker is the .js file beside this one; from the TypeScript sources (tests, npm run
  // dev) a small bootstrap loads the .ts file through tsx.
  const entry = import.meta.url.endsWith('.ts') ? './strength-worker.dev.mjs' : './strength-worker.js';
  const w = new Worker(new URL(entry, import.meta.url));
  w.on('message', (m: { id: number; weakness?: Weakness | null; error?: string }) => {
    const p = waiting.get(m.id);
    waiting.delete(m.id);
    if (waiting.size === 0) w.unref(); // idle: never keeps the process alive
    if (m.error !== undefined) p?.reject(new Error(m.error));
    else p?.resolve({ weakness: m.weakness ?? null });
  });
  w.on('error', (err) => {
    for (const p of waiting.values()) p.reject(err);
    waiting.clear();
    worker = undefined;
  });
  worker = w;
  return w;
}
const judge = (password: string, userInputs: string[]) =>
  new Promise<{ weakness: Weakness | null }>((resolve, reject) => {
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
      const result = await limiter.run(() => judge(password, words), runOptions);
      return result.weakness === null ? null : tooEasy(result.weakness);
    },
  };
}
