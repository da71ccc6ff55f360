// Without the libtorch addon (TORCHSAVE_LIBTORCH=0 before anything loads it: vitest runs
// each file in its own worker), torchsave still loads and saves, and every compute call fails
// with one clear E_DEVICE_UNAVAILABLE that says how to get the addon.
process.env.TORCHSAVE_LIBTORCH = '0';

import { describe, expect, it } from 'vitest';
import * as torch from '../ts';
import { fixturePath } from './helpers/python';

function codeAndMessage(f: () => unknown): { code?: string; message: string } {
  try {
    f();
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message };
  }
  throw new Error('expected a throw');
}

describe('without the libtorch addon', () => {
  it('reports it unavailable, and why', () => {
    const a = torch.backends.libtorch.isAvailable();
    expect(a.available).toBe(false);
    expect(a.reason).toMatch(/TORCHSAVE_LIBTORCH=0/);
    expect(torch.cuda.isAvailable()).toBe(false);
    expect(torch.cuda.deviceCount()).toBe(0);
  });

  it('still loads and saves, and keeps CPU-only tensor helpers', () => {
    const sd = torch.load<Map<string, torch.Tensor>>(fixturePath('seed_state_dict.pt'));
    const w = sd.get('conv1.weight')!;
    expect(w.shape).toEqual([6, 3, 5, 5]);
    expect(w.to('float64').dtype).toBe('float64');
    expect(w.view(6, -1).shape).toEqual([6, 75]);
  });

  it('fails every compute call with E_DEVICE_UNAVAILABLE and the way to enable it', () => {
    const x = torch.ones([2, 3]);
    const lin = new torch.nn.Linear(3, 2);
    for (const f of [
      () => x.add(1),
      () => x.relu(),
      () => lin.forward(x),
      () => torch.nn.functional.crossEntropy(x, torch.tensor([0, 1])),
      () => x.to('cuda:0'),
      () => torch.zeros([2], { device: 'cuda' }),
      () => torch.load(fixturePath('seed_state_dict.pt'), { mapLocation: 'cuda:0' }),
    ]) {
      const r = codeAndMessage(f);
      expect(r.code).toBe('E_DEVICE_UNAVAILABLE');
      expect(r.message).toMatch(/libtorch/);
    }
    lin.weight.grad = torch.zeros([2, 3]);
    const opt = new torch.optim.SGD(lin.parameters(), { lr: 0.1 });
    const r = codeAndMessage(() => opt.step());
    expect(r.code).toBe('E_DEVICE_UNAVAILABLE');
    expect(r.message).toMatch(/build-libtorch\.sh/);
  });
});
