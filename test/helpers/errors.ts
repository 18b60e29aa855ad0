/** Runs `fn` and returns the code of the UlfsError it throws ('no error' if none). Anything that is
 * not a UlfsError is rethrown, and a UlfsError's message must be one line (what the CLI prints). */
import { UlfsError } from '../../src/errors.js';

export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof UlfsError)) throw e;
    if (e.message.includes('\n')) throw new Error(`${e.code} message is not one line: ${e.message}`);
    return e.code;
  }
  return 'no error';
}

/** Like codeOf, with the message: `CODE: message` ('no error' if none). */
export function codeAndMessageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof UlfsError)) throw e;
    return `${e.code}: ${e.message}`;
  }
  return 'no error';
}
