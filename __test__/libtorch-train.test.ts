/**
 * Resume training across PyTorch 2.11 and Node, both ways, for SGD (momentum, dampening,
 * nesterov, weight decay, maximize), Adam/AdamW (amsgrad, weight decay), RMSprop (centered,
 * momentum) and Adagrad (lr_decay, initial accumulator): N steps on one side, the seed's
 * general checkpoint {epoch, model_state_dict, optimizer_state_dict, loss}, M more steps on
 * the other side = N+M steps on one side (1e-6). The oracle is
 * __test__/python/libtorch/train.py (its header says what each file holds).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts';
import * as F from '../ts/nn/functional';
import * as optim from '../ts/optim';
import { load, save } from '../ts/serialization';
import { Tensor } from '../ts/tensor';
import { PyTuple } from '../ts/values';
import { TheModelClass, expectClose, runLtPy, singleThreaded } from './libtorch-helpers';

type SD = Map<string, Tensor>;
interface Config {
  optim: 'SGD' | 'Adam' | 'AdamW' | 'RMSprop' | 'Adagrad';
  kwargs: Record<string, unknown>;
}
interface Data {
  x: Tensor;
  y: Tensor;
  n: number;
  m: number;
}

let dir: string;
let configs: Record<string, Config>;
let data: Data;

function makeOptimizer(cfg: Config, model: TheModelClass): optim.Optimizer {
  // PyTorch's own option names; betas as a tuple, as Python passes it.
  const kw = { ...cfg.kwargs };
  if (Array.isArray(kw.betas)) kw.betas = PyTuple.fromItems(kw.betas as number[]);
  return new optim[cfg.optim](model.parameters(), kw);
}

/** The seed's training loop for steps [start, stop); returns the last loss. */
function train(model: TheModelClass, opt: optim.Optimizer, start: number, stop: number): number {
  let loss = NaN;
  for (let i = start; i < stop; i++) {
    opt.zeroGrad();
    const l = F.crossEntropy(model.forward(data.x.select(0, i)), data.y.select(0, i));
    l.backward();
    opt.step();
    loss = Number(l.item());
  }
  return loss;
}

function optimizerStateTensors(sd: Map<string, unknown>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [pid, st] of sd.get('state') as Map<unknown, Map<string, unknown>>) {
    for (const [k, v] of st) if (v instanceof Tensor) out.set(`${String(pid)}.${k}`, v);
  }
  return out;
}

beforeAll(() => {
  singleThreaded();
  dir = mkdtempSync(join(tmpdir(), 'lt-train-'));
  runLtPy('train.py', ['py', dir]);
  configs = JSON.parse(readFileSync(join(dir, 'configs.json'), 'utf8')) as Record<string, Config>;
  const d = load<Map<string, unknown>>(join(dir, 'data.pt'));
  data = { x: d.get('x') as Tensor, y: d.get('y') as Tensor, n: Number(d.get('n')), m: Number(d.get('m')) };
}, 180_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Python N steps -> checkpoint -> Node M steps = Python N+M steps', () => {
  it('covers all five optimizers', () => {
    expect(new Set(Object.values(configs).map((c) => c.optim))).toEqual(new Set(['SGD', 'Adam', 'AdamW', 'RMSprop', 'Adagrad']));
  });

  const names = ['sgd', 'sgd_momentum_wd', 'sgd_nesterov', 'sgd_maximize', 'adam', 'adam_amsgrad_wd', 'adamw', 'adamw_amsgrad', 'rmsprop', 'rmsprop_centered_momentum_wd', 'adagrad', 'adagrad_lr_decay_wd'];
  it('the test list is train.py\'s config list', () => {
    expect(Object.keys(configs)).toEqual(names);
  });

  for (const name of names) {
    it(name, () => {
      const cfg = configs[name]!;
      // The seed's "load the general checkpoint" snippet.
      const ck = load<Map<string, unknown>>(join(dir, `py_ck_${name}.pt`));
      const model = new TheModelClass();
      const opt = makeOptimizer(cfg, model);
      expect(model.loadStateDict(ck.get('model_state_dict') as SD)).toEqual({ missingKeys: [], unexpectedKeys: [] });
      opt.loadStateDict(ck.get('optimizer_state_dict') as Map<string, unknown>);
      expect(Number(ck.get('epoch'))).toBe(data.n);
      expect(typeof ck.get('loss')).toBe('number');
      model.train();
      train(model, opt, data.n, data.n + data.m);

      const want = load<Map<string, unknown>>(join(dir, `py_final_${name}.pt`));
      const wantSd = want.get('model_state_dict') as SD;
      const got = model.stateDict();
      expect([...got.keys()]).toEqual([...wantSd.keys()]);
      for (const [k, w] of wantSd) expectClose(got.get(k)!.detach(), w, `${name} ${k}`);
      // the optimizer's state too: momentum buffers, exp_avg(_sq), sum, step...
      const gotSt = optimizerStateTensors(opt.stateDict());
      const wantSt = optimizerStateTensors(want.get('optimizer_state_dict') as Map<string, unknown>);
      expect([...gotSt.keys()].sort()).toEqual([...wantSt.keys()].sort());
      for (const [k, w] of wantSt) expectClose(gotSt.get(k)!, w, `${name} state ${k}`);
    });
  }
});

