/** Every subcommand, in the order `--help` lists them. Add one import and one entry per command file. */
import { addCommands } from './program.js';
import { registerVersion } from './version.js';
import { registerUndo } from './undo.js';

addCommands(registerVersion);
addCommands(registerUndo);
