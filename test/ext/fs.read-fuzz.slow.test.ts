/** Random metadata corruption, a long round with a seed of its own (see read-fuzz-suite.ts). */
import { fuzzSuite } from './read-fuzz-suite.js';

fuzzSuite(2000, Number(process.env.ULFS_FUZZ_SEED ?? 7));
