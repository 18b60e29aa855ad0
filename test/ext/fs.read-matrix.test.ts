/** Matrix oracle, first half: ext2 and ext3 (1K/4K), ext4 1K with and without metadata_csum/64bit. */
import { matrixSuite } from './read-matrix-suite.js';

matrixSuite([0, 1, 2, 3, 4, 5]);
