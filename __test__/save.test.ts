/**
 * torch.save: the TS → raw tree → Graph path (works without the core's writer through the
 * binding's `_graphRoundTrip` hook) and real interop: files we write, loaded by real torch.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import { native } from '../ts/raw/native';
import type { RawSaveTree } from '../ts/raw/tree';
import { fromRaw, loadWithInfo, toRaw, wasPyFloat } from '../ts/serialization';
import {
  Device,
  DTypeRef,
  Layout,
  NdArray,
  NpScalar,
  OrderedDict,
  PyByteArray,
  PyComplex,
  PyFloat,
  PyFrozenSet,
  PyGlobal,
  PyObject,
  PyTuple,
  Size,
  pyReduce,
} from '../ts/values';
import { describeLoaded } from './helpers/describe';
import { type DescribeResult, pythonPath, runOracle } from './helpers/python';

const tmp = mkdtempSync(join(tmpdir(), 'torchsave-save-'));

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

/** TS value → raw → Rust Graph → raw → TS value, no file in between. */
function graphRoundTrip(v: unknown): unknown {
  const { raw } = toRaw(v);
  return fromRaw(native()._graphRoundTrip(raw));
}

describe('toRaw', () => {
  it('names the path of undefined (E_UNSERIALIZABLE)', () => {
    const obj = new Map<string, unknown>([['model', { layers: [1, undefined] }]]);
    try {
      toRaw(obj);
      expect.unreachable();
    } catch (e) {
      expect((e as { code: string }).code).toBe('E_UNSERIALIZABLE');
      expect((e as Error).message).toContain('obj["model"]["layers"][1]');
    }
  });

  it('refuses functions, symbols and unknown class instances with E_UNSERIALIZABLE', () => {
    class Foo {}
    expect(codeOf(() => toRaw([() => 1]))).toBe('E_UNSERIALIZABLE');
    expect(codeOf(() => toRaw([Symbol('x')]))).toBe('E_UNSERIALIZABLE');
    expect(codeOf(() => toRaw([new Foo()]))).toBe('E_UNSERIALIZABLE');
    expect(codeOf(() => toRaw([new Float32Array(2)]))).toBe('E_UNSERIALIZABLE');
  });

  it('writes one storage per UntypedStorage and refs for shared objects', () => {
    const w = torch.tensor([1, 2, 3, 4], { dtype: 'float32' });
    const view = w.view(2, 2);
    const shared = new PyTuple<number>();
    const { raw, storages } = toRaw(new Map<string, unknown>([['a', w], ['b', view], ['c', w], ['t1', shared], ['t2', shared]]));
    expect(storages).toHaveLength(1);
    expect(storages[0]!.dtype).toBe('float32');
    const items = (raw.root as { items: unknown[] }).items;
    expect(items[5]).toEqual({ t: 'ref', id: (items[1] as { id: number }).id });
    expect(items[9]).toEqual({ t: 'ref', id: (items[7] as { id: number }).id });
  });

  it('refuses two dtypes viewing one storage, like torch', () => {
    const a = torch.tensor([1, 2], { dtype: 'float32' });
    const b = new torch.Tensor({ storage: a.untypedStorage(), dtype: 'int32', shape: [2] });
    expect(codeOf(() => toRaw([a, b]))).toBe('E_UNSERIALIZABLE');
  });

  it('writes plain objects as str-keyed dicts and pyReduce objects as their PyObject', () => {
    const red = { [pyReduce]: () => new PyObject('__main__', 'Net', 'newobj', new PyTuple(), new Map([['x', 1]])) };
    const back = graphRoundTrip({ a: 1, b: red }) as Map<string, unknown>;
    expect(back).toBeInstanceOf(Map);
    expect([...back.keys()]).toEqual(['a', 'b']);
    const o = back.get('b') as PyObject;
    expect(o).toBeInstanceOf(PyObject);
    expect(o.fullName).toBe('__main__.Net');
    expect(o.get('x')).toBe(1);
  });
});

