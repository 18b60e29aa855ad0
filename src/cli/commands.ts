/** Every subcommand, in the order `--help` lists them. Add one import and one entry per command file. */
import { addCommands } from './program.js';
import { registerVersion } from './version.js';
import { registerUndo } from './undo.js';
import { registerInspect } from './inspect.js';
import { registerLs } from './ls.js';
import { registerCaptureScript } from './capture-script.js';
import { registerPrune } from './prune.js';
import { registerInitramfs } from './initramfs.js';
import { registerRm } from './rm.js';
import { registerZeroFree } from './zero-free.js';
import { registerCheck } from './check.js';

addCommands(registerVersion, registerPrune);
addCommands(registerInspect, registerLs, registerCaptureScript);
addCommands(registerUndo);
addCommands(registerInitramfs);
addCommands(registerRm, registerZeroFree, registerCheck);
