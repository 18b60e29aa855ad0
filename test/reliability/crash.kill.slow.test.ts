/** Slow form of the kill -9 sweep: 200 seeded kills of the real CLI process (ULFS_KILL_RUNS overrides). */
import { killSweep } from './kill-sweep.js';

killSweep(Number(process.env.ULFS_KILL_RUNS ?? 200), Number(process.env.ULFS_KILL_SEED ?? 20261128));
