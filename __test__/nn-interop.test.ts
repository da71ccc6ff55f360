/**
 * File interop with real PyTorch 2.11 (runs once ts/serialization.ts — torch.save/torch.load —
 * is in the tree; skipped before). The Python side is __test__/python/nn/crosscheck.py.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as nn from '../ts/nn';
import * as optim from '../ts/optim';
import type { TorchIO } from '../ts/demo/seed';
import type { Tensor } from '../ts/tensor';
import type { OrderedDict } from '../ts/values';
import { MODEL_CLASSES, TheModelClass, build, enc, runPy } from './nn-helpers';

type Sums = Record<string, [number[], string, number, number]>;

function sums(sd: Map<string, Tensor>): Sums {
  const out: Sums = {};
  for (const [k, t] of sd) {
    const v = t.toFloat64Array();
    out[k] = [[...t.size()], t.dtype, v.reduce((a, b) => a + b, 0), v.reduce((a, b) => a + Math.abs(b), 0)];
  }
  return out;
}

function expectSums(got: Sums, want: Sums): void {
  expect(Object.keys(got)).toEqual(Object.keys(want));
  for (const [k, [shape, dtype, s, a]] of Object.entries(want)) {
    expect(got[k]![0], k).toEqual(shape);
    expect(got[k]![1], k).toBe(dtype);
    expect(got[k]![2], k).toBeCloseTo(s, 3);
    expect(got[k]![3], k).toBeCloseTo(a, 3);
  }
}

describe('nn/optim files cross with torch 2.11', () => {
  let io: TorchIO;
  let dir: string;
  beforeAll(async () => {
    io = (await import('../ts/serialization')) as TorchIO;
    dir = mkdtempSync(join(tmpdir(), 'nn-interop-'));
  });

  for (const name of ['seed', 'bn', 'lstm']) {
    it(`${name}: TS state dict -> Python load_state_dict(strict=True), equal values`, () => {
      const m = build(name);
      const path = join(dir, `ts_sd_${name}.pt`);
      io.save(m.stateDict(), path);
      const py = runPy<{ missing: string[]; unexpected: string[]; sums: Sums; metadata: string[] }>('crosscheck.py', ['load_sd', name, path]);
      expect(py.missing).toEqual([]);
      expect(py.unexpected).toEqual([]);
      expect(py.metadata).toEqual([...m.stateDict()._metadata!.keys()]);
      expectSums(py.sums, sums(m.stateDict()));
    });

    it(`${name}: Python state dict -> TS loadStateDict strict, equal values`, () => {
      const path = join(dir, `py_sd_${name}.pt`);
      const py = runPy<{ sums: Sums }>('crosscheck.py', ['save_sd', name, path]);
      const m = build(name);
      expect(m.loadStateDict(io.load(path) as Map<string, Tensor>)).toEqual({ missingKeys: [], unexpectedKeys: [] });
      expectSums(sums(m.stateDict()), py.sums);
    });

    it(`${name}: TS whole model -> Python torch.load(weights_only=False) runs forward`, () => {
      const m = build(name);
      const path = join(dir, `ts_whole_${name}.pt`);
      io.save(m, path);
      const py = runPy<{ class: string; out_shape: number[]; sums: Sums; pickle: unknown }>('crosscheck.py', ['load_whole', path, name]);
      expect(py.class).toBe(m.pyGlobal().join('.'));
      expectSums(py.sums, sums(m.stateDict()));
      expect(py.pickle).toEqual(enc(m));
    });

    it(`${name}: Python whole model -> TS module via classes`, () => {
      const path = join(dir, `py_whole_${name}.pt`);
      const py = runPy<{ sums: Sums; pickle: unknown }>('crosscheck.py', ['save_whole', name, path]);
      const m = nn.expectModule(io.load(path, { weightsOnly: false, classes: MODEL_CLASSES }));
      expect(m).toBeInstanceOf(build(name).constructor);
      expectSums(sums(m.stateDict()), py.sums);
      expect(enc(m)).toEqual(py.pickle);
      // and back: our re-save loads in Python again
      const again = join(dir, `py_whole_${name}_resaved.pt`);
      io.save(m, again);
      expect(runPy<{ class: string }>('crosscheck.py', ['load_whole', again, name]).class).toBe(`__main__.${m.pyGlobal()[1]}`);
    });
  }

  it('a whole model without a class mapping stays a PyObject and expectModule names the fix', () => {
    const path = join(dir, 'ts_whole_plain.pt');
    io.save(new TheModelClass(), path);
    expect(() => nn.expectModule(io.load(path, { weightsOnly: false }))).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED_CLASS' }));
  });

  for (const kind of ['sgd', 'adam']) {
    it(`${kind}: TS optimizer state dict -> Python optimizer.load_state_dict + step`, () => {
      const m = new TheModelClass();
      const o = kind === 'sgd' ? new optim.SGD(m.parameters(), { lr: 0.001, momentum: 0.9 }) : new optim.Adam(m.parameters());
      const path = join(dir, `ts_optim_${kind}.pt`);
      io.save(o.stateDict(), path);
      const py = runPy<{ loaded: unknown }>('crosscheck.py', ['load_optim', kind, path]);
      expect(py.loaded).toEqual(enc(o.stateDict()));
    });

    it(`${kind}: Python optimizer state dict (after a step) -> TS loadStateDict`, () => {
      const path = join(dir, `py_optim_${kind}.pt`);
      const py = runPy<{ sd: unknown; sums: Record<string, Record<string, number>> }>('crosscheck.py', ['save_optim', kind, path]);
      const m = new TheModelClass();
      const o = kind === 'sgd' ? new optim.SGD(m.parameters(), { lr: 0.01, momentum: 0.9 }) : new optim.Adam(m.parameters(), { lr: 0.01 });
      o.loadStateDict(io.load(path) as Map<string, unknown>);
      expect(enc(o.stateDict())).toEqual(py.sd);
      const st = o.stateDict().get('state');
      for (const [k, v] of Object.entries(py.sums)) {
        for (const [sk, s] of Object.entries(v)) {
          const t = st.get(Number(k))!.get(sk) as Tensor;
          expect(t.toFloat64Array().reduce((a, b) => a + b, 0)).toBeCloseTo(s, 3);
        }
      }
      // and PyTorch accepts our re-save
      const again = join(dir, `py_optim_${kind}_resaved.pt`);
      io.save(o.stateDict(), again);
      expect(runPy<{ loaded: unknown }>('crosscheck.py', ['load_optim', kind, again]).loaded).toEqual(py.sd);
    });
  }

  it('DataParallel: Python DP file -> TS (as DP, and plain after stripping); TS DP file -> Python after consume_prefix', () => {
    const path = join(dir, 'py_dp.pt');
    const py = runPy<{ sums: Sums }>('crosscheck.py', ['save_dp', path]);
    const dp = new nn.DataParallel(new TheModelClass());
    dp.loadStateDict(io.load(path) as Map<string, Tensor>);
    expectSums(sums(dp.module.stateDict()), py.sums);
    const sd = io.load(path) as OrderedDict<string, Tensor>;
    nn.utils.consumePrefixInStateDictIfPresent(sd, 'module.');
    const plain = new TheModelClass();
    plain.loadStateDict(sd);
    expectSums(sums(plain.stateDict()), py.sums);
    const path2 = join(dir, 'py_dp2.pt');
    const py2 = runPy<{ sums: Sums }>('crosscheck.py', ['save_dp', path2, 'double']);
    const plain2 = new TheModelClass();
    plain2.loadStateDict(nn.utils.stripModulePrefix(io.load(path2) as Map<string, Tensor>));
    expectSums(sums(plain2.stateDict()), py2.sums);

    const tsPath = join(dir, 'ts_dp.pt');
    const tsDp = new nn.DataParallel(new TheModelClass());
    io.save(tsDp.stateDict(), tsPath);
    expect(runPy<{ missing: string[] }>('crosscheck.py', ['load_sd', 'dp', tsPath]).missing).toEqual([]);
    const stripped = runPy<{ missing: string[]; sums: Sums; metadata: string[] }>('crosscheck.py', ['load_sd', 'seed', tsPath, 'strip']);
    expect(stripped.missing).toEqual([]);
    expectSums(stripped.sums, sums(tsDp.module.stateDict()));
  });
});
