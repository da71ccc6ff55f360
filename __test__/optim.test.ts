import { describe, expect, it } from 'vitest';
import * as optim from '../ts/optim';
import { Tensor, tensor, zeros } from '../ts/tensor';
import { PyFloat } from '../ts/values';
import { HAVE_PYTHON, TheModelClass, enc, runPy } from './nn-helpers';
import { pyRepr } from '../ts/nn/pyrepr';

function configs(): Record<string, () => optim.Optimizer> {
  const m = new TheModelClass();
  const conv = [...m.conv1.parameters(), ...m.conv2.parameters()];
  const fc = [...m.fc1.parameters(), ...m.fc2.parameters(), ...m.fc3.parameters()];
  return {
    seed_sgd: () => new optim.SGD(m.parameters(), { lr: 0.001, momentum: 0.9 }),
    sgd_default: () => new optim.SGD(m.parameters()),
    sgd_groups: () => new optim.SGD([{ params: conv }, { params: fc, lr: 0.1 }], { lr: 0.01, momentum: 0.5, nesterov: true }),
    sgd_named: () => new optim.SGD(m.namedParameters(), { lr: 0.1 }),
    adam: () => new optim.Adam(m.parameters()),
    adamw: () => new optim.AdamW(m.parameters(), { lr: 1e-4, betas: [0.8, 0.9] }),
    adam_groups: () => new optim.Adam([{ params: fc, weightDecay: 0.5, amsgrad: true }, { params: conv }], { lr: 2e-3 }),
    rmsprop: () => new optim.RMSprop(m.parameters(), { momentum: 0.1, centered: true }),
    adagrad: () => new optim.Adagrad(m.parameters(), { initialAccumulatorValue: 0.1 }),
  };
}

describe('optimizer state_dict layout matches torch 2.11', () => {
  const py = HAVE_PYTHON ? runPy<Record<string, unknown>>('optim_describe.py') : {};
  for (const [name, make] of Object.entries(configs())) {
    it(name, () => {
      expect(enc(make().stateDict())).toEqual(py[name]);
    });
  }
});

describe('optimizer state handling', () => {
  it("prints the seed's param_groups line (2.11 keys, int indices)", () => {
    const sd = configs().seed_sgd!().stateDict();
    expect(pyRepr(sd.get('state'))).toBe('{}');
    expect(pyRepr(sd.get('param_groups'))).toBe(
      "[{'lr': 0.001, 'momentum': 0.9, 'dampening': 0, 'weight_decay': 0, 'nesterov': False, 'maximize': False, 'foreach': None, 'differentiable': False, 'fused': None, 'params': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}]",
    );
  });

  it('loads a torch 1.x SGD state dict (missing keys filled like __setstate__, momentum_buffer None kept)', () => {
    const p = [zeros([2, 2]), zeros([2])];
    const o = new optim.SGD(p, { lr: 0.1, momentum: 0.9 });
    const old = new Map<string, unknown>([
      ['state', new Map([[7, new Map([['momentum_buffer', null]])]])],
      ['param_groups', [new Map<string, unknown>([['lr', 0.5], ['momentum', 0.9], ['dampening', 0], ['weight_decay', 0], ['nesterov', false], ['params', [7, 8]]])]],
    ]);
    o.loadStateDict(old);
    const g = o.paramGroups[0]!;
    expect(Object.keys(g)).toEqual(['lr', 'momentum', 'dampening', 'weight_decay', 'nesterov', 'params', 'maximize', 'foreach', 'differentiable', 'fused']);
    expect(g.lr).toBe(0.5);
    expect(g.fused).toBe(false); // SGD.__setstate__ uses False, not None
    expect(g.params[0]).toBe(p[0]);
    expect(o.state.get(p[0]!)!.get('momentum_buffer')).toBeNull();
    expect(pyRepr(o.stateDict().get('state'))).toBe("{0: {'momentum_buffer': None}}");
  });

  it('loads a torch 1.11 Adam state dict: int step becomes a 0-d float32 tensor, state cast to the param dtype', () => {
    const p = [zeros([3], { dtype: 'float64' })];
    const o = new optim.Adam(p);
    o.loadStateDict({
      state: new Map([[0, new Map<string, unknown>([['step', 5], ['exp_avg', tensor([1, 2, 3], { dtype: 'float32' })], ['exp_avg_sq', tensor([1, 1, 1], { dtype: 'float32' })]])]]),
      param_groups: [new Map<string, unknown>([['lr', 0.001], ['betas', [0.9, 0.999]], ['eps', 1e-8], ['weight_decay', 0], ['amsgrad', false], ['params', [0]]])],
    });
    const st = o.state.get(p[0]!)!;
    const step = st.get('step') as Tensor;
    expect(step).toBeInstanceOf(Tensor);
    expect(step.dtype).toBe('float32');
    expect(step.dim()).toBe(0);
    expect(step.item()).toBe(5);
    expect((st.get('exp_avg') as Tensor).dtype).toBe('float64');
    expect(Object.keys(o.paramGroups[0]!)).toEqual(['lr', 'betas', 'eps', 'weight_decay', 'amsgrad', 'params', 'maximize', 'foreach', 'capturable', 'differentiable', 'decoupled_weight_decay', 'fused']);
  });

  it('rejects group count and size mismatches with PyTorch text and E_STATE_DICT_MISMATCH', () => {
    const p = [zeros([2]), zeros([2])];
    const o = new optim.SGD(p);
    const sd = o.stateDict();
    const o2 = new optim.SGD([{ params: [p[0]!] }, { params: [p[1]!] }]);
    expect(() => o2.loadStateDict(sd)).toThrow(expect.objectContaining({ code: 'E_STATE_DICT_MISMATCH', message: 'loaded state dict has a different number of parameter groups' }));
    const o3 = new optim.SGD([p[0]!]);
    expect(() => o3.loadStateDict(sd)).toThrow(expect.objectContaining({ code: 'E_STATE_DICT_MISMATCH' }));
  });

  it('round-trips its own state dict positionally onto new parameters', () => {
    const p = [zeros([2]), zeros([3])];
    const o = new optim.Adagrad(p, { lr: new PyFloat(1) as unknown as number });
    const q = [zeros([2]), zeros([3])];
    const o2 = new optim.Adagrad(q);
    o2.loadStateDict(o.stateDict());
    expect(pyRepr(o2.stateDict().get('param_groups'))).toBe(pyRepr(o.stateDict().get('param_groups')));
    expect(pyRepr(o2.paramGroups[0]!.lr)).toBe('1.0');
    expect(o2.state.get(q[1]!)!.get('sum')).toBeInstanceOf(Tensor);
  });

  it('validates like PyTorch; a step skips parameters without gradients', () => {
    const p = [zeros([2])];
    expect(() => new optim.SGD(p, { lr: -1 })).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT', message: 'Invalid learning rate: -1' }));
    expect(() => new optim.SGD(p, { nesterov: true })).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    expect(() => new optim.SGD([])).toThrow(expect.objectContaining({ message: 'optimizer got an empty parameter list' }));
    expect(() => new optim.SGD([{ params: p }, { params: p }])).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    const o = new optim.SGD(p);
    p[0]!.grad = zeros([2]);
    o.zeroGrad();
    expect(p[0]!.grad).toBeNull();
    const before = p[0]!.clone();
    expect(o.step()).toBeUndefined();
    expect(p[0]!.equal(before)).toBe(true);
    expect(o.state.size).toBe(0);
  });
});
