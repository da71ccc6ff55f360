/**
 * torch.load against real PyTorch: every fixture make_fixtures.py wrote is loaded and
 * described in the oracle's JSON, which must equal what real torch loaded (the sidecar).
 * Plus the binding's promises: external and copied buffers agree, writing into a loaded
 * tensor never changes the file, loadAsync leaves the event loop free, errors carry codes.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import { OrderedDict, PyObject } from '../ts/values';
import { describeLoaded } from './helpers/describe';
import { ensureFixtures, fixturePath, pythonPath, readAttacks, readFixtureIndex, readSidecar, runOracle } from './helpers/python';

const tmp = mkdtempSync(join(tmpdir(), 'torchsave-load-'));

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

async function asyncCodeOf(f: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

beforeAll(() => {
  ensureFixtures();
});

/**
 * `nn.Module.__setstate__` adds empty hook dicts that old (1.x) pickles lack; torch's objects
 * have them after loading, our raw PyObjects keep exactly what the file holds. Both sides
 * drop those keys when they hold an empty default, so everything else still compares.
 */
const SETSTATE_DEFAULTS = new Set([
  '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_forward_hooks_with_kwargs',
  '_forward_hooks_always_called', '_state_dict_hooks', '_state_dict_pre_hooks',
  '_load_state_dict_pre_hooks', '_load_state_dict_post_hooks', '_non_persistent_buffers_set',
  '_is_full_backward_hook', '_backward_pre_hooks',
]);
function withoutSetstateDefaults(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutSetstateDefaults);
  if (typeof node !== 'object' || node === null) return node;
  const n = node as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(n)) out[k] = withoutSetstateDefaults(v);
  const st = out.state as { items?: [unknown, unknown][] } | undefined;
  if (n.t === 'object' && st && Array.isArray(st.items) && st.items.some(([k]) => (k as { v?: unknown }).v === '_modules')) {
    st.items = st.items.filter(([k, v]) => {
      const key = (k as { v?: unknown }).v;
      const val = v as { t?: string; items?: unknown[] };
      const empty = val.t === 'none' || (Array.isArray(val.items) && val.items.length === 0);
      return !(typeof key === 'string' && SETSTATE_DEFAULTS.has(key) && empty);
    });
  }
  return out;
}

describe('every fixture loads as real torch loads it', () => {
  const index = (() => {
    try {
      ensureFixtures();
      return readFixtureIndex().fixtures;
    } catch {
      return [{ file: '<fixtures unavailable>' }];
    }
  })();
  it.each(index.map((f) => f.file))('%s', (file) => {
    const side = readSidecar(file);
    // Raw PyObjects: the oracle describes Python's own objects, not our TS nn classes
    // (those are checked against torch in nn-interop.test.ts).
    const opts: torch.LoadOptions = { weightsOnly: side.load.weights_only, classes: false };
    if (side.load.map_location) opts.mapLocation = side.load.map_location;
    const value = torch.load(fixturePath(file), opts);
    expect(withoutSetstateDefaults(describeLoaded(value))).toEqual(withoutSetstateDefaults(side.value));
  });
});

