/**
 * Forward passes through the libtorch addon against real PyTorch 2.11: every layer, the seed's
 * model, losses and the nn.functional ops the seed uses; BatchNorm's running statistics in
 * training; Dropout/BatchNorm in eval; gradients after backward(); noGrad; zeroGrad.
 * The oracle is __test__/python/libtorch/forward.py (one run writes every case to a file).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts';
import * as nn from '../ts/nn';
import * as F from '../ts/nn/functional';
import { load } from '../ts/serialization';
import { Tensor } from '../ts/tensor';
import { OrderedDict } from '../ts/values';
import { TheModelClass, expectClose, runLtPy, singleThreaded } from './libtorch-helpers';

type SD = Map<string, Tensor>;
type Arg = Tensor | Tensor[];
interface ModuleCase {
  kind: 'module';
  train: boolean;
  sd: SD;
  calls: Arg[][];
  outs: Tensor[][];
  after: SD;
}
interface FunctionalCase {
  kind: 'functional';
  inputs: Tensor[];
  outs: Tensor[];
}
interface GradCase {
  sd: SD;
  x: Tensor;
  y: Tensor;
  loss: Tensor;
  grads: SD;
}
interface Oracle {
  modules: Record<string, ModuleCase | FunctionalCase>;
  autograd: Record<string, GradCase>;
  dropout: { x: Tensor; seed: number; outs: Tensor[] };
}

/** The same constructors as forward.py's MODULES table (names must match). */
const MODULES: Record<string, () => nn.Module> = {
  linear: () => new nn.Linear(3, 4),
  linear_nobias_3d: () => new nn.Linear(3, 4, { bias: false }),
  bilinear: () => new nn.Bilinear(2, 3, 4),
  conv1d: () => new nn.Conv1d(3, 6, 5, { stride: 2, padding: 1 }),
  conv1d_same_even: () => new nn.Conv1d(3, 4, 4, { padding: 'same' }),
  conv2d_same_dil: () => new nn.Conv2d(3, 6, [3, 5], { padding: 'same', dilation: 2 }),
  conv2d_valid_groups: () => new nn.Conv2d(2, 4, 3, { padding: 'valid', groups: 2, bias: false }),
  conv2d_stride_pad: () => new nn.Conv2d(4, 6, 3, { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 }),
  conv2d_unbatched: () => new nn.Conv2d(3, 2, 3),
  conv3d: () => new nn.Conv3d(2, 4, 3),
  conv3d_stride: () => new nn.Conv3d(2, 4, [2, 3, 3], { stride: 2, padding: 1 }),
  conv2d_reflect: () => new nn.Conv2d(3, 4, 3, { padding: 1, paddingMode: 'reflect' }),
  conv2d_replicate: () => new nn.Conv2d(3, 4, 3, { padding: [2, 1], paddingMode: 'replicate' }),
  conv1d_circular: () => new nn.Conv1d(2, 3, 3, { padding: 2, paddingMode: 'circular' }),
  convt2d: () => new nn.ConvTranspose2d(3, 6, 5, { stride: 2, outputPadding: 1 }),
  convt2d_groups: () => new nn.ConvTranspose2d(4, 6, 3, { stride: 2, padding: 1, groups: 2, dilation: 2 }),
  maxpool: () => new nn.MaxPool2d(2, 2),
  maxpool_ceil: () => new nn.MaxPool2d(3, 2, { ceilMode: true }),
  maxpool_pad_dil: () => new nn.MaxPool2d(3, 1, { padding: 1, dilation: 2 }),
  avgpool: () => new nn.AvgPool2d(2),
  avgpool_pad_ceil: () => new nn.AvgPool2d(3, 2, { padding: 1, ceilMode: true, countIncludePad: false }),
  avgpool_divisor: () => new nn.AvgPool2d(2, null, { divisorOverride: 3 }),
  adaptive: () => new nn.AdaptiveAvgPool2d([5, 7]),
  adaptive1: () => new nn.AdaptiveAvgPool2d(1),
  bn1d_train: () => new nn.BatchNorm1d(4),
  bn1d_3d_train: () => new nn.BatchNorm1d(4, { momentum: 0.3 }),
  bn2d_cma_train: () => new nn.BatchNorm2d(4, { momentum: null, affine: false }),
  bn2d_eval: () => new nn.BatchNorm2d(4),
  bn1d_eval: () => new nn.BatchNorm1d(4, { eps: 1e-3 }),
  bn_nostats_eval: () => new nn.BatchNorm2d(3, { trackRunningStats: false }),
  ln: () => new nn.LayerNorm([4, 5], { eps: 1e-6 }),
  ln_noaffine: () => new nn.LayerNorm(4, { elementwiseAffine: false }),
  gn: () => new nn.GroupNorm(2, 4),
  emb: () => new nn.Embedding(10, 3),
  emb_pad: () => new nn.Embedding(10, 3, { paddingIdx: 2 }),
  dropout_eval: () => new nn.Dropout(0.5),
  dropout1_eval: () => new nn.Dropout(1.0),
  relu: () => new nn.ReLU(),
  gelu: () => new nn.GELU(),
  gelu_tanh: () => new nn.GELU('tanh'),
  sigmoid: () => new nn.Sigmoid(),
  tanh: () => new nn.Tanh(),
  softmax: () => new nn.Softmax(1),
  softmax_last: () => new nn.Softmax(-1),
  flatten: () => new nn.Flatten(),
  flatten_1_2: () => new nn.Flatten(1, 2),
  identity: () => new nn.Identity(),
  seq_eval: () => new nn.Sequential(new nn.Linear(4, 8), new nn.ReLU(), new nn.Dropout(0.3), new nn.Linear(8, 2)),
  lstm: () => new nn.LSTM(3, 4),
  lstm_2layer_bi_bf_h0: () => new nn.LSTM(3, 5, { numLayers: 2, bidirectional: true, batchFirst: true }),
  lstm_proj: () => new nn.LSTM(3, 6, { projSize: 2, bias: false }),
  lstm_proj_2layer_bi: () => new nn.LSTM(3, 6, { projSize: 2, numLayers: 2, bidirectional: true }),
  lstm_unbatched: () => new nn.LSTM(3, 4, { numLayers: 2 }),
  lstm_unbatched_bf_h0: () => new nn.LSTM(3, 4, { batchFirst: true }),
  gru_2layer_bi: () => new nn.GRU(3, 4, { numLayers: 2, bidirectional: true, dropout: 0.25 }),
  gru_bf_h0: () => new nn.GRU(3, 4, { batchFirst: true }),
  gru_unbatched_h0: () => new nn.GRU(3, 4),
  seed_model: () => new TheModelClass(),
  ce_loss: () => new nn.CrossEntropyLoss(),
  // the class weights are a buffer: present (any values) so that the state dict loads them
  ce_loss_weighted_smooth: () => new nn.CrossEntropyLoss({ weight: torch.ones([5]), ignoreIndex: 1, labelSmoothing: 0.1 }),
  ce_loss_none_4d: () => new nn.CrossEntropyLoss({ reduction: 'none' }),
  ce_loss_sum: () => new nn.CrossEntropyLoss({ reduction: 'sum' }),
  nll_loss: () => new nn.NLLLoss(),
  nll_loss_weighted_sum: () => new nn.NLLLoss({ weight: torch.ones([5]), reduction: 'sum' }),
  mse_loss: () => new nn.MSELoss(),
  mse_loss_none: () => new nn.MSELoss({ reduction: 'none' }),
};