describe('pickle protocols 3, 4 and 5', () => {
  /** __test__/python/pickle_protocols.py: `make DIR` or `compare A B`, one JSON line. */
  function protocolsPy(args: string[]): unknown {
    const r = spawnSync(pythonPath(), ['-W', 'ignore', join(__dirname, 'python', 'pickle_protocols.py'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`pickle_protocols.py ${args[0]} exited ${r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  }

  it('load -> save with the same protocol gives torch.save\'s records byte for byte (frames, MEMOIZE, STACK_GLOBAL, sets, big payloads, BYTEARRAY8)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'torchsave-protocols-'));
    const made = protocolsPy(['make', dir]) as { files: [string, number, string][] };
    expect(made.files).toHaveLength(6);
    for (const [name, protocol, file] of made.files) {
      const { value: obj, info } = loadWithInfo(file, { weightsOnly: false });
      expect(info.pickleProtocol, `${name} p${protocol}`).toBe(protocol);
      // Same stem, other folder: the archive's top folder name comes from it.
      const ours = join(dir, `ours_${name}_p${protocol}`, `${name}.pt`);
      mkdirSync(dirname(ours), { recursive: true });
      torch.save(obj, ours, { pickleProtocol: protocol });
      const r = protocolsPy(['compare', file, ours]) as { records: number; diff: unknown[]; equal: boolean };
      expect(r.diff, `${name} p${protocol}`).toEqual([]);
      expect(r.equal, `${name} p${protocol}`).toBe(true);
      // And torchsave reads its own file back to the same value.
      expect(describeLoaded(torch.load(ours, { weightsOnly: false }))).toEqual(describeLoaded(obj));
    }
  }, 120_000);

  it('refuses protocols 0, 1 and 6 with E_INVALID_ARGUMENT', () => {
    for (const p of [0, 1, 6]) expect(codeOf(() => torch.save(new Map([['a', 1]]), null, { pickleProtocol: p }))).toBe('E_INVALID_ARGUMENT');
  });
});

describe('the tables beside the raw tree', () => {
  const sd = (): Map<string, unknown> =>
    new Map<string, unknown>([
      ['w', torch.tensor([[1, 2], [3, 4]], { dtype: 'float32' })],
      ['b', torch.tensor([5], { dtype: 'int64' })],
    ]);

  it('a tensor entry is [storage, dtype, ndim, offset, flags, ...shape, ...stride]; storages are rows of [dtype, location, key]', () => {
    const p = new torch.nn.Parameter(torch.tensor([1, 2, 3], { dtype: 'float32' }));
    const { raw } = toRaw(new Map<string, unknown>([['p', p], ['v', p.view(3, 1).t()]]));
    expect(raw.dtypes).toEqual(['float32']);
    expect(raw.strings).toEqual(['cpu']);
    expect([...raw.storageMeta]).toEqual([0, 0, -1]);
    expect(raw.storageData[0]!.byteLength).toBe(12);
    // Parameter: requiresGrad | parameter.
    expect([...raw.tensorMeta.slice(0, 7)]).toEqual([0, 0, 1, 0, 3, 3, 1]);
    // The transposed view: 2 dims, shape [1, 3], stride [1, 1].
    expect([...raw.tensorMeta.slice(7)]).toEqual([0, 0, 2, 0, 0, 1, 3, 1, 1]);
  });

  it.each([
    ['an entry index past the table', (r: RawSaveTree) => ((r.root as { items: { m: number }[] }).items[1]!.m = 1e6)],
    ['a fractional entry index', (r: RawSaveTree) => ((r.root as { items: { m: number }[] }).items[1]!.m = 0.5)],
    ['a dimension count past the table', (r: RawSaveTree) => (r.tensorMeta[2] = 64)],
    ['an absurd dimension count', (r: RawSaveTree) => (r.tensorMeta[2] = 1e9)],
    ['a storage index past the storages', (r: RawSaveTree) => (r.tensorMeta[0] = 7)],
    ['a dtype index past the dtypes', (r: RawSaveTree) => (r.tensorMeta[1] = 9)],
    ['a NaN size', (r: RawSaveTree) => (r.tensorMeta[5] = Number.NaN)],
    ['a negative offset', (r: RawSaveTree) => (r.tensorMeta[3] = -4)],
    ['storage rows that do not match the data', (r: RawSaveTree) => (r.storageMeta = new Float64Array(2))],
    ['a storage location past the strings', (r: RawSaveTree) => (r.storageMeta[1] = 5)],
    ['a tensor table that is not a Float64Array', (r: RawSaveTree) => ((r as { tensorMeta: unknown }).tensorMeta = [0, 0])],
  ])('refuses %s with E_UNSERIALIZABLE, no crash', (_, spoil) => {
    const { raw } = toRaw(sd());
    spoil(raw);
    expect(codeOf(() => native().save(raw, null))).toBe('E_UNSERIALIZABLE');
  });
});

describe('raw tree ↔ Graph round trip (binding, no file)', () => {
  it('keeps every Python value kind', () => {
    const meta = new OrderedDict<string, Map<string, unknown>>([['', new Map([['version', 1]])]]);
    const sd = new OrderedDict<string, unknown>([['w', torch.tensor([1.5, 2.5])]]);
    sd._metadata = meta;
    const value = new Map<unknown, unknown>([
      ['sd', sd],
      ['tuple', PyTuple.fromItems([1, 'a'])],
      ['big', 2n ** 70n],
      ['negbig', -(2n ** 63n) - 1n],
      ['i64max', 2n ** 63n - 1n],
      ['safe', 2 ** 53],
      ['float', new PyFloat(2)],
      ['frac', 0.25],
      ['negzero', -0],
      ['nan', NaN],
      ['bytes', new Uint8Array([0, 1, 255])],
      ['bytearray', PyByteArray.from([7, 8])],
      ['set', new Set([1, 2])],
      ['frozenset', new PyFrozenSet(['x'])],
      ['complex', new PyComplex(1, -2)],
      ['size', Size.fromDims([2, 3])],
      ['device', new Device('cuda:1')],
      ['dtype', new DTypeRef('bfloat16')],
      ['layout', new Layout('sparse_coo')],
      ['global', new PyGlobal('torch', 'per_tensor_affine')],
      ['ndarray', new NdArray('<f4', [2], false, new Uint8Array(new Float32Array([1, 2]).buffer))],
      ['npscalar', new NpScalar('<f8', new Uint8Array(new Float64Array([1.5]).buffer))],
      [3, null],
      [PyTuple.fromItems([1, 2]), true],
    ]);
    const back = graphRoundTrip(value) as Map<unknown, unknown>;
    expect(describeLoaded(back)).toEqual(describeLoaded(value));
    expect((back.get('sd') as OrderedDict)._metadata).toBeInstanceOf(OrderedDict);
    expect(back.get('big')).toBe(2n ** 70n);
    expect(back.get('negbig')).toBe(-(2n ** 63n) - 1n);
    expect(back.get('safe')).toBe(2 ** 53);
    expect(back.get('float')).toBe(2);
    expect(wasPyFloat(back, 'float')).toBe(true);
    expect(Object.is(back.get('negzero'), -0)).toBe(true);
    expect(back.get('tuple')).toBeInstanceOf(PyTuple);
    expect(back.get('size')).toBeInstanceOf(Size);
    expect(back.get('bytearray')).toBeInstanceOf(PyByteArray);
    expect(back.get('frozenset')).toBeInstanceOf(PyFrozenSet);
    expect((back.get('device') as Device).toString()).toBe('cuda:1');
  });

  it('keeps identity: shared tensors share one storage, shared containers stay one object, cycles close', () => {
    const p = new torch.Parameter(torch.tensor([[1, 2], [3, 4]], { dtype: 'float32' }));
    const row = new torch.Tensor({ storage: p.untypedStorage(), dtype: 'float32', shape: [2], storageOffset: 2 });
    const shared = [1, 2];
    const cyc: unknown[] = [];
    cyc.push(cyc);
    const back = graphRoundTrip(new Map<string, unknown>([['p', p], ['row', row], ['p2', p], ['s1', shared], ['s2', shared], ['cyc', cyc]])) as Map<string, unknown>;
    const bp = back.get('p') as torch.Parameter;
    const brow = back.get('row') as torch.Tensor;
    expect(bp).toBeInstanceOf(torch.Parameter);
    expect(bp.requiresGrad).toBe(true);
    expect(back.get('p2')).toBe(bp);
    expect(brow.untypedStorage()).toBe(bp.untypedStorage());
    expect(brow.storageOffset()).toBe(2);
    expect(brow.tolist()).toEqual([3, 4]);
    expect(back.get('s1')).toBe(back.get('s2'));
    const bc = back.get('cyc') as unknown[];
    expect(bc[0]).toBe(bc);
  });

  it('re-saves integral floats as floats after a round trip', () => {
    const m = new Map<string, unknown>([['lr', new PyFloat(1)], ['n', 1]]);
    const once = graphRoundTrip(m) as Map<string, unknown>;
    const twice = graphRoundTrip(once) as Map<string, unknown>;
    expect(wasPyFloat(twice, 'lr')).toBe(true);
    expect(wasPyFloat(twice, 'n')).toBe(false);
  });
});

// --- interop: needs the core's writer and real torch ---------------------------------------

function torchLoads(file: string, code: string): string {
  const script = `import torch, sys\nobj = torch.load(sys.argv[1], weights_only=True)\n${code}`;
  const r = spawnSync(pythonPath(), ['-c', script, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

function seedLikeStateDict(): OrderedDict<string, torch.Tensor> {
  torch.manualSeed(0);
  const sd = new OrderedDict<string, torch.Tensor>();
  sd.set('conv1.weight', torch.randn([6, 3, 5, 5]));
  sd.set('conv1.bias', torch.randn([6]));
  sd.set('fc.weight', torch.randn([10, 84]).view(84, 10));
  sd.set('steps', torch.tensor([1, 2, 3]));
  sd.set('half', torch.randn([4]).to('float16'));
  sd._metadata = new OrderedDict([['', new Map([['version', 1]])], ['conv1', new Map([['version', 1]])]]);
  return sd;
}

describe('interop with real torch', () => {
  beforeAll(() => {
    pythonPath();
  });

  it.each(['zip', 'legacy'] as const)('torch.load reads what torch.save (%s) wrote, value for value', (format) => {
    const sd = seedLikeStateDict();
    const file = join(tmp, `sd-${format}.pt`);
    torch.save(sd, file, { format });
    const d = runOracle(['describe', file]) as DescribeResult;
    expect(d.format).toBe(format);
    expect(d.value).toEqual(describeLoaded(sd));
  });

  it('writes a checkpoint with optimizer state, ints and floats as Python had them', () => {
    const pg = new Map<string, unknown>([['lr', 0.001], ['momentum', 0.9], ['dampening', 0], ['weight_decay', new PyFloat(0)], ['nesterov', false], ['params', [0, 1]]]);
    const ck = new Map<string, unknown>([
      ['epoch', 5],
      ['loss', 0.25],
      ['optimizer_state_dict', new Map<string, unknown>([['state', new Map()], ['param_groups', [pg]]])],
    ]);
    const file = join(tmp, 'ckpt.pt');
    torch.save(ck, file);
    const out = torchLoads(file, 'print(repr(obj))').trim();
    expect(out).toBe(torch.repr(ck));
  });

  it('returns bytes without a target, writes to an fd and to a writable, all identical', () => {
    const sd = seedLikeStateDict();
    const bytes = torch.save(sd, null, { archiveName: 'archive' });
    const fdFile = join(tmp, 'fd.pt');
    const fd = openSync(fdFile, 'w');
    torch.save(sd, fd);
    closeSync(fd);
    const chunks: Uint8Array[] = [];
    torch.save(sd, { write: (c: Uint8Array) => chunks.push(c) });
    expect(Buffer.compare(readFileSync(fdFile), bytes)).toBe(0);
    expect(Buffer.compare(Buffer.concat(chunks), bytes)).toBe(0);
    const file = join(tmp, 'from-bytes.pt');
    writeFileSync(file, bytes);
    expect((runOracle(['describe', file]) as DescribeResult).value).toEqual(describeLoaded(sd));
  });

  it('saveAsync writes the same bytes as save', async () => {
    const sd = seedLikeStateDict();
    const a = join(tmp, 'sync.pt');
    const b = join(tmp, 'async.pt');
    torch.save(sd, a);
    await torch.saveAsync(sd, b);
    const sa = readFileSync(a);
    const sb = readFileSync(b);
    // Archive folders differ by file stem ('sync' / 'async'); compare what torch loads.
    expect((runOracle(['describe', b]) as DescribeResult).value).toEqual((runOracle(['describe', a]) as DescribeResult).value);
    expect(sb.length).toBeGreaterThan(0);
    expect(sa.length).toBeGreaterThan(0);
  });

  it('a failed save leaves the old file intact', () => {
    const file = join(tmp, 'keep.pt');
    torch.save(new Map([['a', 1]]), file);
    const before = readFileSync(file);
    expect(codeOf(() => torch.save(new Map([['a', undefined]]), file))).toBe('E_UNSERIALIZABLE');
    expect(codeOf(() => torch.save(new Map([['a', 1]]), file, { format: 'nope' as 'zip' }))).toBe('E_INVALID_ARGUMENT');
    expect(Buffer.compare(readFileSync(file), before)).toBe(0);
  });

  it('saves into a missing folder with E_IO', () => {
    expect(codeOf(() => torch.save(new Map([['a', 1]]), join(tmp, 'no', 'such', 'dir', 'x.pt')))).toBe('E_IO');
  });

  it('round-trips a loaded file: load → save → torch.load sees the same value', () => {
    const sd = seedLikeStateDict();
    const first = join(tmp, 'first.pt');
    torch.save(sd, first);
    const again = torch.load(first);
    const second = join(tmp, 'second.pt');
    torch.save(again, second);
    expect((runOracle(['describe', second]) as DescribeResult).value).toEqual((runOracle(['describe', first]) as DescribeResult).value);
  });
});
