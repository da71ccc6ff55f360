// torch.jit.load as data, against real torch 2.11: every TorchScript fixture written by
// __test__/python/make_jit_fixtures.py is compared with `torch.jit.load(p)` through the oracle
// (one batched python call): state_dict key by key (dtype, shape, values), parameters /
// buffers / children / training per module, attributes, _extra_files; plus the seed model's
// loadStateDict, loadAsync, the coded refusals, inspect and forward without the addon.
process.env.TORCHSAVE_LIBTORCH = '0';

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts';
import { TheModelClass } from '../ts/demo/seed';
import { native } from '../ts/raw/native';
import { describeLoaded } from './helpers/describe';
import { ensureFixtures, fixturePath, runOracleBatch, type OracleNode } from './helpers/python';

interface JitModule {
  name: string;
  qualname: string;
  training: boolean;
  parameters: string[];
  buffers: string[];
  children: string[];
}
interface JitDescribe {
  state_dict: [string, OracleNode][];
  modules: JitModule[];
  attributes: [string, OracleNode][];
  extra_files: Record<string, string>;
  code: string;
}
interface JitIndex {
  files: Record<string, { description: string; attrs: string[] }>;
}

let dir: string;
let index: JitIndex;
const oracle = new Map<string, JitDescribe>();

beforeAll(() => {
  ensureFixtures();
  dir = join(fixturePath('x'), '..', 'jit');
  index = JSON.parse(readFileSync(join(dir, 'jit.json'), 'utf8')) as JitIndex;
  const names = Object.keys(index.files);
  const out = runOracleBatch(names.map((n) => ['jit', join(dir, n), '--attrs', index.files[n]!.attrs.join(',')])) as JitDescribe[];
  names.forEach((n, i) => oracle.set(n, out[i]!));
}, 600_000);

function tensorFacts(n: OracleNode): unknown {
  return { dtype: n.dtype, shape: n.shape, sha256: n.sha256 };
}

describe('torch.jit.load', () => {
  it('equals torch.jit.load(p): state_dict, module tree, attributes, extra files', () => {
    expect(oracle.size).toBeGreaterThanOrEqual(6);
    for (const [file, want] of oracle) {
      const m = torch.jit.load(join(dir, file));
      const sd = m.stateDict();
      expect([...sd.keys()], file).toEqual(want.state_dict.map(([k]) => k));
      for (const [k, w] of want.state_dict) {
        const got = describeLoaded(sd.get(k));
        expect(tensorFacts(got), `${file} ${k}`).toEqual(tensorFacts(w));
        expect(got.requires_grad, `${file} ${k}`).toBe(false);
      }
      const mods = m.namedModules();
      expect(mods.map(([n]) => n), file).toEqual(want.modules.map((x) => x.name));
      mods.forEach(([name, sub], i) => {
        const w = want.modules[i]!;
        expect(sub.qualifiedName, `${file} ${name}`).toBe(w.qualname);
        expect(sub.training, `${file} ${name}`).toBe(w.training);
        expect(sub.namedParameters(false).map(([n]) => n), `${file} ${name}`).toEqual(w.parameters);
        expect(sub.namedBuffers(false).map(([n]) => n), `${file} ${name}`).toEqual(w.buffers);
        expect(sub.namedChildren().map(([n]) => n), `${file} ${name}`).toEqual(w.children);
      });
      const allParams = want.modules.flatMap((x) => x.parameters.map((p) => (x.name ? `${x.name}.${p}` : p)));
      expect(m.namedParameters().map(([n]) => n), file).toEqual(allParams);
      for (const [a, w] of want.attributes) {
        const got = describeLoaded(m.getattr(a));
        if (w.t === 'Tensor') expect(tensorFacts(got), `${file} ${a}`).toEqual(tensorFacts(w));
        else expect(got, `${file} ${a}`).toEqual(w);
      }
      expect(Object.fromEntries([...m.extraFiles].map(([k, v]) => [k, Buffer.from(v).toString('hex')])), file).toEqual(want.extra_files);
      expect(m.code, file).toMatch(/^def forward\(/);
    }
  });

  it('loads the traced seed model into TheModelClass (loadStateDict)', () => {
    const m = torch.jit.load(join(dir, 'traced_seed.pt'));
    const model = new TheModelClass();
    const r = model.loadStateDict(m.stateDict());
    expect(r.missingKeys).toEqual([]);
    expect(r.unexpectedKeys).toEqual([]);
    const want = oracle.get('traced_seed.pt')!.state_dict;
    const sd = model.stateDict();
    expect([...sd.keys()]).toEqual(want.map(([k]) => k));
    for (const [k, w] of want) expect(tensorFacts(describeLoaded(sd.get(k))), k).toEqual(tensorFacts(w));
    expect(m.children().map((c) => c.originalName)).toEqual(['Conv2d', 'MaxPool2d', 'Conv2d', 'Linear', 'Linear', 'Linear']);
  });

  it('loadAsync and bytes give the same module', async () => {
    const p = join(dir, 'batchnorm.pt');
    const a = await torch.jit.loadAsync(p);
    const b = torch.jit.load(readFileSync(p));
    expect([...a.stateDict().keys()]).toEqual([...b.stateDict().keys()]);
    expect(a.training).toBe(false);
    expect(a.getattr('bn')).toBeInstanceOf(torch.jit.ScriptModule);
  });

  it('refuses what is not TorchScript, and os.system under weightsOnly, with codes', () => {
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return (e as { code?: string }).code;
      }
      return 'no error';
    };
    expect(code(() => torch.jit.load(fixturePath('seed_state_dict.pt')))).toBe('E_UNKNOWN_FORMAT');
    expect(code(() => torch.jit.load(join(dir, 'attack_os_system.pt')))).toBe('E_UNSAFE_GLOBAL');
    const inert = torch.jit.load(join(dir, 'attack_os_system.pt'), { weightsOnly: false });
    expect(inert.getattr('evil')).toBeInstanceOf(torch.PyObject);
  });

  it('forward needs the libtorch addon', () => {
    const m = torch.jit.load(join(dir, 'scripted_control.pt'));
    expect(() => m.forward(torch.ones([1, 4]))).toThrow(expect.objectContaining({ code: 'E_DEVICE_UNAVAILABLE' }));
    expect(m.stateDict().size).toBe(5);
  });

  it('inspect lists a TorchScript archive\'s tensors (format "torchscript")', () => {
    const doc = JSON.parse(native().inspect(join(dir, 'batchnorm.pt'), { sha256: true })) as {
      format: string;
      tensors: { path: string[]; sha256: string }[];
    };
    expect(doc.format).toBe('torchscript');
    const want = oracle.get('batchnorm.pt')!.state_dict;
    expect(doc.tensors.map((t) => t.path.join('.'))).toEqual(want.map(([k]) => k));
    expect(doc.tensors.map((t) => t.sha256)).toEqual(want.map(([, w]) => w.sha256));
  });
});
