/**
 * Unicode security rules (UTS #39) for text shown to other people: the confusables skeleton, the
 * scripts of a character (Script_Extensions, from the regex property escapes of Node's own ICU),
 * the "highly restrictive" mixing rule, and the letters that draw nothing. Pure: part of the domain
 * core (src/validation.ts uses it), imports only its data table.
 */
import { ASCII_CONFUSABLES } from './confusables.js';

/**
 * The UTS #39 skeleton, for the characters that look like ASCII letters and digits:
 * NFD, each character replaced by its prototype, NFD again. Characters outside the table stay.
 */
export function asciiSkeleton(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFD')) out += ASCII_CONFUSABLES.get(ch) ?? ch;
  return out.normalize('NFD');
}

/**
 * A whole-script confusable with an ASCII name: text that is not ASCII but whose skeleton is
 * (`раураӏ`, all Cyrillic, reads as `paypai`). Returns that ASCII reading, or null.
 */
export function readsAsAscii(text: string): string | null {
  if (/^[\x20-\x7e]*$/.test(text)) return null;
  const skeleton = asciiSkeleton(text);
  return /^[\x20-\x7e]+$/.test(skeleton) ? skeleton : null;
}

/** Unicode 17 script names (long form, as regex property escapes take them; Node 20 has Unicode 17). */
const SCRIPT_NAMES =
  `Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak Bengali
Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham
Cherokee Chorasmian Coptic Cuneiform Cypriot Cypro_Minoan Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan
Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi
Gurmukhi Han Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic Inscriptional_Pahlavi
Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khmer Khojki
Khudawadi Lao Latin Lepcha Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean
Marchen Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi
Mongolian Mro Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong
Ogham Ol_Chiki Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian
Old_Turkic Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi
Rejang Runic Samaritan Saurashtra Sharada Shavian Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo
Sundanese Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil Tangsa Tangut Telugu Thaana
Thai Tibetan Tifinagh Tirhuta Toto Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square
Garay Gurung_Khema Kirat_Rai Ol_Onal Sunuwar Todhri Tulu_Tigalari Beria_Erfe Sidetic Tai_Yo Tolong_Siki`
    .split(/\s+/)
    .flatMap((name) => {
      try {
        return [[name, new RegExp(`^\\p{Script_Extensions=${name}}$`, 'u')] as const];
      } catch {
        return []; // a name this Node's ICU does not know
      }
    });

/** The script names this Node knows (for the completeness test). */
export const KNOWN_SCRIPTS: readonly string[] = SCRIPT_NAMES.map(([name]) => name);

/** Characters that belong to no one script (punctuation, digits 0-9, most symbols, combining marks). */
const COMMON_OR_INHERITED = /^[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]$/u;

/** The scripts a character is used with (Script_Extensions); empty for Common and Inherited. */
export function scriptsOfChar(ch: string): string[] {
  if (COMMON_OR_INHERITED.test(ch)) return [];
  const found = SCRIPT_NAMES.filter(([, re]) => re.test(ch)).map(([name]) => name);
  return found.length > 0 ? found : ['Unknown']; // a script newer than this list: one more script
}

/**
 * UTS #39 "highly restrictive": the characters of one word (Common and Inherited aside) share a
 * script, or all fall in one of these sets: Latin with Japanese (Han, Hiragana, Katakana), with
 * Chinese (Han, Bopomofo), or with Korean (Han, Hangul).
 */
const ALLOWED_SETS: readonly (readonly string[])[] = [
  ['Latin', 'Han', 'Hiragana', 'Katakana'],
  ['Latin', 'Han', 'Bopomofo'],
  ['Latin', 'Han', 'Hangul'],
];

export function mixesScripts(word: string): boolean {
  const sets = [...word].map(scriptsOfChar).filter((s) => s.length > 0);
  if (sets.length <= 1) return false;
  const first = sets[0] ?? [];
  if (first.some((script) => sets.every((s) => s.includes(script)))) return false;
  return !ALLOWED_SETS.some((allowed) => sets.every((s) => s.some((script) => allowed.includes(script))));
}

/** The words of a text: what lies between spaces, punctuation and symbols. */
export function wordsOf(text: string): string[] {
  return text.split(/[\s\p{P}\p{S}]+/u).filter((w) => w !== '');
}

/**
 * Letters that draw nothing: the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), the Khmer
 * inherent vowels (U+17B4, U+17B5), the combining grapheme joiner (U+034F) and the braille blank
 * (U+2800). Unicode lists them as default-ignorable or blank; a name of them looks empty, and one
 * among letters looks like a space.
 */
export const INVISIBLE_LETTER_RE = /[\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0]/u;

/** The most combining marks (nonspacing or enclosing) a letter may carry: more is "Zalgo" text. */
export const MAX_MARKS_PER_LETTER = 2;

const STACKED_RE = new RegExp(`[^\\p{Mn}\\p{Me}]?[\\p{Mn}\\p{Me}]{${MAX_MARKS_PER_LETTER + 1},}`, 'u');

/**
 * The first letter with more than MAX_MARKS_PER_LETTER combining marks, with its marks; or null.
 * Counted on the decomposed form (NFD), so a precomposed letter (é) counts its accent too.
 */
export function stackedMarks(text: string): string | null {
  return STACKED_RE.exec(text.normalize('NFD'))?.[0]?.normalize('NFC') ?? null;
}

/** A caller's value as echoed in a message: at most 64 characters, cut with an ellipsis. */
export function echo(value: string, max = 64): string {
  const chars = [...value];
  return chars.length <= max ? value : `${chars.slice(0, max - 1).join('')}…`;
}
