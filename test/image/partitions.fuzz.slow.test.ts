/** The partition-table fuzz properties with many more runs (ULFS_FUZZ_RUNS, default 100,000 each). */
process.env.ULFS_FUZZ_RUNS ??= '100000';
await import('./partitions.fuzz.test.js');
