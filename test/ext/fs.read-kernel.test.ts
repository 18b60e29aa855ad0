/** The cloud kernel's modules through ExtFs (see read-kernel-suite.ts). */
import { kernelSuite } from './read-kernel-suite.js';

kernelSuite('cloud', 320);
