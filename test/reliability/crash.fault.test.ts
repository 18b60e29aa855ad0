/** Quick form of the fault-injection crash sweep: every 9th write/sync point plus the first and last few. */
import { crashSweep } from './crash-sweep.js';

crashSweep({ pick: (k, total) => k <= 2 || k > total - 2 || k % 9 === 0, torn: false });
