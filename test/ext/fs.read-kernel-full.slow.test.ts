/** The full Debian kernel's ~4,000 modules through ExtFs (see read-kernel-suite.ts). */
import { kernelSuite } from './read-kernel-suite.js';

kernelSuite('full', 1024);
