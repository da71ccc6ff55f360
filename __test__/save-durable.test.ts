/**
 * `save(obj, path, { durable })`: durable (the default) fsyncs and, for big files, writes with
 * direct I/O; `durable: false` skips the fsyncs. Both must write torch.save's bytes, replace
 * the target atomically, and leave nothing behind when a write fails or the process dies.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import { describeLoaded } from './helpers/describe';
import { type DescribeResult, REPO_ROOT, runOracle } from './helpers/python';

const tmp = mkdtempSync(join(tmpdir(), 'torchsave-durable-'));
const DIST = join(REPO_ROOT, 'dist', 'index.js');

function folder(name: string): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** A state dict of `n` float32 values (plus a small tensor after it), deterministic. */
function stateDict(n: number): Map<string, torch.Tensor> {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = ((i * 7919) % 1009) / 1009 - 0.5;
  return new Map([
    ['w', torch.tensor(w)],
    ['b', torch.tensor([1, 2, 3], { dtype: 'float32' })],
  ]);
}

/** Runs a script against dist/ in a child Node (with a shell prefix such as `ulimit -f`). */
function child(script: string, prefix = ''): { code: number | null; out: string } {
  const r = spawnSync('bash', ['-c', `${prefix} exec node -e "$SCRIPT"`], {
    env: { ...process.env, SCRIPT: `const torch = require(${JSON.stringify(DIST)});\n${script}` },
    encoding: 'utf8',
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('durable option', () => {
  it.each([
    ['small', 1000],
    // Above the 16 MiB direct-I/O threshold, with a record across 8 MiB blocks.
    ['big', 6_000_011],
  ])('durable true, false and default write identical bytes (%s)', (_, n) => {
    const sd = stateDict(n);
    const dir = folder(`same-${n}`);
    const files = [undefined, true, false].map((durable, i) => {
      // Same stem in separate folders: the archive folder name comes from the stem.
      const d = folder(`same-${n}/${i}`);
      const f = join(d, 'model.pt');
      torch.save(sd, f, durable === undefined ? {} : { durable });
      return readFileSync(f);
    });
    const viaBytes = torch.save(sd, null, { archiveName: 'model' });
    for (const f of files) expect(Buffer.compare(f, viaBytes)).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['0', '1', '2']);
  });

  it('durable: false is still read by torch and replaces the old file atomically, leaving no temp file', async () => {
    const dir = folder('replace');
    const file = join(dir, 'ckpt.pt');
    writeFileSync(file, 'previous checkpoint');
    const sd = stateDict(1000);
    torch.save(sd, file, { durable: false });
    expect(readdirSync(dir)).toEqual(['ckpt.pt']);
    expect((runOracle(['describe', file]) as DescribeResult).value).toEqual(describeLoaded(sd));
    await torch.saveAsync(sd, file, { durable: false });
    expect(readdirSync(dir)).toEqual(['ckpt.pt']);
    expect(Buffer.compare(readFileSync(file), torch.save(sd, null, { archiveName: 'ckpt' }))).toBe(0);
  });

  it.each([true, false])('a write that fails midway (file size limit) leaves the old file and no temp file (durable %s)', (durable) => {
    const dir = folder(`efbig-${durable}`);
    const file = join(dir, 'model.pt');
    writeFileSync(file, 'previous checkpoint');
    // 32 MiB against a 16 MiB limit: durable saves go through the direct-I/O path.
    const script = `
      const w = new Float32Array(8 << 20).fill(1);
      try {
        torch.save(new Map([['w', torch.tensor(w)]]), ${JSON.stringify(file)}, { durable: ${durable} });
        console.log('saved');
      } catch (e) { console.log('code=' + e.code); }`;
    const r = child(script, 'ulimit -f 16384;');
    expect(r.out).toContain('code=E_IO');
    expect(readFileSync(file, 'utf8')).toBe('previous checkpoint');
    expect(readdirSync(dir)).toEqual(['model.pt']);
  });

  it.each([true, false])('SIGKILL mid-save leaves the old file or the complete new one, nothing else (durable %s)', async (durable) => {
    const dir = folder(`kill-${durable}`);
    const file = join(dir, 'model.pt');
    writeFileSync(file, 'previous checkpoint');
    const script = `
      const w = new Float32Array(48 << 20).fill(0.5);
      const sd = new Map([['w', torch.tensor(w)]]);
      console.log('go');
      torch.save(sd, ${JSON.stringify(file)}, { durable: ${durable} });
      console.log('done');`;
    const p = spawn('node', ['-e', `const torch = require(${JSON.stringify(DIST)});\n${script}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    await new Promise<void>((resolve) => {
      p.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('go')) setTimeout(() => p.kill('SIGKILL'), 40);
      });
      p.on('exit', () => resolve());
    });
    expect(readdirSync(dir)).toEqual(['model.pt']);
    const now = readFileSync(file);
    if (now.toString() !== 'previous checkpoint') {
      // The save finished before the kill: the file must be whole.
      const back = torch.load(file) as Map<string, torch.Tensor>;
      expect(back.get('w')!.shape).toEqual([48 << 20]);
    }
  });
});