describe('load behaviour', () => {
  it('reads the seed state dict in order as an OrderedDict with _metadata', () => {
    const sd = torch.load<OrderedDict<string, torch.Tensor>>(fixturePath('seed_state_dict.pt'));
    expect(sd).toBeInstanceOf(OrderedDict);
    expect([...sd.keys()][0]).toBe('conv1.weight');
    expect(sd.get('conv1.weight')!.size().toString()).toBe('torch.Size([6, 3, 5, 5])');
    expect(sd._metadata).toBeInstanceOf(OrderedDict);
  });

  it('loads from bytes exactly as from a path', () => {
    const file = fixturePath('seed_checkpoint.pt');
    const fromPath = torch.load(file, { weightsOnly: readSidecar('seed_checkpoint.pt').load.weights_only });
    const fromBytes = torch.load(readFileSync(file), { weightsOnly: readSidecar('seed_checkpoint.pt').load.weights_only });
    expect(describeLoaded(fromBytes)).toEqual(describeLoaded(fromPath));
  });

  it.each(['seed_state_dict.pt', 'views_offsets.pt', 'seed_checkpoint.pt'])('external and copied buffers give equal values (%s)', (file) => {
    const weightsOnly = readSidecar(file).load.weights_only;
    const ext = torch.load(fixturePath(file), { weightsOnly, externalBuffers: true });
    const copied = torch.load(fixturePath(file), { weightsOnly, externalBuffers: false });
    const noMmap = torch.load(fixturePath(file), { weightsOnly, mmap: false });
    expect(describeLoaded(copied)).toEqual(describeLoaded(ext));
    expect(describeLoaded(noMmap)).toEqual(describeLoaded(ext));
  });

  it('shares one ArrayBuffer for all storages of an mmapped zip, and separate ones when copied', () => {
    const sd = torch.load<Map<string, torch.Tensor>>(fixturePath('seed_state_dict.pt'));
    const bufs = new Set([...sd.values()].map((t) => t.untypedStorage().bytes.buffer));
    expect(bufs.size).toBe(1);
    const copied = torch.load<Map<string, torch.Tensor>>(fixturePath('seed_state_dict.pt'), { externalBuffers: false });
    const cbufs = new Set([...copied.values()].map((t) => t.untypedStorage().bytes.buffer));
    expect(cbufs.size).toBe(copied.size);
  });

  it.each([true, false])('writing into a loaded tensor never changes the file (mmap %s)', (mmap) => {
    const file = fixturePath('seed_state_dict.pt');
    const before = sha(file);
    const sd = torch.load<Map<string, torch.Tensor>>(file, { mmap });
    const w = sd.get('conv1.weight')!;
    const original = w.toFloat32Array()[0];
    w.fill_(42);
    expect(w.toFloat32Array()[0]).toBe(42);
    expect(sha(file)).toBe(before);
    const again = torch.load<Map<string, torch.Tensor>>(file, { mmap });
    expect(again.get('conv1.weight')!.toFloat32Array()[0]).toBe(original);
  });

  it('loadAsync gives the same value as load and does not block the event loop', async () => {
    // A big file written by real torch, so parsing + hashing-free loading takes a while.
    const big = join(tmp, 'big.pt');
    const r = spawnSync(
      pythonPath(),
      ['-c', 'import torch,sys\ntorch.manual_seed(0)\ntorch.save({f"w{i}": torch.randn(1 << 20) for i in range(96)}, sys.argv[1])', big],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const opts: torch.LoadOptions = { mmap: false, verifyCrc: true, externalBuffers: false };
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = Date.now();
    const value = await torch.loadAsync(big, opts);
    const elapsed = Date.now() - t0;
    clearInterval(timer);
    expect(describeLoaded(value)).toEqual(describeLoaded(torch.load(big, opts)));
    // The timer kept firing while the file was read and checked on the worker thread.
    expect(ticks).toBeGreaterThan(Math.min(5, elapsed / 20));
  });

  it('loadAsync rejects with the same codes as load', async () => {
    expect(await asyncCodeOf(() => torch.loadAsync(join(tmp, 'missing.pt')))).toBe('E_IO');
    expect(codeOf(() => torch.load(join(tmp, 'missing.pt')))).toBe('E_IO');
  });
});

describe('devices and mapLocation', () => {
  const file = () => fixturePath('cuda_location.pt');

  it('opens a cuda file without mapLocation on the CPU (torch.load raises) and re-saves its location', () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? '');
    process.on('warning', onWarning);
    const value = torch.load(file());
    expect(describeLoaded(value)).toEqual(readSidecar('cuda_location.pt').value);
    const resaved = join(tmp, 'cuda-resaved.pt');
    torch.save(value, resaved);
    // The location travels in data.pkl as a BINUNICODE string.
    expect(readFileSync(resaved).includes(Buffer.from('cuda:0'))).toBe(true);
    expect(readFileSync(resaved).includes(Buffer.from('\u0003\u0000\u0000\u0000cpu'))).toBe(false);
    // torch on a CPU-only machine needs map_location for it, exactly as for the original.
    const again = runOracle(['describe', resaved, '--map-location', 'cpu']) as { value: unknown };
    expect(again.value).toEqual(readSidecar('cuda_location.pt').value);
    return new Promise<void>((res) => setImmediate(res)).then(() => {
      process.off('warning', onWarning);
      expect(warnings).toContain('TORCHSAVE_DEVICE_FALLBACK');
    });
  });

  it.each<[string, torch.LoadOptions['mapLocation']]>([
    ['a string', 'cpu'],
    ['a Device', new torch.Device('cpu')],
    ['a map', { 'cuda:0': 'cpu' }],
    ['a function', (s) => s],
    ['a function returning a device', () => 'cpu'],
  ])('loads it on the CPU with mapLocation as %s', (_label, mapLocation) => {
    const value = torch.load(file(), { mapLocation });
    expect(describeLoaded(value)).toEqual(readSidecar('cuda_location.pt').value);
    const tensors: torch.Tensor[] = [];
    const walk = (v: unknown): void => {
      if (v instanceof torch.Tensor) tensors.push(v);
      else if (v instanceof Map) v.forEach(walk);
      else if (Array.isArray(v)) v.forEach(walk);
    };
    walk(value);
    expect(tensors.length).toBeGreaterThan(0);
    for (const t of tensors) expect(t.device.toString()).toBe('cpu');
  });

  it('passes the recorded location to a mapLocation function', () => {
    const seen: string[] = [];
    torch.load(file(), { mapLocation: (s, loc) => (seen.push(loc), s) });
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set(['cuda:0']));
  });

  it('refuses a CUDA target on a machine without a GPU (the libtorch addon is loaded, CUDA is not there)', () => {
    expect(torch.backends.libtorch.isAvailable().available).toBe(true);
    expect(torch.cuda.isAvailable()).toBe(false);
    expect(torch.cuda.deviceCount()).toBe(0);
    expect(codeOf(() => torch.load(fixturePath('seed_state_dict.pt'), { mapLocation: 'cuda:0' }))).toBe('E_DEVICE_UNAVAILABLE');
  });
});