describe('Node N steps -> checkpoint -> Python M steps = Node N+M steps', () => {
  interface PyResult {
    keys: string[];
    epoch: [string, number];
    loss_type: string;
    missing: string[];
    unexpected: string[];
    layout_node: unknown;
    layout_torch: unknown;
    param_diff: number;
    state_diff: number;
  }
  let results: Record<string, PyResult>;

  beforeAll(() => {
    for (const [name, cfg] of Object.entries(configs)) {
      torch.manualSeed(7);
      const model = new TheModelClass();
      const opt = makeOptimizer(cfg, model);
      const loss = train(model, opt, 0, data.n);
      // The seed's "save a general checkpoint" snippet.
      save(
        new Map<string, unknown>([
          ['epoch', data.n],
          ['model_state_dict', model.stateDict()],
          ['optimizer_state_dict', opt.stateDict()],
          ['loss', loss],
        ]),
        join(dir, `node_ck_${name}.pt`),
      );
      train(model, opt, data.n, data.n + data.m);
      save(
        new Map<string, unknown>([
          ['model_state_dict', model.stateDict()],
          ['optimizer_state_dict', opt.stateDict()],
        ]),
        join(dir, `node_final_${name}.pt`),
      );
    }
    results = JSON.parse(runLtPy('train.py', ['node', dir])) as Record<string, PyResult>;
  }, 180_000);

  it('Python reads every Node checkpoint with weights_only=True as the seed\'s general checkpoint', () => {
    for (const [name, r] of Object.entries(results)) {
      expect(r.keys, name).toEqual(['epoch', 'loss', 'model_state_dict', 'optimizer_state_dict']);
      expect(r.epoch, name).toEqual(['int', data.n]);
      expect(r.loss_type, name).toBe('float');
      expect(r.missing, name).toEqual([]);
      expect(r.unexpected, name).toEqual([]);
    }
  });

  it("Node's optimizer state after N steps has PyTorch's exact layout (group options, state keys, dtypes, shapes)", () => {
    for (const [name, r] of Object.entries(results)) expect(r.layout_node, name).toEqual(r.layout_torch);
  });

  it('resumed in Python for M steps, parameters and optimizer state equal Node\'s N+M (1e-6)', () => {
    for (const [name, r] of Object.entries(results)) {
      expect(r.param_diff, `${name} parameters`).toBeLessThanOrEqual(1e-6);
      expect(r.state_diff, `${name} optimizer state`).toBeLessThanOrEqual(1e-6);
    }
  });
});
