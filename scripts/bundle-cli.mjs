#!/usr/bin/env node
// Part of `npm run build`, after tsc: replaces dist/cli/main.js (the `ulfs-offline` bin) with one
// esbuild bundle of the CLI. Node then loads one file instead of ~60 modules: a command starts
// about 0.1 s sooner. The library (dist/index.js) stays tsc's output. The native compression
// addons stay outside (loaded with require, resolved from node_modules as before); `require` is
// defined for the CommonJS code the bundle holds (commander).
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(repo, 'src/cli/main.ts')],
  outfile: join(repo, 'dist/cli/main.js'), // the same depth as before: ../../package.json holds
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['zstd-napi', 'lzma-native'],
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);",
  },
  allowOverwrite: true,
  logLevel: 'warning',
});