describe('weightsOnly, safeGlobals and classes', () => {
  it('refuses a whole pickled model under weightsOnly (E_UNSAFE_GLOBAL) and loads it as PyObject otherwise', () => {
    const file = fixturePath('seed_whole_model.pt');
    expect(codeOf(() => torch.load(file))).toBe('E_UNSAFE_GLOBAL');
    const m = torch.load(file, { weightsOnly: false });
    expect(m).toBeInstanceOf(PyObject);
    expect((m as PyObject).fullName).toBe('__main__.TheModelClass');
  });

  it('replaces mapped classes bottom-up with classes.fromPyObject', () => {
    const built: string[] = [];
    class Net {
      static fromPyObject(o: PyObject): Net {
        built.push(o.fullName);
        return new Net(o);
      }
      constructor(readonly source: PyObject) {}
    }
    const m = torch.load(fixturePath('seed_whole_model.pt'), { weightsOnly: false, classes: { '__main__.TheModelClass': Net } });
    expect(m).toBeInstanceOf(Net);
    expect(built).toEqual(['__main__.TheModelClass']);
  });

  it('accepts safeGlobals as strings or classes with pyName', () => {
    const file = fixturePath('seed_whole_model.pt');
    const globals = torch.loadWithInfo(file, { weightsOnly: false }).info.globals;
    expect(globals.length).toBeGreaterThan(0);
    const asClasses = globals.map((g) => ({ pyName: g }));
    expect(torch.load(file, { safeGlobals: asClasses })).toBeInstanceOf(PyObject);
    expect(torch.load(file, { safeGlobals: globals })).toBeInstanceOf(PyObject);
  });
});

