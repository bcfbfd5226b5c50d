/**
 * Judges a new password by what zxcvbn-ts matched in it, not by its score alone. zxcvbn charges a
 * character it cannot explain 10 guesses, so every random 8-character password scores 2 (10^8) and
 * a bare score threshold refuses random passwords along with `password1!`. Here a password zxcvbn
 * scores below 3 is estimated again: the patterns a person would use (common passwords, words and
 * names, the account's own words, keyboard runs, repeats, sequences, years and dates) keep
 * zxcvbn's guesses, and every character no such pattern explains counts what a guesser must try
 * for it: 26 for a letter, 10 for a digit, 33 for anything else. Below 10^6 guesses it is refused.
 * Measured: random 8-character [A-Za-z0-9] passwords re-estimate at ≥ 10^6.4 (100,000 of 100,000);
 * `password1!` 10^3.9, `Summer2024!` 10^4.9, `Monkey12!` 10^5.2.
 *
 * Used by the strength worker (strength-worker.ts) and directly by the unit tests. Loading the
 * dictionaries takes about a second and 40 MB.
 */
import { type MatchExtended, ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as common from '@zxcvbn-ts/language-common';
import * as en from '@zxcvbn-ts/language-en';

/** zxcvbn's score (0–4) from which a password passes whatever it contains (≥ 10^8 guesses). */
export const PASS_SCORE = 3;
/** Below it (log10 of the re-estimated guesses) a password that scores under PASS_SCORE is refused. */
export const MIN_GUESSES_LOG10 = 6;

export type Weakness =
  | 'common password'
  | 'your email or name'
  | 'word or name'
  | 'keyboard pattern'
  | 'repeated characters'
  | 'sequence'
  | 'year or date';

export interface Verdict {
  score: number;
  /** null: strong enough. Otherwise the main kind of pattern that explains the password. */
  weakness: Weakness | null;
  /** log10 of the re-estimated guesses (Infinity when zxcvbn's score passes it already). */
  guessesLog10: number;
}

const LOWER_OR_CAPITALISED_OR_UPPER = /^(?:\p{Ll}+|\p{Lu}\p{Ll}*|\p{Lu}+)$/u;

/** A dictionary match in the case a person writes a word in: lower, Capitalised or ALL CAPS. */
function writtenLikeAWord(token: string): boolean {
  const letters = token.replace(/[^\p{L}]/gu, '');
  return letters === '' || LOWER_OR_CAPITALISED_OR_UPPER.test(letters);
}

/** More letters than other characters (a l33t spelling of a word, not digits read as letters). */
function mostlyLetters(token: string): boolean {
  const letters = token.replace(/[^\p{L}]/gu, '').length;
  return letters > token.length - letters;
}

/**
 * The kind of pattern a match is, when it is one a person would choose; null for what random
 * characters produce by chance (`44rEN` as l33t of "aaren", a run of 3 keys).
 */
export function patternOf(m: MatchExtended): Weakness | null {
  const length = m.j - m.i + 1;
  switch (m.pattern) {
    case 'dictionary': {
      if (length < 3) return null;
      if (m.dictionaryName === 'userInputs') return length >= 4 ? 'your email or name' : null;
      if (!writtenLikeAWord(m.token)) return null;
      // l33t that swaps as many characters as it keeps is what random text produces (`P0WE17`, `730`)
      if (m.l33t && !mostlyLetters(m.token)) return null;
      return m.dictionaryName.startsWith('passwords') ? 'common password' : 'word or name';
    }
    case 'wordSequence':
      // short runs of number or zodiac names turn up in random text by chance (`owtxo`, `OneOX`)
      return length >= 6 && writtenLikeAWord(m.token) ? 'word or name' : null;
    case 'spatial':
      return length >= 4 ? 'keyboard pattern' : null;
    case 'repeat':
      return length >= 4 ? 'repeated characters' : null;
    case 'sequence':
      return length >= 4 ? 'sequence' : null;
    case 'regex':
    case 'date':
      return length >= 4 ? 'year or date' : null;
    default:
      return null;
  }
}

/**
 * log10 of the guesses one unexplained character is worth: 26 for a letter (52 when the
 * unexplained letters mix cases, as random ones do: a guesser must try both), 10 for a digit, 33
 * for anything else.
 */
function charLog10(ch: string, mixedCase: boolean): number {
  if (/\p{L}/u.test(ch)) return Math.log10(mixedCase ? 52 : 26);
  if (/\p{N}/u.test(ch)) return 1;
  return Math.log10(33);
}

export function createPasswordJudge() {
  // The list itself, whole: zxcvbn may explain a listed password more cheaply in pieces.
  const listed = new Set((common.dictionary['passwords-common'] as string[]).map((p) => p.toLowerCase()));
  const zxcvbn = new ZxcvbnFactory({
    dictionary: { ...common.dictionary, ...en.dictionary },
    graphs: common.adjacencyGraphs,
    translations: en.translations,
  });

  /** The pattern matches zxcvbn's best explanation uses, and those inside its unexplained runs. */
  function patterns(password: string, userInputs: string[]): { m: MatchExtended; kind: Weakness }[] {
    const found: { m: MatchExtended; kind: Weakness }[] = [];
    for (const m of zxcvbn.check(password, userInputs).sequence) {
      const kind = patternOf(m);
      if (kind) found.push({ m, kind });
      else if (m.pattern === 'bruteforce' && m.j - m.i + 1 >= 4) {
        // zxcvbn leaves a run unexplained when 10 per character is cheaper than its pattern plus
        // the cost of one more match ("2024!" in "Summer2024!"): look inside the run on its own.
        for (const inner of zxcvbn.check(m.token, userInputs).sequence) {
          const innerKind = patternOf(inner);
          if (innerKind) found.push({ m: { ...inner, i: inner.i + m.i, j: inner.j + m.i }, kind: innerKind });
        }
      }
    }
    return found;
  }

  return {
    judge(password: string, userInputs: string[]): Verdict {
      const result = zxcvbn.check(password, userInputs);
      if (listed.has(password.toLowerCase())) {
        return { score: result.score, weakness: 'common password', guessesLog10: result.guessesLog10 };
      }
      if (result.score >= PASS_SCORE) {
        return { score: result.score, weakness: null, guessesLog10: Number.POSITIVE_INFINITY };
      }
      // zxcvbn's indices count UTF-16 code units, like String.prototype.slice.
      const covered = new Array<boolean>(password.length).fill(false);
      const weight = new Map<Weakness, number>();
      let guessesLog10 = 0;
      for (const { m, kind } of patterns(password, userInputs)) {
        guessesLog10 += Math.log10(Math.max(1, Number(m.guesses ?? 1)));
        for (let k = m.i; k <= m.j; k++) covered[k] = true;
        weight.set(kind, (weight.get(kind) ?? 0) + (m.j - m.i + 1));
      }
      const unexplained = [...password].filter((_, k) => !covered[k]).join('');
      const mixedCase = /\p{Ll}/u.test(unexplained) && /\p{Lu}/u.test(unexplained);
      for (let k = 0; k < password.length; k++) {
        if (!covered[k]) guessesLog10 += charLog10(password[k] ?? '', mixedCase);
      }
      const main = [...weight].sort((x, y) => y[1] - x[1])[0]?.[0];
      const weakness = guessesLog10 < MIN_GUESSES_LOG10 ? (main ?? 'common password') : null;
      return { score: result.score, weakness, guessesLog10 };
    },
  };
}
