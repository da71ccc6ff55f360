/**
 * TorchScript run by libtorch (the addon's NativeScriptModule, tch's CModule) against real
 * torch 2.11: __test__/python/make_jit_fixtures.py wrote runs.pt, per case a file, a method,
 * its arguments and what `torch.jit.load(p).eval()` returned. Ours must return the same
 * (tensors within 1e-6, numbers, strings, tuples, lists, dicts): the traced seed model, a
 * scripted module with control flow, BatchNorm in eval mode, a module taking a dict and
 * returning every container, a second exported method, and tch-rs's own fixtures (read in
 * place from the peer corpus) as tch-rs's tests call them. Plus train()/eval() reaching
 * libtorch (dropout), to(device), and the coded errors.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts';
import { Tensor } from '../ts/tensor';
import { PyTuple } from '../ts/values';
import { codeOf, expectClose } from './libtorch-helpers';
import { ensureFixtures, fixturePath, REPO_ROOT } from './helpers/python';

interface Case {
  file: string;
  method: string;
  args: unknown[];
  out: unknown;
}

let dir: string;
let cases: Map<string, Map<string, unknown>>;

beforeAll(() => {
  ensureFixtures();
  dir = join(fixturePath('x'), '..', 'jit');
  cases = torch.load(join(dir, 'runs.pt'), { weightsOnly: true }) as Map<string, Map<string, unknown>>;
}, 600_000);

function pathOf(file: string): string {
  return file.startsWith('peer:') ? join(REPO_ROOT, '..', 'shared', 'peer-corpus', file.slice(5)) : join(dir, file);
}

function get(name: string): Case {
  const c = cases.get(name);
  if (!c) throw new Error(`runs.pt has no case ${name}`);
  return Object.fromEntries(c) as unknown as Case;
}

/** Deep equality of a result with torch's: tensors within 1e-6, containers by kind. */
function expectSame(got: unknown, want: unknown, label: string): void {
  if (want instanceof Tensor) {
    expect(got, label).toBeInstanceOf(Tensor);
    expectClose(got as Tensor, want, label);
  } else if (want instanceof PyTuple) {
    expect(got, `${label}: a tuple`).toBeInstanceOf(PyTuple);
    expect((got as unknown[]).length, label).toBe(want.length);
    want.forEach((w, i) => expectSame((got as unknown[])[i], w, `${label}[${i}]`));
  } else if (Array.isArray(want)) {
    expect(Array.isArray(got) && !(got instanceof PyTuple), `${label}: a list`).toBe(true);
    expect((got as unknown[]).length, label).toBe(want.length);
    want.forEach((w, i) => expectSame((got as unknown[])[i], w, `${label}[${i}]`));
  } else if (want instanceof Map) {
    expect(got, `${label}: a dict`).toBeInstanceOf(Map);
    expect([...(got as Map<unknown, unknown>).keys()], label).toEqual([...want.keys()]);
    for (const [k, w] of want) expectSame((got as Map<unknown, unknown>).get(k), w, `${label}[${String(k)}]`);
  } else if (typeof want === 'number') {
    expect(got as number, label).toBeCloseTo(want, 6);
  } else {
    expect(got, label).toEqual(want);
  }
}

function run(name: string): { c: Case; got: unknown; m: torch.jit.ScriptArchiveModule } {
  const c = get(name);
  const m = torch.jit.load(pathOf(c.file));
  m.eval();
  const got = c.method === 'forward' ? m.forward(...c.args) : m.callMethod(c.method, ...c.args);
  return { c, got, m };
}

