/**
 * Proves the Python side works: the oracle runs real torch, the fixtures and their sidecars
 * exist and agree with a fresh oracle run, and the attack table only names real error codes.
 * Values asserted here come from the seed notes' printed output (the acceptance story) or
 * from torch itself, never typed in from elsewhere.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type DescribeResult,
  type InspectResult,
  type OracleNode,
  REPO_ROOT,
  ensureFixtures,
  fixturePath,
  attacksDir,
  readAttacks,
  readFixtureIndex,
  readSidecar,
  runOracle,
  runOracleBatch,
} from './helpers/python';

// The seed's printed `Model's state_dict` (pytorch-save-load-notes.md), in order.
const SEED_SIZES: [string, number[]][] = [
  ['conv1.weight', [6, 3, 5, 5]],
  ['conv1.bias', [6]],
  ['conv2.weight', [16, 6, 5, 5]],
  ['conv2.bias', [16]],
  ['fc1.weight', [120, 400]],
  ['fc1.bias', [120]],
  ['fc2.weight', [84, 120]],
  ['fc2.bias', [84]],
  ['fc3.weight', [10, 84]],
  ['fc3.bias', [10]],
];

function items(node: OracleNode): [OracleNode, OracleNode][] {
  return node.items as [OracleNode, OracleNode][];
}

beforeAll(() => {
  ensureFixtures();
});

describe('oracle (real torch)', () => {
  it('describes the seed state dict: 10 keys in the seed order with the seed sizes', () => {
    const d = runOracle(['describe', fixturePath('seed_state_dict.pt')]) as DescribeResult;
    expect(d.torch).toBe('2.11.0');
    expect(d.format).toBe('zip');
    expect(d.value.t).toBe('OrderedDict');
    const got = items(d.value).map(([k, v]) => [k.v, v.shape]);
    expect(got).toEqual(SEED_SIZES);
    for (const [, v] of items(d.value)) {
      expect(v.t).toBe('Tensor');
      expect(v.dtype).toBe('float32');
      expect(v.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    // Ten distinct storages, numbered in visit order.
    expect(items(d.value).map(([, v]) => v.storage)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // state_dict _metadata: one entry per module, root first.
    const meta = d.value.metadata as OracleNode;
    expect(items(meta).map(([k]) => k.v)).toEqual(['', 'conv1', 'pool', 'conv2', 'fc1', 'fc2', 'fc3']);
  });

  it('agrees with the sidecar make_fixtures.py wrote', () => {
    const files = ['seed_state_dict.pt', 'seed_optimizer.legacy.pt', 'nested_containers.pt', 'seed_whole_model.pt'];
    const sides = files.map(readSidecar);
    const calls = sides.map((s) => ['describe', fixturePath(s.file), '--weights-only', s.load.weights_only ? '1' : '0']);
    const got = runOracleBatch(calls) as DescribeResult[];
    got.forEach((d, i) => expect(d.value, files[i]).toEqual(sides[i]!.value));
    expect(sides[3]!.value).toMatchObject({ t: 'object', class: '__main__.TheModelClass' });
  });

  it('keeps sharing, tuples, bigints and special floats visible', () => {
    const v = readSidecar('same_object_twice.pt').value;
    const [a, b] = items(v).map(([, x]) => x);
    expect(a!.obj).toBe(b!.obj);
    const views = new Map(items(readSidecar('views_offsets.pt').value).map(([k, x]) => [k.v, x]));
    expect(new Set([...views.values()].map((x) => x.storage)).size).toBe(1);
    expect(views.get('slice')!.storage_offset).toBe(2);
    expect(views.get('step')!.stride).toEqual([2]);
    const nested = new Map(items(readSidecar('nested_containers.pt').value).map(([k, x]) => [String(k.v), x]));
    expect((nested.get('bigints')!.items as OracleNode[])[0]).toEqual({ t: 'int', v: String(2n ** 70n) });
    const floats = nested.get('floats')!.items as OracleNode[];
    expect(floats[3]).toEqual({ t: 'float', v: '-0.0', bits: '8000000000000000' });
    expect(nested.get('tuple')!.t).toBe('tuple');
    expect(nested.get('list')!.t).toBe('list');
  });

  it('save-check tells weights-only loadable files from whole pickled models', () => {
    const [good, r] = runOracleBatch([
      ['save-check', fixturePath('seed_state_dict.pt')],
      ['save-check', fixturePath('seed_whole_model.pt')],
    ]) as { ok: boolean; error: string }[];
    expect(good).toEqual({ ok: true });
    expect(r!.ok).toBe(false);
    expect(r!.error).toBe('UnpicklingError');
  });

  it('inspect-json has the CLI schema', () => {
    const r = runOracle(['inspect-json', fixturePath('seed_state_dict.legacy.pt')]) as InspectResult;
    expect(r.format).toBe('legacy');
    expect(r.weights_only_ok).toBe(true);
    expect(r.tensors.map((t) => [t.path, t.shape])).toEqual(SEED_SIZES.map(([k, s]) => [[k], s]));
    expect(r.globals).toContain('collections.OrderedDict');
    expect(r.globals).toContain('torch._utils._rebuild_tensor_v2');
    // Same tensors, same digests, whichever container torch wrote.
    const zip = readSidecar('seed_state_dict.pt').inspect;
    expect(r.tensors.map((t) => t.sha256)).toEqual(zip.tensors.map((t) => t.sha256));
  });
});

describe('fixtures', () => {
  it('index lists files that exist, each with a sidecar', () => {
    const ix = readFixtureIndex();
    expect(ix.torch).toBe('2.11.0');
    expect(ix.fixtures.length).toBeGreaterThan(80);
    for (const f of ix.fixtures) {
      expect(existsSync(fixturePath(f.file)), f.file).toBe(true);
      expect(readSidecar(f.file).file).toBe(f.file);
    }
    const formats = new Set(ix.fixtures.map((f) => f.format));
    expect([...formats].sort()).toEqual(['legacy', 'tar', 'zip']);
  });

  it('big-endian and cuda-location files load to the same values as their sources', () => {
    const be = readSidecar('big_endian.pt');
    expect(be.weights_only_ok).toBe(true);
    const cuda = readSidecar('cuda_location.pt');
    expect(cuda.load.map_location).toBe('cpu');
    expect(items(cuda.value).map(([k]) => k.v)).toEqual(['w', 'b']);
  });

  it('attacks.json names existing files and only codes defined in error.rs', () => {
    const errorRs = readFileSync(join(REPO_ROOT, 'crate', 'core', 'src', 'error.rs'), 'utf8');
    const known = new Set(errorRs.match(/"E_[A-Z_]+"/g)!.map((s) => s.slice(1, -1)));
    const table = readAttacks();
    const files = Object.keys(table);
    expect(files.length).toBeGreaterThanOrEqual(30);
    for (const [file, a] of Object.entries(table)) {
      expect(existsSync(join(attacksDir(), file)), file).toBe(true);
      expect(a.codes.length, file).toBeGreaterThan(0);
      for (const c of a.codes) expect(known, `${file}: ${c}`).toContain(c);
    }
    // Real torch refuses every code-execution attack too.
    for (const f of files.filter((x) => x.startsWith('pickle_') && table[x]!.codes.includes('E_UNSAFE_GLOBAL'))) {
      expect(table[f]!.torch_weights_only, f).toBe('rejects');
    }
  });
});
