/**
 * The crash test of crash.write.test.ts with every k (the quick suite samples k).
 */
process.env.ULFS_CRASH_ALL = '1';
await import('./crash.write.test.js');
