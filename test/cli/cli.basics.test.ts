import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';

describe('cli basics', () => {
  it('prints the version', async () => {
    const r = await cli('--version');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
  it('an unknown command is a usage error (exit 2)', async () => {
    const r = await cli('no-such-verb');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command/);
  });
});
