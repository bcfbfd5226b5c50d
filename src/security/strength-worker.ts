/**
 * The password-strength judge (password-judge.ts: zxcvbn-ts with its common-password and English
 * dictionaries, and the patterns it matched), run in a worker thread: a check can take half a
 * second of CPU on a crafted 72-byte input, which must not stall the event loop.
 * Messages: `{ id, password, userInputs }` → `{ id, weakness }` (null: fine) or `{ id, error }`.
 */
import { parentPort } from 'node:worker_threads';
import { createPasswordJudge } from './password-judge.js';

const judge = createPasswordJudge();

/**
 * zxcvbn's cost grows fast with length (a random 72-character password takes ~0.6 s, 12 characters
 * ~7 ms). Guessing a password means guessing its beginning too, so a strong prefix proves the whole
 * strong: the prefixes of 12 and 32 characters are tried first, the whole only when they are weak.
 */
const PREFIXES = [12, 32];
function verdict(password: string, userInputs: string[]) {
  const chars = [...password];
  for (const n of PREFIXES) {
    if (chars.length <= n) break;
    const prefix = judge.judge(chars.slice(0, n).join(''), userInputs);
    if (prefix.weakness === null) return prefix;
  }
  return judge.judge(password, userInputs);
}

parentPort?.on('message', (msg: { id: number; password: string; userInputs: string[] }) => {
  try {
    const result = verdict(msg.password, msg.userInputs);
    parentPort?.postMessage({ id: msg.id, weakness: result.weakness });
  } catch (err) {
    parentPort?.postMessage({ id: msg.id, error: String(err) });
  }
});
