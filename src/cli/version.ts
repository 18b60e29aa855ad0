import type { Register } from './program.js';
import { createRequire } from 'node:module';

export const registerVersion: Register = (program) => {
  const require = createRequire(import.meta.url);
  const pkg = require('../../package.json') as { version: string };
  program.version(pkg.version, '-V, --version');
};
