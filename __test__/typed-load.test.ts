/**
 * The typed loaders and guards (torch.loadStateDict / loadStateDictAsync, isStateDict,
 * isTensor) on files real PyTorch wrote, and AbortSignal on loadAsync / saveAsync.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import { OrderedDict } from '../ts/values';
import { ensureFixtures, fixturePath, pythonPath, readSidecar } from './helpers/python';

const tmp = mkdtempSync(join(tmpdir(), 'torchsave-typed-'));

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

async function rejection(p: Promise<unknown>): Promise<torch.TorchsaveError & { settled?: Promise<void> }> {
  try {
    await p;
  } catch (e) {
    return e as torch.TorchsaveError & { settled?: Promise<void> };
  }
  throw new Error('expected a rejection');
}

/** Keys in order of a fixture's sidecar value (an OrderedDict or dict). */
function sidecarKeys(file: string, sub?: string): string[] {
  let v = readSidecar(file).value as unknown as { items: [{ v: string }, unknown][] };
  if (sub !== undefined) v = v.items.find(([k]) => k.v === sub)![1] as typeof v;
  return v.items.map(([k]) => k.v);
}

beforeAll(() => {
  ensureFixtures();
  // A plain dict state dict and a dict with a non-tensor value, written by torch 2.11.
  const py = `
import torch, sys
torch.save({'w': torch.arange(3.0), 'b': torch.zeros(2)}, sys.argv[1] + '/plain_dict.pt')
torch.save({'w': torch.arange(3.0), 'step': 5}, sys.argv[1] + '/mixed.pt')
torch.save([torch.ones(1)], sys.argv[1] + '/list.pt')
`;
  const r = spawnSync(pythonPath(), ['-c', py, tmp], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
});

describe('torch.loadStateDict', () => {
  it("returns the seed's state dict as OrderedDict<string, Tensor>, in PyTorch's key order", async () => {
    const f = fixturePath('seed_state_dict.pt');
    const sd = torch.loadStateDict(f);
    expect(sd).toBeInstanceOf(OrderedDict);
    expect([...sd.keys()]).toEqual(sidecarKeys('seed_state_dict.pt'));
    for (const t of sd.values()) expect(torch.isTensor(t)).toBe(true);
    const again = await torch.loadStateDictAsync(f);
    expect([...again.keys()]).toEqual([...sd.keys()]);
    expect(again.get('fc3.bias')!.tolist()).toEqual(sd.get('fc3.bias')!.tolist());
    // The seed's round trip: the model takes it as it is.
    const { TheModelClass } = await import('../ts/demo/seed');
    new TheModelClass().loadStateDict(sd);
  });

  it("takes a checkpoint's key with { key }, and refuses the checkpoint itself with E_UNSUPPORTED_CLASS", async () => {
    const f = fixturePath('seed_checkpoint.pt');
    const sd = torch.loadStateDict(f, { key: 'model_state_dict' });
    expect([...sd.keys()]).toEqual(sidecarKeys('seed_checkpoint.pt', 'model_state_dict'));
    expect(codeOf(() => torch.loadStateDict(f))).toBe('E_UNSUPPORTED_CLASS');
    expect(codeOf(() => torch.loadStateDict(f, { key: 'nope' }))).toBe('E_UNSUPPORTED_CLASS');
    expect(codeOf(() => torch.loadStateDict(f, { key: 'epoch' }))).toBe('E_UNSUPPORTED_CLASS');
    expect((await rejection(torch.loadStateDictAsync(f))).code).toBe('E_UNSUPPORTED_CLASS');
  });

  it('accepts a plain dict of tensors (as an OrderedDict, same order), refuses mixed values and lists', () => {
    const sd = torch.loadStateDict(join(tmp, 'plain_dict.pt'));
    expect(sd).toBeInstanceOf(OrderedDict);
    expect([...sd.keys()]).toEqual(['w', 'b']);
    expect(sd.get('w')!.tolist()).toEqual([0, 1, 2]);
    expect(codeOf(() => torch.loadStateDict(join(tmp, 'mixed.pt')))).toBe('E_UNSUPPORTED_CLASS');
    expect(codeOf(() => torch.loadStateDict(join(tmp, 'list.pt')))).toBe('E_UNSUPPORTED_CLASS');
    // The load's own errors come through unchanged (weights-only refuses a whole module).
    expect(codeOf(() => torch.loadStateDict(fixturePath('seed_whole_model.pt')))).toBe('E_UNSAFE_GLOBAL');
  });

  it('isStateDict / isTensor narrow loaded values', () => {
    const ck = torch.load(fixturePath('seed_checkpoint.pt'));
    expect(torch.isStateDict(ck)).toBe(false);
    expect(ck instanceof Map && torch.isStateDict(ck.get('model_state_dict'))).toBe(true);
    expect(torch.isStateDict(new Map())).toBe(true);
    expect(torch.isStateDict(new Map([[1, torch.zeros([1])]]))).toBe(false);
    expect(torch.isStateDict({ w: torch.zeros([1]) })).toBe(false);
    expect(torch.isTensor(new torch.Parameter(torch.zeros([1])))).toBe(true);
    expect(torch.isTensor({ dtype: 'float32' })).toBe(false);
  });
});

describe('AbortSignal on loadAsync / saveAsync', () => {
  it('aborted before the call: E_CANCELLED at once, nothing read or written', async () => {
    const ac = new AbortController();
    ac.abort();
    const e = await rejection(torch.loadAsync(fixturePath('seed_state_dict.pt'), { signal: ac.signal }));
    expect(e.code).toBe('E_CANCELLED');
    await e.settled;
    const out = join(tmp, 'never.pt');
    expect((await rejection(torch.saveAsync(torch.loadStateDict(fixturePath('seed_state_dict.pt')), out, { signal: ac.signal }))).code).toBe('E_CANCELLED');
    expect((await rejection(torch.saveAsync(1, null, { signal: ac.signal }))).code).toBe('E_CANCELLED');
    expect((await rejection(torch.loadStateDictAsync(fixturePath('seed_state_dict.pt'), { signal: ac.signal }))).code).toBe('E_CANCELLED');
    expect(existsSync(out)).toBe(false);
    // A bad signal is a usage error, not a silent no-op.
    expect((await rejection(torch.loadAsync('x.pt', { signal: {} as AbortSignal }))).code).toBe('E_INVALID_ARGUMENT');
  });

  it('aborted during the call: rejects with E_CANCELLED before the worker is done; a save still commits atomically', async () => {
    const big = new OrderedDict<string, torch.Tensor>();
    for (let i = 0; i < 8; i++) big.set(`w${i}`, torch.randn([1024, 1024]));
    const out = join(tmp, 'during.pt');
    const ac = new AbortController();
    let settledFirst = false;
    const p = torch.saveAsync(big, out, { signal: ac.signal, durable: false });
    ac.abort(new Error('user pressed stop'));
    const e = await rejection(p);
    expect(e.code).toBe('E_CANCELLED');
    void e.settled!.then(() => (settledFirst = true));
    expect(settledFirst).toBe(false);
    await e.settled;
    // The write was under way: it finished, whole, and nothing temporary is left.
    expect([...torch.loadStateDict(out).keys()]).toEqual([...big.keys()]);
    expect(readdirSync(tmp).filter((n) => n.startsWith('during') || n.includes('.tmp'))).toEqual(['during.pt']);

    const ac2 = new AbortController();
    const lp = torch.loadAsync(out, { signal: ac2.signal });
    ac2.abort();
    const le = await rejection(lp);
    expect(le.code).toBe('E_CANCELLED');
    await le.settled;
    // Not aborted: the same calls resolve as without a signal.
    const sd = await torch.loadStateDictAsync(out, { signal: new AbortController().signal });
    expect(sd.get('w7')!.equal(big.get('w7')!)).toBe(true);
  });
});