describe('ScriptModule on libtorch equals torch.jit.load(p) in Python', () => {
  for (const name of [
    'traced_seed',
    'scripted_control',
    'batchnorm',
    'multi_forward',
    'multi_add',
    'tch_foo',
    'tch_foo1',
    'tch_foo2',
    'tch_foo3',
    'tch_foo4',
    'tch_foo5',
    'tch_foo8',
  ]) {
    it(name, () => {
      const { c, got, m } = run(name);
      expectSame(got, c.out, name);
      m.dispose();
    });
  }

  it('multi_forward returns every kind: tuple of tensor, list, dict, str, int, list of float', () => {
    const { got } = run('multi_forward');
    const [, list, dict, tag, n, floats] = got as PyTuple<unknown>;
    expect((list as unknown[]).length).toBe(2);
    expect(dict).toBeInstanceOf(Map);
    expect(tag).toBe('hi!');
    expect(n).toBe(3);
    expect(floats).toEqual([0.5, 1.5]);
  });

  it("tch-rs's foo.pt computes 2*x + y + value with its buffer value = 42", () => {
    const m = torch.jit.load(pathOf('peer:tch-rs/foo.pt'));
    const out = m.forward(torch.tensor([1, 2]), torch.tensor([10, 20])) as Tensor;
    expect(out.tolist()).toEqual([54, 66]);
    expect((m.getattr('value') as Tensor).tolist()).toEqual([42]);
  });
});

describe('mode, device and errors', () => {
  it('train() reaches libtorch: dropout zeroes activations in training mode, none in eval', () => {
    const c = get('multi_forward');
    const m = torch.jit.load(pathOf(c.file));
    const zeros = (r: unknown) => ((r as PyTuple<unknown>)[2] as Map<string, Tensor>).get('double')!.eq(0).sum().item() as number;
    m.eval();
    expect(zeros(m.forward(...c.args))).toBe(0);
    m.train();
    expect(m.training).toBe(true);
    expect(zeros(m.forward(...c.args))).toBeGreaterThan(10);
  });

  it('to(device) moves the compiled module; a CUDA device this machine lacks is E_DEVICE_UNAVAILABLE', () => {
    const c = get('multi_add');
    const m = torch.jit.load(pathOf(c.file));
    expect(m.to('cpu')).toBe(m);
    expect(m.device.toString()).toBe('cpu');
    expectSame(m.callMethod('add', ...c.args), c.out, 'after to(cpu)');
    if (!torch.cuda.isAvailable()) {
      expect(codeOf(() => m.to('cuda:0'))).toBe('E_DEVICE_UNAVAILABLE');
      expect(codeOf(() => torch.jit.load(pathOf(c.file), { device: 'cuda' }).forward())).toBe('E_DEVICE_UNAVAILABLE');
    }
    // the module still runs where it was
    expectSame(m.callMethod('add', ...c.args), c.out, 'after a refused move');
  });

  it('TorchScript type errors are E_COMPUTE: an int where foo4 wants a float (PyFloat makes one)', () => {
    const m = torch.jit.load(pathOf('peer:tch-rs/foo4.pt'));
    expect(codeOf(() => m.forward(PyTuple.fromItems([1, 2, 3])))).toBe('E_COMPUTE');
    expect(m.forward(PyTuple.fromItems([new torch.PyFloat(1), new torch.PyFloat(2), 3]))).toBe(7);
  });

  it('a method returning a TorchScript object is E_INVALID_ARGUMENT; a submodule is E_NOT_IMPLEMENTED; a disposed module recompiles', () => {
    const m6 = torch.jit.load(pathOf('peer:tch-rs/foo6.pt'));
    expect(codeOf(() => m6.forward(torch.tensor([1])))).toBe('E_INVALID_ARGUMENT');
    const ctl = torch.jit.load(join(dir, 'scripted_control.pt'));
    const sub = ctl.getattr('head') as torch.jit.ScriptModule;
    expect(codeOf(() => sub.forward(torch.zeros([1, 4])))).toBe('E_NOT_IMPLEMENTED');
    const c = get('scripted_control');
    ctl.eval();
    ctl.dispose();
    expectSame(ctl.forward(...c.args), c.out, 'after dispose');
    expect(codeOf(() => ctl.callMethod('no_such_method'))).toBe('E_COMPUTE');
  });
});
