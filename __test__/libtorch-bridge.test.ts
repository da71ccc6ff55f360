/**
 * The bridge between torchsave's tensors and libtorch's: CPU memory crosses without a copy
 * both ways (a libtorch tensor borrows a loaded tensor's bytes and keeps them alive; a libtorch
 * result's bytes are exposed to JS as they are), views of one result share one storage (and
 * torch.save writes it once), `.to(dtype)`, `.cpu()`, `.to('cuda:0')`, and error codes.
 * The oracle is __test__/python/libtorch/bridge.py.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts';
import { loadLibtorch } from '../ts/libtorch/addon';
import * as nn from '../ts/nn';
import { load, save } from '../ts/serialization';
import { Tensor } from '../ts/tensor';
import type { DType } from '../ts/dtype';
import { codeOf, runLtPy, singleThreaded } from './libtorch-helpers';

let dir: string;
let casts: Map<string, [Tensor, Tensor]>;

beforeAll(() => {
  singleThreaded();
  dir = mkdtempSync(join(tmpdir(), 'lt-bridge-'));
  const path = join(dir, 'casts.pt');
  runLtPy('bridge.py', ['make', path]);
  casts = (load<Map<string, unknown>>(path).get('casts') as Map<string, [Tensor, Tensor]>);
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh loaded (core-owned, file-backed) float32 tensor. */
function loaded(): Tensor {
  const p = join(dir, `t${Math.random().toString(36).slice(2)}.pt`);
  save(new Map([['t', torch.arange(0, 12, 1, { dtype: 'float32' }).view(3, 4)]]), p);
  return load<Map<string, Tensor>>(p).get('t')!;
}

describe('zero copy between core tensors and libtorch (CPU)', () => {
  it('a write through the JS typed array of a loaded tensor is seen by libtorch ops', () => {
    const t = loaded();
    const js = t.typedArray() as Float32Array;
    const before = Number(t.sum().item());
    js[5] = 1000;
    expect(Number(t.sum().item())).toBe(before - 5 + 1000);
    expect(Number(t.mul(2).select(1, 1).select(0, 1).item())).toBe(2000);
  });

  it('an in-place libtorch op on a loaded tensor is seen in its JS bytes (and the storage object is the same)', () => {
    const t = loaded();
    const storage = t.untypedStorage();
    const js = t.typedArray() as Float32Array;
    t.add_(torch.ones([3, 4]), 0.5);
    expect(Array.from(js)).toEqual(Array.from({ length: 12 }, (_, i) => i + 0.5));
    t.mul_(2);
    expect(js[3]).toBe(7);
    t.zero_();
    expect(js.every((v) => v === 0)).toBe(true);
    expect(t.untypedStorage()).toBe(storage);
  });

  it('a libtorch result is read from JS without a copy, and writes cross both ways', () => {
    const r = loaded().mul(3);
    const js = r.typedArray() as Float32Array;
    expect(Array.from(js)).toEqual(Array.from({ length: 12 }, (_, i) => 3 * i));
    r.add_(1);
    expect(js[0]).toBe(1);
    js[11] = -5;
    expect(Number(r.max().item())).toBe(31); // 3 * 10 + 1; the 34 at [11] is now -5
    expect(Number(r.select(0, 2).select(0, 3).item())).toBe(-5);
  });

  it('a loaded tensor and its libtorch views share one UntypedStorage', () => {
    const t = loaded();
    const s = t.untypedStorage();
    for (const v of [t.t(), t.narrow(1, 1, 2), t.select(0, 2), t.unsqueeze(0), t.permute(1, 0), ...t.chunk(2, 1)]) {
      expect(v.untypedStorage()).toBe(s);
    }
  });

  it('views of one libtorch result share one UntypedStorage; torch.save writes it once, torch.load sees one storage', () => {
    const r = loaded().mul(2).add(1); // a libtorch-owned result
    const views = { r, a: r.narrow(0, 1, 2), b: r.t(), c: r.select(1, 3), d: r.view(12) };
    const s = r.untypedStorage();
    for (const [k, v] of Object.entries(views)) expect(v.untypedStorage(), k).toBe(s);
    const path = join(dir, 'views.pt');
    save(new Map(Object.entries(views)), path);
    const py = JSON.parse(runLtPy('bridge.py', ['check', path])) as {
      records: string[];
      one_storage: boolean;
      values: Record<string, unknown>;
      strides: Record<string, number[]>;
      offsets: Record<string, number>;
    };
    expect(py.records).toEqual(['0']);
    expect(py.one_storage).toBe(true);
    for (const [k, v] of Object.entries(views)) {
      expect(py.values[k], k).toEqual(v.tolist());
      expect(py.strides[k], k).toEqual(v.stride());
      expect(py.offsets[k], k).toBe(v.storageOffset());
    }
  });

  it('libtorch keeps a borrowed JS buffer alive under GC, releases it afterwards; exposed libtorch memory outlives its tensor', () => {
    const addonPath = loadLibtorch().path!;
    const r = spawnSync(process.execPath, ['--expose-gc', join(__dirname, 'helpers', 'libtorch-keepalive-child.js'), addonPath], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      bufferCollectedWhileBorrowed: boolean;
      borrowed: { sum: number; want: number; bad: number };
      released: number;
      bufferCollectedAfterRelease: boolean;
      ownedLength: number;
      ownedBad: number;
    };
    expect(out.bufferCollectedWhileBorrowed).toBe(false);
    expect(out.borrowed.bad).toBe(0);
    expect(out.borrowed.sum).toBe(out.borrowed.want);
    expect(out.released).toBeGreaterThanOrEqual(1);
    expect(out.bufferCollectedAfterRelease).toBe(true);
    expect(out.ownedLength).toBe(1 << 16);
    expect(out.ownedBad).toBe(0);
  });
});

