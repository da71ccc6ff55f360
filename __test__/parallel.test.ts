/**
 * nn.DataParallel's forward and torch.nn.parallel's helpers on the CPU (needs the libtorch
 * addon). On a machine without CUDA DataParallel runs the module directly, as PyTorch does;
 * the multi-device algorithm (scatter, replicate, parallelApply, gather) is exercised through
 * `nn.parallel.dataParallel` with CPU "devices", which runs every step on the host. The same
 * path on a real GPU is in scripts/gpu-check.js.
 */
import { describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import * as nn from '../ts/nn';
import { Tensor, tensor } from '../ts/tensor';
import { OrderedDict, PyTuple } from '../ts/values';

const HAVE_LIBTORCH = torch.backends.libtorch.isAvailable().available;

function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect([...a.size()]).toEqual([...b.size()]);
  return a.sub(b).abs().max().item() as number;
}

class MLP extends nn.Module {
  fc1 = new nn.Linear(6, 8);
  act = new nn.ReLU();
  fc2 = new nn.Linear(8, 3);
  override forward(x: Tensor): Tensor {
    return this.fc2.call(this.act.call(this.fc1.call(x)));
  }
}

/** Ties fc2 to fc1 and shares one submodule twice, to check replicate keeps both. */
class Tied extends nn.Module {
  a = new nn.Linear(4, 4);
  b = new nn.Linear(4, 4);
  scale = 2;
  constructor() {
    super();
    this.b.weight = this.a.weight;
    (this as unknown as { again: nn.Module }).again = this.a;
  }
  override forward(x: Tensor, opts: { twice: boolean }): { y: Tensor; n: Tensor[] } {
    let y = this.b.call(this.a.call(x));
    if (opts.twice) y = y.mul(this.scale);
    return { y, n: [y.sum(1)] };
  }
}

describe.skipIf(!HAVE_LIBTORCH)('nn.DataParallel forward without CUDA', () => {
  it('has no devices and runs the module directly: same output, gradients on the module', () => {
    torch.manualSeed(0);
    const model = new MLP();
    const dp = new nn.DataParallel(model);
    expect(dp.deviceIds).toEqual([]);
    expect(dp.srcDevice).toBeNull();
    const x = torch.randn([5, 6]);
    const direct = model.call(x);
    const viaDp = dp.call(x);
    expect(viaDp.equal(direct)).toBe(true);
    viaDp.sum().backward();
    const g1 = model.fc1.weight.grad!.clone();
    model.zeroGrad();
    direct.sum().backward();
    expect(model.fc1.weight.grad!.equal(g1)).toBe(true);
    expect(dp.parameters()[0]).toBe(model.fc1.weight);
  });

  it('asking for CUDA devices on a CPU-only machine is ignored, as in PyTorch', () => {
    const dp = new nn.DataParallel(new MLP(), { deviceIds: [0, 1], outputDevice: 0 });
    expect(dp.deviceIds).toEqual([]);
    expect(dp.requestedDeviceIds).toEqual([0, 1]);
  });
});

