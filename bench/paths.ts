/** Where things are, whether this runs from bench/ (tsx) or from dist/bench/ (compiled). */
import fs from 'node:fs';
import path from 'node:path';

/** The repository root: the nearest folder above this file with a package.json. */
export const ROOT = (() => {
  let dir = import.meta.dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && dir !== path.dirname(dir)) dir = path.dirname(dir);
  return dir;
})();

/** Compiled by `npm run build`: what the bench runs, so no TypeScript loader is in a measured process. */
export const SERVER_MAIN = path.join(ROOT, 'dist/src/main.js');
export const LOAD_WORKER = path.join(ROOT, 'dist/bench/load-worker.js');
export const ECHO_SERVER = path.join(ROOT, 'dist/bench/echo-server.js');

export const GHZ_DIR = path.join(ROOT, 'bench/ghz');