describe('.to(dtype), .cpu(), devices', () => {
  it(".to(dtype) through libtorch equals PyTorch's cast bit for bit (and so does the core's CPU cast)", () => {
    expect([...casts.keys()].sort()).toEqual(['bfloat16', 'bool', 'float16', 'float32', 'float64', 'int16', 'int32', 'int64', 'int8', 'uint8']);
    for (const [dtype, [src, want]] of casts) {
      // first the core's cast (src has no libtorch tensor yet), then libtorch's on a result
      expect(src.to(dtype as DType).equal(want), `core ${src.dtype} -> ${dtype}`).toBe(true);
      const got = src.mul(1).to(dtype as DType);
      expect(got.dtype, dtype).toBe(want.dtype);
      expect(got.equal(want), `libtorch ${src.dtype} -> ${dtype}`).toBe(true);
    }
  });

  it('.to(same dtype) and .cpu() on a CPU tensor return the tensor itself (no copy)', () => {
    const r = loaded().mul(1);
    expect(r.to('float32')).toBe(r);
    expect(r.cpu()).toBe(r);
    expect(r.to('cpu')).toBe(r);
    const t = loaded();
    expect(t.cpu()).toBe(t);
  });

  const HAVE_CUDA = torch.cuda.isAvailable();

  it.skipIf(HAVE_CUDA)("without a GPU, to('cuda:0') and friends throw E_DEVICE_UNAVAILABLE", () => {
    expect(torch.cuda.deviceCount()).toBe(0);
    const t = loaded();
    expect(codeOf(() => t.to('cuda:0'))).toBe('E_DEVICE_UNAVAILABLE');
    expect(codeOf(() => t.mul(1).to('cuda:0'))).toBe('E_DEVICE_UNAVAILABLE');
    expect(codeOf(() => t.cuda())).toBe('E_DEVICE_UNAVAILABLE');
    expect(codeOf(() => new nn.Linear(2, 2).to('cuda'))).toBe('E_DEVICE_UNAVAILABLE');
    expect(codeOf(() => torch.zeros([2], { device: 'cuda:0' }))).toBe('E_DEVICE_UNAVAILABLE');
  });

  it.runIf(HAVE_CUDA)("with a GPU, to('cuda:0') / .cpu() round-trip values, and compute stays on the device", () => {
    const t = loaded();
    const g = t.to('cuda:0');
    expect(g.device.toString()).toBe('cuda:0');
    expect(codeOf(() => g.untypedStorage().bytes)).toBe('E_DEVICE_UNAVAILABLE');
    const y = g.mul(2).add(1);
    expect(y.device.toString()).toBe('cuda:0');
    const back = y.cpu();
    expect(back.device.toString()).toBe('cpu');
    expect(back.equal(t.mul(2).add(1))).toBe(true);
    expect(g.to('float64').cpu().equal(t.to('float64'))).toBe(true);
  });
});

describe('errors from libtorch carry codes', () => {
  it('shape mismatches are E_COMPUTE', () => {
    expect(codeOf(() => torch.ones([2, 3]).matmul(torch.ones([4, 5])))).toBe('E_COMPUTE');
    expect(codeOf(() => torch.ones([2]).add(torch.ones([3])))).toBe('E_COMPUTE');
    expect(codeOf(() => new nn.Linear(3, 2).forward(torch.ones([1, 4])))).toBe('E_COMPUTE');
    expect(codeOf(() => new nn.Conv2d(3, 4, 3).forward(torch.ones([1, 2, 8, 8])))).toBe('E_COMPUTE');
    expect(codeOf(() => torch.ones([2, 3]).view(4, 2))).toBe('E_INVALID_ARGUMENT'); // checked in JS for core tensors
    expect(codeOf(() => torch.ones([2, 3]).mul(1).view(4, 2))).toBe('E_COMPUTE');
  });

  it('a failing op with a scalar argument is E_COMPUTE with libtorch\'s message, not a process abort', () => {
    // tch drops the op's Scalar before reading libtorch's error and that drop panicked.
    expect(codeOf(() => torch.zeros([2], { dtype: 'complex64' }).lt(0))).toBe('E_COMPUTE');
    const lin = new nn.Linear(2, 2);
    lin.forward(torch.ones([1, 2])); // the weight is on libtorch now: a leaf that requires grad
    for (const f of [() => lin.weight.mul_(2), () => lin.weight.fill_(0), () => lin.weight.add_(1)]) {
      let err: { code?: string; message: string } | undefined;
      try {
        f();
      } catch (e) {
        err = e as { code?: string; message: string };
      }
      expect(err?.code).toBe('E_COMPUTE');
      expect(err?.message).toMatch(/leaf Variable that requires grad/);
    }
    // the process and libtorch are fine afterwards, and under noGrad the same writes work
    const before = Number(lin.weight.sum().item());
    torch.noGrad(() => lin.weight.mul_(2));
    expect(Number(lin.weight.sum().item())).toBeCloseTo(2 * before, 5);
  });

  it('a failed op leaves the grad mode and the inputs usable', () => {
    const x = loaded();
    expect(codeOf(() => x.matmul(torch.ones([5, 5])))).toBe('E_COMPUTE');
    expect(torch.isGradEnabled()).toBe(true);
    expect(Number(x.sum().item())).toBe(66);
  });
});
