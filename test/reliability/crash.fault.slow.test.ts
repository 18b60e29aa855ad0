/** Slow form of the fault-injection crash sweep: EVERY write/sync point, whole and torn writes. */
import { crashSweep } from './crash-sweep.js';

crashSweep({ pick: () => true, torn: true });
