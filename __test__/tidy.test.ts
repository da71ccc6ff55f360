/**
 * torch.tidy / torch.keep (ts/scope.ts): what a scope frees, what it must never free (module
 * state, optimizer state, gradients, returned values), nesting, errors, and the memory a
 * synchronous loop keeps.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as torch from '../ts';
import * as F from '../ts/nn/functional';
import * as optim from '../ts/optim';
import { Tensor } from '../ts/tensor';
import { REPO_ROOT } from './helpers/python';
import { TheModelClass, singleThreaded } from './libtorch-helpers';

singleThreaded();

function seededModel(): TheModelClass {
  torch.manualSeed(0);
  const m = new TheModelClass();
  for (const [, p] of m.namedParameters()) torch.noGrad(() => p.copy_(torch.randn(p.size()).mul(0.1)));
  return m;
}

describe('torch.tidy', () => {
  it('frees what the scope made and does not return; keeps what it returns, anywhere in the value', () => {
    const a = torch.randn([4, 4]);
    const made: Tensor[] = [];
    const out = torch.tidy(() => {
      const b = a.add(1);
      const c = b.mul(2);
      const d = c.sub(3);
      const e = d.relu();
      made.push(b, c, d, e);
      return { list: [c], map: new Map([['k', d]]), set: new Set([e]), n: 1 };
    });
    const [b, c, d, e] = made as [Tensor, Tensor, Tensor, Tensor];
    expect(b.isDisposed).toBe(true);
    expect([c, d, e].map((t) => t.isDisposed)).toEqual([false, false, false]);
    expect(a.isDisposed).toBe(false);
    // The kept values are intact and still computable.
    expect(out.list[0]!.tolist()).toEqual(a.add(1).mul(2).tolist());
    expect(out.map.get('k')!.tolist()).toEqual(a.add(1).mul(2).sub(3).tolist());
    expect(() => b.add(1)).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    expect(() => F.relu(b)).toThrow(/freed/);
    expect(() => b.tolist()).toThrow(/freed/);
    expect(() => b.untypedStorage()).toThrow(/freed/);
  });

  it('nests: an inner result belongs to the outer scope; keep() survives every scope', () => {
    const x = torch.ones([3]);
    let inner!: Tensor;
    let kept!: Tensor;
    let outerTemp!: Tensor;
    const r = torch.tidy(() => {
      outerTemp = x.mul(5);
      inner = torch.tidy(() => {
        kept = torch.keep(x.add(10));
        return x.add(1);
      });
      expect(inner.isDisposed).toBe(false);
      return inner.mul(2);
    });
    expect(inner.isDisposed).toBe(true);
    expect(outerTemp.isDisposed).toBe(true);
    expect(kept.isDisposed).toBe(false);
    expect(kept.tolist()).toEqual([11, 11, 11]);
    expect(r.tolist()).toEqual([4, 4, 4]);
  });

  it('frees what it made when fn throws, and refuses an async fn', () => {
    const x = torch.ones([2]);
    let t!: Tensor;
    expect(() =>
      torch.tidy(() => {
        t = x.add(1);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(t.isDisposed).toBe(true);
    let u!: Tensor;
    expect(() =>
      torch.tidy(async () => {
        u = x.add(1);
        return u;
      }),
    ).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    // The async body's tensors are left to the garbage collector, not freed under it.
    expect(u.isDisposed).toBe(false);
  });

  it('a training step inside tidy equals one outside: parameters, grads and optimizer state survive', () => {
    for (const make of [(ps: Tensor[]) => new optim.SGD(ps, { lr: 0.05, momentum: 0.9 }), (ps: Tensor[]) => new optim.Adam(ps, { lr: 1e-2 })]) {
      torch.manualSeed(1);
      const x = torch.randn([4, 3, 32, 32]);
      const y = torch.tensor([1, 2, 3, 4], { dtype: 'int64' });
      const runs = [false, true].map((scoped) => {
        const m = seededModel();
        const opt = make([...m.parameters()]);
        const losses: number[] = [];
        for (let i = 0; i < 3; i++) {
          const step = (): number => {
            opt.zeroGrad();
            const loss = F.crossEntropy(m.call(x), y);
            loss.backward();
            opt.step();
            return loss.item() as number;
          };
          losses.push(scoped ? torch.tidy(step) : step());
        }
        return { m, opt, losses };
      });
      const [plain, scoped] = runs as [(typeof runs)[0], (typeof runs)[0]];
      expect(scoped.losses).toEqual(plain.losses);
      const pp = new Map(plain.m.namedParameters());
      for (const [k, p] of scoped.m.namedParameters()) {
        expect(p.isDisposed, k).toBe(false);
        expect(p.grad!.isDisposed, `${k}.grad`).toBe(false);
        expect(p.tolist(), k).toEqual(pp.get(k)!.tolist());
      }
      for (const st of scoped.opt.state.values()) {
        for (const [k, v] of st as Map<string, unknown>) if (v instanceof Tensor) expect(v.isDisposed, k).toBe(false);
      }
      // One more step works on what survived.
      torch.tidy(() => {
        scoped.opt.zeroGrad();
        F.crossEntropy(scoped.m.call(x), y).backward();
        scoped.opt.step();
      });
    }
  });

  it('module state made inside a scope survives it: Module.to, registered buffers, tensor attributes', () => {
    const x = torch.randn([2, 3, 32, 32]);
    const want = torch.noGrad(() => seededModel().to('float64').call(x.to('float64')).tolist());
    const m = seededModel();
    torch.tidy(() => {
      m.to('float64');
      m.registerBuffer('scale', torch.ones([1]).mul(2));
      (m as unknown as { cached: Tensor }).cached = torch.zeros([2]).add(7);
    });
    expect(torch.noGrad(() => m.call(x.to('float64')).tolist())).toEqual(want);
    expect((m as unknown as { scale: Tensor }).scale.tolist()).toEqual([2]);
    expect((m as unknown as { cached: Tensor }).cached.tolist()).toEqual([7, 7]);
  });

  it('layers with several outputs and wrappers work in a scope: LSTM (output, (h, c)), DataParallel on the CPU, a dict output', () => {
    torch.manualSeed(3);
    const lstm = new torch.nn.LSTM(3, 4, { numLayers: 2 });
    const x = torch.randn([5, 2, 3]);
    const want = torch.noGrad(() => lstm.call(x));
    const got = torch.noGrad(() => torch.tidy(() => lstm.call(x)));
    expect(got[0].equal(want[0])).toBe(true);
    expect(got[1][0].equal(want[1][0])).toBe(true);
    expect(got[1][1].equal(want[1][1])).toBe(true);
    // Feeding the kept state back in (the usual sequence loop) works.
    const next = torch.noGrad(() => torch.tidy(() => lstm.call(x, got[1])));
    expect(next[0].size()).toEqual([5, 2, 4]);

    const m = seededModel();
    const dp = new torch.nn.DataParallel(m);
    const xb = torch.randn([3, 3, 32, 32]);
    const direct = torch.noGrad(() => m.call(xb));
    const out = torch.tidy(() => {
      const y = dp.call(xb);
      return { logits: y, top: y.argmax(1) };
    });
    expect(out.logits.equal(direct)).toBe(true);
    expect(out.top.tolist()).toEqual(direct.argmax(1).tolist());
    expect(m.fc1.weight.isDisposed).toBe(false);
  });

  it('a synchronous loop of large results stays flat in memory inside tidy, and grows without it', () => {
    // A child Node on dist/ with glibc's mmap threshold fixed at 128 KiB: every 1 MiB result is
    // its own mapping, returned to the system the moment it is freed, so RSS shows exactly
    // what is still allocated (glibc's adaptive threshold would otherwise serve big blocks from
    // a heap whose reuse depends on allocation order).
    const script = `
      const torch = require(${JSON.stringify(join(REPO_ROOT, 'dist', 'index.js'))});
      torch.setNumThreads(1);
      const x = torch.randn([256, 1024]);
      const step = () => x.mul(2).add(1).relu().sum().item();
      const growth = (scoped) => {
        for (let i = 0; i < 3; i++) torch.tidy(step);
        const before = process.memoryUsage().rss; let peak = before;
        for (let i = 0; i < 150; i++) { scoped ? torch.tidy(step) : step(); peak = Math.max(peak, process.memoryUsage().rss); }
        return (peak - before) / 2 ** 20;
      };
      const tidy = growth(true);
      console.log(JSON.stringify({ tidy, plain: growth(false) }));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' }, timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tidy: number; plain: number };
    // 150 iterations x 3 results x 1 MiB = 450 MiB if nothing were freed until the GC.
    expect(m.tidy).toBeLessThan(32);
    expect(m.plain).toBeGreaterThan(64);
  });
});
