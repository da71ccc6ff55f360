/**
 * The writer's promises against real PyTorch, fixture by fixture:
 * - load -> save -> real torch.load gives what torch.load(original) gave (same types, key
 *   order, dtype/shape/stride/offset/values, storage sharing, _metadata), in both formats;
 * - what we write loads with weights_only=True wherever the original did;
 * - Debian's torch 1.13 loads our zip and legacy files;
 * - a save killed with SIGKILL mid-write leaves the old file intact and nothing beside it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import { type DescribeResult, ensureFixtures, fixturePath, readFixtureIndex, readSidecar, runOracleBatch } from './helpers/python';

const tmp = mkdtempSync(join(tmpdir(), 'torchsave-roundtrip-'));

beforeAll(() => {
  ensureFixtures();
});

/** Formats a fixture can be re-saved in: the legacy format cannot hold the new dtypes (torch cannot load them there either). */
function formatsFor(file: string, tags: string[]): ('zip' | 'legacy')[] {
  const newDtypes = /uint16|uint32|uint64|float8|complex32/.test(file) || tags.includes('new_dtypes');
  return newDtypes ? ['zip'] : ['zip', 'legacy'];
}

describe('load -> save -> torch.load equals torch.load(original)', () => {
  const index = (() => {
    try {
      ensureFixtures();
      return readFixtureIndex().fixtures;
    } catch {
      return [];
    }
  })();

  it('covers every fixture', () => {
    expect(index.length).toBeGreaterThan(50);
  });

  for (const format of ['zip', 'legacy'] as const) {
    it(`re-saved as ${format}`, () => {
      const calls: string[][] = [];
      const expected: { file: string; value: unknown }[] = [];
      for (const f of index) {
        if (!formatsFor(f.file, f.tags).includes(format)) continue;
        const side = readSidecar(f.file);
        const opts: torch.LoadOptions = { weightsOnly: side.load.weights_only, classes: false };
        if (side.load.map_location) opts.mapLocation = side.load.map_location;
        const value = torch.load(fixturePath(f.file), opts);
        const out = join(tmp, `${f.file}.${format}.pt`);
        try {
          torch.save(value, out, { format });
        } catch (e) {
          // Only what torch itself refuses in that format may fail, and only with a code.
          expect((e as { code?: string }).code, `${f.file}: ${(e as Error).message}`).toBe('E_UNSERIALIZABLE');
          expect(format, f.file).toBe('legacy');
          continue;
        }
        const args = ['describe', out, '--weights-only', side.load.weights_only ? '1' : '0'];
        if (side.load.map_location) args.push('--map-location', side.load.map_location);
        calls.push(args);
        expected.push({ file: f.file, value: side.value });
      }
      const results = runOracleBatch(calls) as DescribeResult[];
      results.forEach((r, i) => {
        const { file, value } = expected[i]!;
        expect(r.format, file).toBe(format);
        expect(r.value, file).toEqual(value);
      });
      expect(results.length).toBeGreaterThan(format === 'zip' ? 50 : 30);
    });
  }
});

describe("Debian's torch 1.13 loads what we write", () => {
  const py113 = '/usr/bin/python3';
  it.each(['zip', 'legacy'] as const)('%s', (format) => {
    const probe = spawnSync(py113, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    expect(probe.status, `torch 1.13 must be installed (scripts/python-env.sh): ${probe.stderr}`).toBe(0);
    expect(probe.stdout.trim()).toMatch(/^1\.13/);
    const sd = torch.load<torch.OrderedDict<string, torch.Tensor>>(fixturePath('seed_state_dict.pt'));
    sd.set('ints', torch.tensor([1, 2, 3]));
    sd.set('view', sd.get('fc1.bias')!.view(4, 30));
    const file = join(tmp, `for113.${format}.pt`);
    torch.save(sd, file, { format });
    const script = `
import sys, json, hashlib, torch
sd = torch.load(sys.argv[1], weights_only=True)
out = []
for k, v in sd.items():
    c = v.contiguous()
    out.append([k, str(v.dtype).replace('torch.', ''), list(v.shape), list(v.stride()), v.storage_offset(),
                hashlib.sha256(c.numpy().tobytes()).hexdigest()])
print(json.dumps({"type": type(sd).__name__, "meta": list(sd._metadata.keys()), "tensors": out,
                  "tied": sd['view'].storage().data_ptr() == sd['fc1.bias'].storage().data_ptr()}))
`;
    const r = spawnSync(py113, ['-c', script, file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as { type: string; meta: string[]; tensors: [string, string, number[], number[], number, string][]; tied: boolean };
    expect(got.type).toBe('OrderedDict');
    expect(got.meta).toEqual([...sd._metadata!.keys()]);
    expect(got.tied).toBe(true);
    const want = [...sd].map(([k, t]) => [
      k,
      t.dtype,
      [...t.size()],
      t.stride(),
      t.storageOffset(),
      createHash('sha256').update(t.contiguousBytes()).digest('hex'),
    ]);
    expect(got.tensors).toEqual(want);
  });
});

describe('crash safety', () => {
  it('SIGKILL mid-save leaves the old file intact and no stray file', async () => {
    const dist = resolve(__dirname, '..', 'dist', 'index.js');
    expect(existsSync(dist), 'npm run build must run before the tests').toBe(true);
    const dir = mkdtempSync(join(tmp, 'kill-'));
    const target = join(dir, 'model.pt');
    torch.save(new Map([['old', torch.tensor([1, 2, 3])]]), target);
    const before = readFileSync(target);
    // A child that saves ~768 MiB over the target, slowly enough to be caught mid-write.
    const child = spawn(process.execPath, [
      '-e',
      `const torch = require(${JSON.stringify(dist)});
       const sd = new Map();
       for (let i = 0; i < 12; i++) sd.set('w' + i, torch.empty([16 << 20], { dtype: 'float32' }));
       process.stdout.write('ready\\n');
       for (;;) torch.save(sd, ${JSON.stringify(target)});`,
    ]);
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    // Wait until the child holds an open file in the target's folder that is not the target:
    // the temporary file being written.
    const deadline = Date.now() + 30_000;
    let caught = false;
    while (!caught && Date.now() < deadline) {
      try {
        for (const fd of readdirSync(`/proc/${child.pid}/fd`)) {
          let link = '';
          try {
            link = readlinkSync(`/proc/${child.pid}/fd/${fd}`);
          } catch {
            continue;
          }
          if (link.startsWith(dir) && link !== target) caught = true;
        }
      } catch {
        break;
      }
      if (!caught) await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(caught, 'the child was caught writing its temporary file').toBe(true);
    // Either the old file or a complete new one (if a save finished first) — never a torn one,
    // and nothing else in the folder.
    expect(readdirSync(dir)).toEqual(['model.pt']);
    const after = readFileSync(target);
    if (Buffer.compare(after, before) !== 0) {
      const sd = torch.load<Map<string, torch.Tensor>>(target);
      expect([...sd.keys()]).toHaveLength(12);
    }
    writeFileSync(join(dir, 'done'), '');
  }, 120_000);
});
