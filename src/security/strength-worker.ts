/**
 * The password-strength estimator (zxcvbn-ts, with its common-password and English dictionaries),
 * run in a worker thread: a check can take half a second of CPU on a crafted 72-byte input, which
 * must not stall the event loop. Messages: `{ id, password, userInputs }` → `{ id, score, warning }`.
 */
import { parentPort } from 'node:worker_threads';
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as common from '@zxcvbn-ts/language-common';
import * as en from '@zxcvbn-ts/language-en';

const zxcvbn = new ZxcvbnFactory({
  dictionary: { ...common.dictionary, ...en.dictionary },
  graphs: common.adjacencyGraphs,
  translations: en.translations,
});

/**
 * zxcvbn's cost grows fast with length (a random 72-character password takes ~0.6 s, 12 characters
 * ~7 ms). Guessing a password means guessing its beginning too, so a strong prefix proves the whole
 * strong: the prefixes of 12 and 32 characters are tried first, the whole only when they are weak.
 */
const PREFIXES = [12, 32];
function estimate(password: string, userInputs: string[]) {
  const chars = [...password];
  for (const n of PREFIXES) {
    if (chars.length <= n) break;
    const prefix = zxcvbn.check(chars.slice(0, n).join(''), userInputs);
    if (prefix.score >= MIN_SCORE) return prefix;
  }
  return zxcvbn.check(password, userInputs);
}
const MIN_SCORE = 3;

parentPort?.on('message', (msg: { id: number; password: string; userInputs: string[] }) => {
  try {
    const result = estimate(msg.password, msg.userInputs);
    parentPort?.postMessage({ id: msg.id, score: result.score, warning: result.feedback.warning ?? '' });
  } catch (err) {
    parentPort?.postMessage({ id: msg.id, error: String(err) });
  }
});
