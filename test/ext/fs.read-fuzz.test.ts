/** Random metadata corruption, a quick round (see read-fuzz-suite.ts). */
import { fuzzSuite } from './read-fuzz-suite.js';

fuzzSuite(60, 20261128);