/** Flattens a forward's result like forward.py's flat(): (out, (h, c)) -> [out, h, c]. */
function flat(v: unknown): Tensor[] {
  if (v instanceof Tensor) return [v];
  if (Array.isArray(v)) return v.flatMap(flat);
  throw new Error(`unexpected forward result ${String(v)}`);
}

function loadInto(m: nn.Module, sd: SD): void {
  expect(m.loadStateDict(sd)).toEqual({ missingKeys: [], unexpectedKeys: [] });
}

/** Python dicts -> JS objects (state dicts, OrderedDicts, stay Maps). */
function plain(v: unknown): unknown {
  if (v instanceof OrderedDict) return v;
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

let dir: string;
let oracle: Oracle;

beforeAll(() => {
  singleThreaded();
  dir = mkdtempSync(join(tmpdir(), 'lt-forward-'));
  const path = join(dir, 'forward.pt');
  runLtPy('forward.py', [path]);
  oracle = plain(load(path)) as Oracle;
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('layer forwards equal PyTorch 2.11', () => {
  it('the test table covers every case forward.py computed', () => {
    const pyModules = Object.entries(oracle.modules).filter(([, c]) => c.kind === 'module').map(([k]) => k);
    expect(Object.keys(MODULES).sort()).toEqual(pyModules.sort());
  });

  for (const name of Object.keys(MODULES)) {
    it(name, () => {
      const c = oracle.modules[name] as ModuleCase;
      const m = MODULES[name]!();
      loadInto(m, c.sd);
      m.train(c.train);
      c.calls.forEach((args, i) => {
        const out = flat(m.forward(...args));
        expect(out.length, `${name} call ${i}: outputs`).toBe(c.outs[i]!.length);
        out.forEach((o, j) => {
          expect(o.requiresGrad, `${name}: outputs of a forward over loaded weights record autograd`).toBe(
            [...m.parameters()].some((p) => p.requiresGrad) && o.isFloatingPoint(),
          );
          expectClose(o.detach(), c.outs[i]![j]!, `${name} call ${i} output ${j}`);
        });
      });
      // Running statistics (BatchNorm in training) and every other tensor after the calls.
      const after = m.stateDict();
      expect([...after.keys()]).toEqual([...c.after.keys()]);
      for (const [k, want] of c.after) expectClose(after.get(k)!.detach(), want, `${name} state after: ${k}`);
    });
  }

  it("BatchNorm's running stats are updated in the module's own (JS-visible) buffers", () => {
    const c = oracle.modules['bn1d_train'] as ModuleCase;
    const m = new nn.BatchNorm1d(4);
    loadInto(m, c.sd);
    const mean = m.running_mean!;
    const bytes = mean.typedArray() as Float32Array;
    const before = Float32Array.from(bytes);
    m.forward(c.calls[0]![0] as Tensor);
    expect(m.running_mean).toBe(mean);
    expect(Array.from(bytes)).not.toEqual(Array.from(before));
    expect(Number(m.num_batches_tracked!.item())).toBe(1);
  });

  it('eval(): Dropout is the identity, BatchNorm uses running stats and leaves them alone', () => {
    const x = (oracle.modules['dropout_eval'] as ModuleCase).calls[0]![0] as Tensor;
    const d = new nn.Dropout(0.9);
    d.eval();
    expect(d.forward(x).equal(x)).toBe(true);
    const c = oracle.modules['bn2d_eval'] as ModuleCase;
    const bn = new nn.BatchNorm2d(4);
    loadInto(bn, c.sd);
    bn.eval();
    bn.forward(c.calls[0]![0] as Tensor);
    for (const [k, want] of c.sd) expect(bn.stateDict().get(k)!.equal(want), k).toBe(true);
  });

  it('Dropout in training draws the same mask as PyTorch after the same manual_seed', () => {
    const { x, seed, outs } = oracle.dropout;
    torch.manualSeed(seed);
    expectClose(F.dropout(x, 0.4, true), outs[0]!, 'F.dropout');
    const d = new nn.Dropout(0.5);
    d.train();
    expectClose(d.forward(x), outs[1]!, 'nn.Dropout');
  });
});

describe('nn.functional equals PyTorch 2.11', () => {
  const fns: Record<string, (i: Tensor[]) => Tensor[]> = {
    'F.seed_forward': ([x, w1, b1, w2, b2, fw1, fb1, fw2, fb2, fw3, fb3]) => {
      let h = F.maxPool2d(F.relu(F.conv2d(x!, w1!, b1)), 2, { stride: 2 });
      h = F.maxPool2d(F.relu(F.conv2d(h, w2!, b2)), 2, { stride: 2 });
      h = h.view(-1, 16 * 5 * 5);
      h = F.relu(F.linear(h, fw1!, fb1));
      h = F.relu(F.linear(h, fw2!, fb2));
      return [F.linear(h, fw3!, fb3)];
    },
    'F.conv2d': ([x, w, b]) => [F.conv2d(x!, w!, b, { stride: 2, padding: 1 })],
    'F.max_pool2d': ([x]) => [F.maxPool2d(x!, 3, { stride: 2, padding: 1 })],
    'F.relu': ([x]) => [F.relu(x!)],
    'F.linear': ([x, w, b]) => [F.linear(x!, w!, b)],
    view_flatten: ([x]) => [x!.view(2, -1), x!.flatten(1), x!.flatten()],
    'F.softmax': ([x]) => [F.softmax(x!, 1), F.softmax(x!, 0), F.logSoftmax(x!, 1)],
    'F.cross_entropy': ([x, t]) => [F.crossEntropy(x!, t!), F.crossEntropy(x!, t!, { reduction: 'none', labelSmoothing: 0.2 })],
  };
  for (const [name, f] of Object.entries(fns)) {
    it(name, () => {
      const c = oracle.modules[name] as FunctionalCase;
      const got = f(c.inputs);
      expect(got.length).toBe(c.outs.length);
      got.forEach((g, i) => expectClose(g, c.outs[i]!, `${name} output ${i}`));
    });
  }

  it('view/flatten of a loaded tensor need no libtorch copy: same storage', () => {
    const x = (oracle.modules['view_flatten'] as FunctionalCase).inputs[0]!;
    expect(x.view(2, -1).untypedStorage()).toBe(x.untypedStorage());
    expect(x.flatten(1).untypedStorage()).toBe(x.untypedStorage());
  });
});

describe('autograd equals PyTorch 2.11', () => {
  function run(name: string): { model: nn.Module; loss: Tensor } {
    const c = oracle.autograd[name]!;
    if (name === 'seed') {
      const model = new TheModelClass();
      loadInto(model, c.sd);
      return { model, loss: F.crossEntropy(model.forward(c.x), c.y) };
    }
    const model = new nn.ModuleDict({
      emb: new nn.Embedding(12, 4, { paddingIdx: 0 }),
      lstm: new nn.LSTM(4, 5, { batchFirst: true, bidirectional: true }),
      head: new nn.Linear(10, 3),
    });
    loadInto(model, c.sd);
    const [emb, lstm, head] = [model.get('emb') as nn.Embedding, model.get('lstm') as nn.LSTM, model.get('head') as nn.Linear];
    const [h] = lstm.forward(emb.forward(c.x));
    const last = h.select(1, -1);
    return { model, loss: F.crossEntropy(head.forward(last), c.y) };
  }

  for (const name of ['seed', 'rnn']) {
    it(`${name}: cross_entropy(...).backward() gives PyTorch's .grad for every parameter`, () => {
      const c = oracle.autograd[name]!;
      const { model, loss } = run(name);
      expect(loss.requiresGrad).toBe(true);
      expect(loss.isLeaf).toBe(false);
      expectClose(loss.detach(), c.loss, `${name} loss`);
      for (const p of model.parameters()) expect(p.grad).toBeNull();
      loss.backward();
      const named = [...model.namedParameters()];
      expect(named.map(([k]) => k)).toEqual([...c.grads.keys()]);
      for (const [k, p] of named) {
        expect(p.isLeaf, k).toBe(true);
        expectClose(p.grad!, c.grads.get(k)!, `${name} grad ${k}`);
      }
      if (name === 'rnn') {
        // padding_idx 0: its row gets no gradient
        const g = ((model as nn.ModuleDict).get('emb') as nn.Embedding).weight.grad!;
        expect(Array.from(g.select(0, 0).toFloat64Array())).toEqual([0, 0, 0, 0]);
      }
    });
  }

  it('a second backward accumulates into .grad (the same Tensor object is updated)', () => {
    const { model, loss } = run('seed');
    loss.backward(null, { retainGraph: true });
    const p = [...model.parameters()][0]!;
    const once = p.grad!.clone();
    loss.backward();
    expectClose(p.grad!, once.mul(2), 'grad after two backwards');
  });

  it('noGrad: outputs do not require grad; the mode is restored afterwards, also after a throw', () => {
    const c = oracle.autograd['seed']!;
    const model = new TheModelClass();
    loadInto(model, c.sd);
    expect(torch.isGradEnabled()).toBe(true);
    const out = torch.noGrad(() => {
      expect(torch.isGradEnabled()).toBe(false);
      return model.forward(c.x);
    });
    expect(out.requiresGrad).toBe(false);
    expect(out.isLeaf).toBe(true);
    expect(torch.isGradEnabled()).toBe(true);
    expect(() => torch.noGrad(() => { throw new Error('boom'); })).toThrow('boom');
    expect(torch.isGradEnabled()).toBe(true);
    expect(model.forward(c.x).requiresGrad).toBe(true);
    expect(torch.noGrad(() => torch.enableGrad(() => model.forward(c.x))).requiresGrad).toBe(true);
  });

  it('zeroGrad(setToNone=true) drops .grad; zeroGrad(false) keeps zero-filled tensors', () => {
    const { model, loss } = run('seed');
    loss.backward();
    const opt = new torch.optim.SGD(model.parameters(), { lr: 0.1 });
    const params = [...model.parameters()];
    const grads = params.map((p) => p.grad!);
    opt.zeroGrad(false);
    params.forEach((p, i) => {
      expect(p.grad, 'the same gradient tensor').not.toBeNull();
      expect(p.grad!.untypedStorage()).toBe(grads[i]!.untypedStorage());
      expect(p.grad!.abs().sum().item()).toBe(0);
    });
    opt.zeroGrad();
    for (const p of params) expect(p.grad).toBeNull();
    // and the module's own zeroGrad
    const { model: m2, loss: l2 } = run('seed');
    l2.backward();
    m2.zeroGrad();
    for (const p of m2.parameters()) expect(p.grad).toBeNull();
  });

  it('loadStateDict and nn.init write parameters that are already on libtorch (under no_grad, like PyTorch)', () => {
    const c = oracle.autograd.seed!;
    const model = new TheModelClass();
    F.crossEntropy(model.forward(c.x), c.y).backward(); // every parameter is a libtorch leaf now
    loadInto(model, c.sd);
    for (const [k, want] of c.sd) expect(model.stateDict().get(k)!.detach().equal(want), k).toBe(true);
    model.zeroGrad();
    const loss = F.crossEntropy(model.forward(c.x), c.y);
    expectClose(loss.detach(), c.loss, 'loss after reloading');
    loss.backward();
    for (const [k, p] of model.namedParameters()) expectClose(p.grad!, c.grads.get(k)!, `grad ${k} after reloading`);
    nn.init.zeros_(model.fc3.bias!);
    expect(Array.from(model.fc3.bias!.detach().toFloat64Array())).toEqual(new Array(10).fill(0));
    nn.init.uniform_(model.fc3.weight, 2, 3);
    expect(Number(model.fc3.weight.min().item())).toBeGreaterThanOrEqual(2);
    expect(torch.isGradEnabled()).toBe(true);
  });

  it('requiresGrad=false parameters get no .grad', () => {
    const c = oracle.autograd['seed']!;
    const model = new TheModelClass();
    loadInto(model, c.sd);
    model.conv1.weight.requiresGrad = false;
    F.crossEntropy(model.forward(c.x), c.y).backward();
    expect(model.conv1.weight.grad).toBeNull();
    expectClose(model.fc3.bias!.grad!, c.grads.get('fc3.bias')!, 'fc3.bias grad');
  });
});
