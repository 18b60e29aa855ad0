/** Matrix oracle, second half: the remaining ext4 entries (1K without csum, 4K all four). */
import { matrixSuite } from './read-matrix-suite.js';

matrixSuite([6, 7, 8, 9, 10, 11]);