describe.skipIf(!HAVE_LIBTORCH)('torch.nn.parallel helpers on CPU tensors', () => {
  it('scatter chunks tensors along dim (also nested), repeats other values, and zips to the shortest', () => {
    const x = torch.arange(10).view(5, 2);
    const y = torch.arange(6).view(2, 3);
    const parts = nn.parallel.scatter([x, 'tag', [y], new Map([['k', x]]), { t: x, n: 3 }, PyTuple.fromItems([x])], ['cpu', 'cpu'], 0);
    expect(parts).toHaveLength(2);
    const [p0, p1] = parts as [unknown[], unknown[]];
    expect((p0[0] as Tensor).tolist()).toEqual([[0, 1], [2, 3], [4, 5]]);
    expect((p1[0] as Tensor).tolist()).toEqual([[6, 7], [8, 9]]);
    expect(p0[1]).toBe('tag');
    expect(p1[1]).toBe('tag');
    expect(((p1[2] as Tensor[])[0] as Tensor).tolist()).toEqual([[3, 4, 5]]);
    expect(((p0[3] as Map<string, Tensor>).get('k') as Tensor).size(0)).toBe(3);
    expect((p1[4] as { t: Tensor; n: number }).n).toBe(3);
    expect((p1[4] as { t: Tensor }).t.size(0)).toBe(2);
    expect(p1[5]).toBeInstanceOf(PyTuple);
    // One row and two devices: torch.chunk gives one piece, so one replica.
    expect(nn.parallel.scatter([torch.zeros([1, 4])], ['cpu', 'cpu'])).toHaveLength(1);
    // Along dim 1.
    const cols = nn.parallel.scatter([torch.arange(12).view(2, 6)], [0, 1, 2].map(() => 'cpu'), 1);
    expect(cols.map((c) => [...(c[0] as Tensor).size()])).toEqual([[2, 2], [2, 2], [2, 2]]);
    // No tensors at all: every device gets the same arguments.
    expect(nn.parallel.scatter([1, 'a'], ['cpu', 'cpu'])).toEqual([[1, 'a'], [1, 'a']]);
    expect(nn.parallel.scatter([], ['cpu'])).toEqual([]);
  });

  it('scattered pieces are differentiable views: gradients reach the whole input', () => {
    const x = torch.randn([4, 3]).requiresGrad_();
    const [a, b] = nn.parallel.scatter([x], ['cpu', 'cpu']) as [[Tensor], [Tensor]];
    a[0].sum().add(b[0].mul(2).sum()).backward();
    expect(x.grad!.tolist()).toEqual([[1, 1, 1], [1, 1, 1], [2, 2, 2], [2, 2, 2]]);
  });

  it('gather concatenates along dim, recurses into arrays/Maps/objects, makes scalars a vector', () => {
    const a = torch.arange(4).view(2, 2);
    const b = torch.arange(4, 6).view(1, 2);
    expect((nn.parallel.gather([a, b], 'cpu') as Tensor).tolist()).toEqual([[0, 1], [2, 3], [4, 5]]);
    expect((nn.parallel.gather([a, a], -1, 1) as Tensor).size()).toEqual(torch.zeros([2, 4]).size());
    const g = nn.parallel.gather(
      [
        { out: [a, null], m: new OrderedDict([['s', tensor(1.5)]]) },
        { out: [b, null], m: new OrderedDict([['s', tensor(2.5)]]) },
      ],
      'cpu',
    ) as { out: [Tensor, null]; m: OrderedDict<string, Tensor> };
    expect(g.out[0].size(0)).toBe(3);
    expect(g.out[1]).toBeNull();
    expect(g.m).toBeInstanceOf(OrderedDict);
    expect(g.m.get('s')!.tolist()).toEqual([1.5, 2.5]);
    const tup = nn.parallel.gather([PyTuple.fromItems([a]), PyTuple.fromItems([b])], 'cpu');
    expect(tup).toBeInstanceOf(PyTuple);
    expect(() => nn.parallel.gather([1, 2], 'cpu')).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    expect(() => nn.parallel.gather([new Map([['a', a]]), new Map()], 'cpu')).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });

  it('replicate copies the tree structurally: classes, attributes, tied weights and shared submodules kept', () => {
    const m = new Tied();
    m.eval();
    const [r0, r1] = nn.parallel.replicate(m, ['cpu', 'cpu']);
    for (const r of [r0!, r1!]) {
      expect(r).toBeInstanceOf(Tied);
      expect(r).not.toBe(m);
      expect(r.a).toBeInstanceOf(nn.Linear);
      expect(r.a).not.toBe(m.a);
      expect(r.a.inFeatures).toBe(4);
      expect(r.scale).toBe(2);
      expect(r.training).toBe(false);
      expect(r.b.weight).toBe(r.a.weight); // tied stays tied
      expect((r as unknown as { again: nn.Module }).again).toBe(r.a); // shared stays shared
      expect([...r.stateDict().keys()]).toEqual([...m.stateDict().keys()]);
      // On the module's own device a replica uses the very same tensors.
      expect(r.a.weight).toBe(m.a.weight);
    }
    expect(r0!.a).not.toBe(r1!.a);
  });

  it('dataParallel on two CPU "devices" equals the module on the whole batch; gradients reach the originals', () => {
    torch.manualSeed(1);
    const model = new MLP();
    const x = torch.randn([7, 6]);
    const full = model.call(x);
    full.pow(2).sum().backward();
    const want = model.parameters().map((p) => p.grad!.clone());
    model.zeroGrad();
    const out = nn.parallel.dataParallel(model, [x], ['cpu', 'cpu'], 'cpu');
    expect(maxAbsDiff(out, full)).toBeLessThan(1e-6);
    out.pow(2).sum().backward();
    model.parameters().forEach((p, i) => expect(maxAbsDiff(p.grad!, want[i]!)).toBeLessThan(1e-5));
  });

  it('dataParallel passes non-tensor arguments to every replica and gathers structured outputs', () => {
    torch.manualSeed(2);
    const m = new Tied();
    const x = torch.randn([6, 4]);
    const want = m.call(x, { twice: true });
    const got = nn.parallel.dataParallel(m, [x, { twice: true }], ['cpu', 'cpu', 'cpu']);
    expect(maxAbsDiff(got.y, want.y)).toBeLessThan(1e-6);
    expect(maxAbsDiff(got.n[0]!, want.n[0]!)).toBeLessThan(1e-5);
  });

  it('dataParallel checks that the module is on deviceIds[0]', () => {
    expect(() => nn.parallel.dataParallel(new MLP(), [torch.zeros([2, 6])], ['cuda:0'])).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    // No devices: the module runs directly (PyTorch raises without an accelerator; we are lenient).
    const m = new MLP();
    const x = torch.randn([2, 6]);
    expect(nn.parallel.dataParallel(m, x, []).equal(m.call(x))).toBe(true);
  });
});

