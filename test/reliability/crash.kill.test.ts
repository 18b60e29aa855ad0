/** Quick form of the kill -9 sweep: a handful of seeded kills of the real CLI process. */
import { killSweep } from './kill-sweep.js';

killSweep(3, 7);