describe('errors carry codes', () => {
  it('bad arguments', () => {
    expect(codeOf(() => torch.load(42 as unknown as string))).toBe('E_INVALID_ARGUMENT');
    expect(codeOf(() => torch.load(fixturePath('seed_state_dict.pt'), { encoding: 'koi8' as 'utf8' }))).toBe('E_INVALID_ARGUMENT');
    expect(codeOf(() => torch.load(fixturePath('seed_state_dict.pt'), { safeGlobals: [{} as { pyName: string }] }))).toBe('E_INVALID_ARGUMENT');
  });

  it('empty and garbage input', () => {
    expect(codeOf(() => torch.load(new Uint8Array(0)))).toMatch(/^E_(TRUNCATED|UNKNOWN_FORMAT)$/);
    expect(codeOf(() => torch.load(new Uint8Array([1, 2, 3, 4, 5])))).toMatch(/^E_/);
  });

  it('every attack file fails with one of its expected codes, never a crash', () => {
    const attacks = readAttacks();
    for (const [file, spec] of Object.entries(attacks)) {
      const path = join(fixturePath('attacks'), file);
      // Tar files are refused under weightsOnly before parsing (as torch does); load them as
      // data so the tar parser itself is what the attack meets.
      const base: torch.LoadOptions = file.endsWith('.tar') ? { weightsOnly: false } : {};
      if (file.endsWith('.tar')) expect(['E_UNSAFE_GLOBAL', ...spec.codes]).toContain(codeOf(() => torch.load(path)));
      // Eager reads materialise every byte, so every check (storage CRCs included) runs.
      const code = codeOf(() => torch.load(path, { ...base, mmap: false }));
      expect(spec.codes, `${file} -> ${code}`).toContain(code);
      // A mapped read skips storage CRCs by default (it must not touch every page); it
      // still never crashes, and fails with the same code unless only a storage CRC is bad.
      const mapped = codeOf(() => torch.load(path, base));
      if (!(spec.codes.length === 1 && spec.codes[0] === 'E_BAD_CRC' && mapped === undefined)) {
        expect(spec.codes, `${file} (mmap) -> ${mapped}`).toContain(mapped);
      }
      expect(codeOf(() => torch.load(path, { ...base, verifyCrc: true })), `${file} (mmap, verifyCrc)`).toBe(code);
    }
  });
});

describe('meta tensors', () => {
  it('load as data-less tensors and re-save as meta tensors torch rebuilds', () => {
    const src = join(tmp, 'meta.pt');
    const make = spawnSync(
      pythonPath(),
      ['-c', "import sys, torch; torch.save({'m': torch.empty(2, 3, device='meta', dtype=torch.float16), 'x': torch.arange(3)}, sys.argv[1])", src],
      { encoding: 'utf8' },
    );
    expect(make.status, make.stderr).toBe(0);
    const sd = torch.load<Map<string, torch.Tensor>>(src);
    const m = sd.get('m')!;
    expect(m.device.type).toBe('meta');
    expect(m.dtype).toBe('float16');
    expect([...m.size()]).toEqual([2, 3]);
    expect(m.stride()).toEqual([3, 1]);
    expect(codeOf(() => m.toArray())).toBe('E_DEVICE_UNAVAILABLE');
    expect(String(m)).toBe("tensor(..., device='meta', size=(2, 3), dtype=torch.float16)");
    const out = join(tmp, 'meta-resaved.pt');
    torch.save(sd, out);
    const check = spawnSync(
      pythonPath(),
      ['-c', "import sys, torch; d = torch.load(sys.argv[1]); m = d['m']; print(m.device.type, str(m.dtype), list(m.shape), d['x'].tolist())", out],
      { encoding: 'utf8' },
    );
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout.trim()).toBe('meta torch.float16 [2, 3] [0, 1, 2]');
  });
});