describe('DataParallel pickling and device options without compute', () => {
  it('a DataParallel loaded from a GPU machine keeps its fields and pickles them back only where devices exist', () => {
    const dp = new nn.DataParallel(new MLP(), { dim: 1 });
    expect(dp.dim).toBe(1);
    const st = (dp as unknown as { pyStateDict(): Map<string, unknown> }).pyStateDict();
    expect([...st.keys()].slice(17)).toEqual(['device_ids']);
    // What torch pickles on a GPU machine: dim, device_ids, output_device, src_device_obj.
    const gpuState = new Map(st);
    gpuState.delete('device_ids');
    gpuState.set('dim', 1).set('device_ids', [0]).set('output_device', 0).set('src_device_obj', new torch.Device('cuda:0'));
    const back = nn.DataParallel.fromPyObject(new torch.PyObject('torch.nn.parallel.data_parallel', 'DataParallel', 'newobj', new PyTuple(), gpuState));
    expect(back.dim).toBe(1);
    expect(back.requestedDeviceIds).toEqual([0]);
    const expectedIds = torch.cuda.deviceCount() > 0 ? [0] : [];
    expect(back.deviceIds).toEqual(expectedIds);
    expect(Object.keys(back)).toEqual([]);
  });

  it('pickles device fields in __init__ order when it has devices, then user attributes', () => {
    const dp = new nn.DataParallel(new MLP());
    (dp as unknown as { note: string }).note = 'x';
    const keysOf = (m: nn.Module) => [...(m as unknown as { pyStateDict(): Map<string, unknown> }).pyStateDict().keys()].slice(17);
    expect(keysOf(dp)).toEqual(['device_ids', 'note']);
    // As if built on a one-GPU machine (DataParallel.__init__: dim, module, device_ids, output_device, src_device_obj).
    Object.defineProperty(dp, '_deviceIds', { value: [0], enumerable: false });
    Object.defineProperty(dp, 'outputDevice', { value: 0, enumerable: false });
    expect(keysOf(dp)).toEqual(['dim', 'device_ids', 'output_device', 'src_device_obj', 'note']);
    const st = (dp as unknown as { pyStateDict(): Map<string, unknown> }).pyStateDict();
    expect(st.get('device_ids')).toEqual([0]);
    expect(String(st.get('src_device_obj'))).toBe('cuda:0');
  });
});
