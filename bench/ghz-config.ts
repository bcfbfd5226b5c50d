/**
 * The ghz configs in bench/ghz/*.json: checked against ghz's documented config options, and
 * filled with what only a live server can give (a token, a user id, ...).
 *
 * Option names: the JSON config keys of ghz (www/docs/example_config.md uses the long option
 * names: "total", "concurrency", "data", "metadata", "max-duration", "import-paths", ...; the full
 * list is the json tags of `Config` in runner/config.go, one per option in www/docs/options.md).
 * Template actions in data and metadata ({{.UUID}}, {{.RequestNumber}}, {{newUUID}}, ...) are ghz's
 * own (www/docs/calldata.md): they only know ghz's call data, not our variables, and a template
 * that fails is sent as written. So values ghz cannot make are `${NAME}` placeholders that
 * `npm run bench:ghz` fills in before it runs ghz.
 */
import fs from 'node:fs';
import path from 'node:path';
import { GHZ_DIR } from './paths.js';

export const GHZ_CONFIG_KEYS = new Set([
  'proto',
  'protoset',
  'call',
  'cacert',
  'cert',
  'key',
  'skipTLS',
  'skipFirst',
  'cname',
  'authority',
  'insecure',
  'total',
  'async',
  'concurrency',
  'concurrency-schedule',
  'concurrency-start',
  'concurrency-end',
  'concurrency-step',
  'concurrency-step-duration',
  'concurrency-max-duration',
  'connections',
  'rps',
  'duration',
  'duration-stop',
  'max-duration',
  'timeout',
  'data',
  'data-file',
  'binary-file',
  'metadata',
  'metadata-file',
  'stream-interval',
  'output',
  'format',
  'connect-timeout',
  'keepalive',
  'cpus',
  'import-paths',
  'name',
  'tags',
  'reflect-metadata',
  'debug',
  'host',
  'enable-compression',
  'load-schedule',
  'load-start',
  'load-end',
  'load-step',
  'load-step-duration',
  'load-max-duration',
]);

/** ghz's call template data (www/docs/calldata.md) and template functions. */
const GHZ_TEMPLATE =
  /\{\{\s*(\.(WorkerID|RequestNumber|FullyQualifiedName|MethodName|ServiceName|InputName|OutputName|IsClientStreaming|IsServerStreaming|Timestamp|TimestampUnix|TimestampUnixMilli|TimestampUnixNano|UUID)|newUUID|randomString\s+-?\d+|randomInt\s+\d+\s+\d+)\s*\}\}/g;

/** What bench:ghz fills in. A placeholder that is a whole JSON string value may become any JSON value. */
export const PLACEHOLDERS = {
  TOKEN: 'an access token (Login of the ghz user)',
  USER_ID: 'the ghz user id',
  EMAIL: 'the ghz user email',
  PASSWORD: 'the ghz user password',
  IDS: 'an array of 50 user ids (first page of ListUsers)',
  REFRESH_TOKENS: 'an array of {"refresh_token": ...} messages, one per request (each token works once)',
} as const;
export type Placeholder = keyof typeof PLACEHOLDERS;

const DURATION = /^\d+(\.\d+)?(ns|us|µs|ms|s|m|h)$/;
const PLACEHOLDER = /\$\{([A-Z_]+)\}/g;

export function listConfigs(dir = GHZ_DIR): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Problems with one config (empty when it is valid). */
export function validateConfig(config: unknown): string[] {
  const problems: string[] = [];
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return ['not a JSON object'];
  const c = config as Record<string, unknown>;
  for (const key of Object.keys(c)) {
    if (!GHZ_CONFIG_KEYS.has(key)) problems.push(`"${key}" is not a ghz config option`);
  }
  if (typeof c.call !== 'string' || !/^[a-z0-9_.]+\.[A-Z]\w*[/.][A-Z]\w*$/.test(c.call))
    problems.push('"call" must be package.Service/Method');
  if (typeof c.host !== 'string' || !/^[\w.-]+:\d+$/.test(c.host)) problems.push('"host" must be host:port');
  if (c.insecure !== true) problems.push('"insecure": true is needed (the server speaks plaintext)');
  if ('proto' in c || 'protoset' in c) problems.push('use server reflection: no "proto"/"protoset"');
  for (const key of ['duration', 'max-duration', 'timeout', 'connect-timeout']) {
    if (key in c && (typeof c[key] !== 'string' || !DURATION.test(c[key] as string)))
      problems.push(`"${key}" must be a Go duration such as "30s"`);
  }
  for (const key of ['total', 'concurrency', 'connections', 'rps']) {
    if (key in c && (!Number.isInteger(c[key]) || (c[key] as number) < 1))
      problems.push(`"${key}" must be a positive integer`);
  }
  if (!('duration' in c) && !('total' in c)) problems.push('needs "duration" or "total"');
  if (typeof c.concurrency === 'number' && typeof c.connections === 'number' && c.connections > c.concurrency)
    problems.push('"connections" cannot exceed "concurrency"');
  if (c.metadata !== undefined) {
    const md = c.metadata;
    if (typeof md !== 'object' || md === null || Object.values(md).some((v) => typeof v !== 'string'))
      problems.push('"metadata" must map names to strings');
  }
  const dataOk =
    (typeof c.data === 'object' && c.data !== null) ||
    (typeof c.data === 'string' && /^\$\{[A-Z_]+\}$/.test(c.data));
  if (!dataOk) problems.push('"data" must be an object, an array of objects, or a placeholder for one');

  const text = JSON.stringify(c);
  for (const [, name] of text.matchAll(PLACEHOLDER)) {
    if (!(name && name in PLACEHOLDERS)) problems.push(`unknown placeholder \${${name}}`);
  }
  const templates = text.match(/\{\{.*?\}\}/g) ?? [];
  for (const t of templates) {
    if (!t.match(GHZ_TEMPLATE)) problems.push(`${t} is not one of ghz's documented template actions`);
  }
  return problems;
}

/** Replaces placeholders: a whole-string placeholder by the value itself, others inside strings by text. */
export function fillConfig(config: unknown, values: Partial<Record<Placeholder, unknown>>): unknown {
  if (typeof config === 'string') {
    const whole = /^\$\{([A-Z_]+)\}$/.exec(config);
    if (whole?.[1] && whole[1] in values) return values[whole[1] as Placeholder];
    return config.replace(PLACEHOLDER, (m, name: string) => {
      const v = values[name as Placeholder];
      return v === undefined ? m : String(v);
    });
  }
  if (Array.isArray(config)) return config.map((x) => fillConfig(x, values));
  if (typeof config === 'object' && config !== null) {
    return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, fillConfig(v, values)]));
  }
  return config;
}

/** Placeholders a config uses. */
export function placeholdersOf(config: unknown): Placeholder[] {
  return [...new Set([...JSON.stringify(config).matchAll(PLACEHOLDER)].map((m) => m[1] as Placeholder))];
}
