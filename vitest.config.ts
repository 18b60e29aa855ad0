import { defineConfig } from 'vitest/config';

// The quick suite (`npm test`). Slow suites (real kernel trees, qemu boots, long fuzz runs)
// live in files named *.slow.test.ts and run with `npm run test:slow`.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/**/*.slow.test.ts', 'node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
