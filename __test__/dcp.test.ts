/**
 * Distributed checkpoints through the TS facade, against real torch 2.11: the folders come
 * from `crate/core/tests/dcp/make_dcp.py make` (torch.distributed.checkpoint.save, one process
 * and two gloo ranks with DTensor shards), with `dcp_to_torch_save` of each as the reference.
 * `torch.load(dir)` / `loadAsync` / `torchsave inspect DIR` read them; what
 * `torch.distributed.checkpoint.save` writes, torch's `dcp.load(no_dist=True)` and
 * `dcp_to_torch_save` read back equal. ~10 s (two torch processes per make).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts';
import { runCli } from '../ts/cli';
import { REPO_ROOT, pythonPath } from './helpers/python';

const SCRIPT = join(REPO_ROOT, 'crate/core/tests/dcp/make_dcp.py');
let dir = '';

function py(...args: string[]): void {
  const r = spawnSync(pythonPath(), ['-W', 'ignore', SCRIPT, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make_dcp.py ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
}

/** torch compares our reading (saved by torch.save here) with dcp_to_torch_save's. */
function sameAsTorch(value: unknown, ref: string): void {
  const ours = join(dir, `ours-${Math.random().toString(36).slice(2)}.pt`);
  torch.save(value, ours);
  py('compare', ours, ref);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'torchsave-dcp-'));
  py('make', dir);
}, 120_000);

describe('torch.load of a distributed checkpoint folder', () => {
  it('reads nested dicts, lists, every dtype and non-tensor values as torch does', () => {
    const { value, info } = torch.loadWithInfo<Map<string, unknown>>(join(dir, 'nested'));
    expect(info.format).toBe('dcp');
    expect(Array.isArray(value.get('layers'))).toBe(true);
    expect(value.get('name')).toBe('run-17');
    sameAsTorch(value, join(dir, 'nested.pt'));
  });

  it('assembles DTensor shards written by two ranks (loadAsync, mmap off)', async () => {
    const sd = await torch.loadAsync<Map<string, Map<string, torch.Tensor>>>(join(dir, 'sharded'), { mmap: false });
    expect(sd.get('model')!.get('row')!.shape).toEqual([6, 4]);
    sameAsTorch(sd, join(dir, 'sharded.pt'));
  });

  it('refuses a .metadata that calls os.system (E_UNSAFE_GLOBAL)', () => {
    expect(() => torch.load(join(dir, 'evil'))).toThrow(expect.objectContaining({ code: 'E_UNSAFE_GLOBAL' }));
  });

  it('torchsave inspect DIR lists the state dict; --json says dcp', async () => {
    let out = '';
    const io = { stdout: (s: string) => (out += s), stderr: () => undefined };
    expect(await runCli(['inspect', join(dir, 'model')], io)).toBe(0);
    expect(out).toContain('model');
    expect(out).toContain('optim');
    out = '';
    expect(await runCli(['inspect', '--json', join(dir, 'model')], io)).toBe(0);
    expect(JSON.parse(out).format).toBe('dcp');
  });
});

describe('torch.distributed.checkpoint.save', () => {
  it('writes N files that torch loads back equal (dcp.load and dcp_to_torch_save)', () => {
    const sd = torch.load(join(dir, 'nested.pt'));
    const out = join(dir, 'written');
    const w = torch.distributed.checkpoint.save(sd, out, { writers: 3 });
    expect(w.files).toEqual(['__0_0.distcp', '__0_1.distcp', '__0_2.distcp']);
    expect(torch.distributed.checkpoint.isCheckpoint(out)).toBe(true);
    py('dcpload', out, join(dir, 'nested.pt'));
  });

  it('saveAsync writes the model + optimizer; overwrite: false is E_OUTPUT_EXISTS', async () => {
    const sd = torch.load(join(dir, 'model.pt'));
    const out = join(dir, 'written-async');
    await torch.distributed.checkpoint.saveAsync(sd, out, { writers: 2 });
    py('dcpload', out, join(dir, 'model.pt'));
    expect(() => torch.distributed.checkpoint.save(sd, out, { overwrite: false })).toThrow(
      expect.objectContaining({ code: 'E_OUTPUT_EXISTS' }),
    );
    expect(() => torch.distributed.checkpoint.save(sd, out, { writers: 0 })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    // Nothing but the folder: no temporary sibling left behind.
    expect(readdirSync(dir).filter((n) => n.includes('torchsave-'))).toEqual([]);
    expect(existsSync(join(out, '.metadata'))).toBe(true);
  });
});
