/**
 * Saving to a file descriptor or a stream that fails (a full disk, a file-size limit, a
 * stream that throws) rejects with torchsave's `E_IO` naming the OS error, as a path save
 * does, never with Node's bare `ENOSPC` and never with an unhandled `'error'` event.
 * `/dev/full` gives ENOSPC on every write; `ulimit -f` in a child gives EFBIG.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, createWriteStream, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import { REPO_ROOT } from './helpers/python';

const tmp = mkdtempSync(join(tmpdir(), 'torchsave-target-'));
const DIST = join(REPO_ROOT, 'dist', 'index.js');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sd = (): Map<string, torch.Tensor> => new Map([['w', torch.tensor(new Float32Array(100_000).fill(0.5))]]);

function caught(f: () => unknown): Record<string, unknown> {
  try {
    f();
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('expected a throw');
}

describe('save to a descriptor or a stream that fails', () => {
  it('a descriptor on a full disk (/dev/full): E_IO naming ENOSPC, sync and async', async () => {
    const fd = openSync('/dev/full', 'w');
    try {
      const e = caught(() => torch.save(sd(), fd));
      expect([e.code, e.errno, e.syscall]).toEqual(['E_IO', 'ENOSPC', 'write']);
      expect(String(e.message)).toContain('ENOSPC');
      expect((e.cause as { code?: string }).code).toBe('ENOSPC');
      await expect(torch.saveAsync(sd(), fd)).rejects.toMatchObject({ code: 'E_IO', errno: 'ENOSPC' });
    } finally {
      closeSync(fd);
    }
  });

  it('a Node stream on a full disk: saveAsync rejects with E_IO (no unhandled error event)', async () => {
    const s = createWriteStream('/dev/full');
    await expect(torch.saveAsync(sd(), s)).rejects.toMatchObject({ code: 'E_IO', errno: 'ENOSPC' });
    // The stream's own 'error' event was absorbed: give it a turn to fire.
    await new Promise((r) => setTimeout(r, 20));
    expect(s.destroyed).toBe(true);
  });

  it('a writable whose write throws: E_IO with the cause, sync and async', async () => {
    const bad = { write(): never { throw Object.assign(new Error('disk gone'), { code: 'EIO', syscall: 'write' }); } };
    const e = caught(() => torch.save(sd(), bad));
    expect([e.code, e.errno]).toEqual(['E_IO', 'EIO']);
    await expect(torch.saveAsync(sd(), bad)).rejects.toMatchObject({ code: 'E_IO', errno: 'EIO' });
  });

  it('a descriptor past the file-size limit (ulimit -f, EFBIG) in a child: E_IO', () => {
    const file = join(tmp, 'big.pt');
    const script = `
      const torch = require(${JSON.stringify(DIST)});
      const fs = require('fs');
      const fd = fs.openSync(${JSON.stringify(file)}, 'w');
      try { torch.save(new Map([['w', torch.tensor(new Float32Array(2 << 20).fill(1))]]), fd); console.log('saved'); }
      catch (e) { console.log('code=' + e.code + ' errno=' + e.errno); }`;
    const r = spawnSync('bash', ['-c', 'ulimit -f 1024; exec node -e "$SCRIPT"'], { env: { ...process.env, SCRIPT: script }, encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('code=E_IO errno=EFBIG');
    expect(r.status).toBe(0);
  });
});
