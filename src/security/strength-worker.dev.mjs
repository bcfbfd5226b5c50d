// The strength worker when the server runs from its TypeScript sources (tests, npm run dev): a
// loader registered in the parent does not reach a worker thread in Node 20, so load it with tsx here.
import { tsImport } from 'tsx/esm/api';

await tsImport('./strength-worker.ts', import.meta.url);
