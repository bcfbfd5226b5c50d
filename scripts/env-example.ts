/** Writes .env.example from the convict schema (npm run gen:env); test/config.test.ts checks it is current. */
import { CONFIG_DEFAULTS, CONFIG_DOCS, DEV_SECRET_KEY } from '../src/config.js';

let out = `# ConnectSphere identity service: every setting, with its default.
# Copy to .env (read at start when present; real environment variables win) and uncomment what you change.
`;
for (const [k, d] of Object.entries(CONFIG_DEFAULTS)) {
  out += `\n# ${CONFIG_DOCS[k]}${d === DEV_SECRET_KEY ? ' (default: a public development-only key; generate one with `openssl rand -base64 48`)' : ''}\n# ${k}=${d === DEV_SECRET_KEY ? '' : d}\n`;
}
process.stdout.write(out);
