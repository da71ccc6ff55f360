import { describe, expect, it } from 'vitest';
import * as nn from '../ts/nn';
import { Parameter, Tensor, ones, tensor, zeros } from '../ts/tensor';
import { OrderedDict, PyObject, pyReduce } from '../ts/values';
import { BNNet, TheModelClass, build, runPy } from './nn-helpers';

const SEED_KEYS = [
  ['conv1.weight', '[6, 3, 5, 5]'],
  ['conv1.bias', '[6]'],
  ['conv2.weight', '[16, 6, 5, 5]'],
  ['conv2.bias', '[16]'],
  ['fc1.weight', '[120, 400]'],
  ['fc1.bias', '[120]'],
  ['fc2.weight', '[84, 120]'],
  ['fc2.bias', '[84]'],
  ['fc3.weight', '[10, 84]'],
  ['fc3.bias', '[10]'],
];

describe('Module registration and state dicts', () => {
  it('class fields register in declaration order (the seed model)', () => {
    const m = new TheModelClass();
    const sd = m.stateDict();
    expect([...sd].map(([k, t]) => [k, `[${[...t.size()].join(', ')}]`])).toEqual(SEED_KEYS);
    expect([...sd._metadata!.keys()]).toEqual(['', 'conv1', 'pool', 'conv2', 'fc1', 'fc2', 'fc3']);
    expect(m.namedChildren().map(([k]) => k)).toEqual(['conv1', 'pool', 'conv2', 'fc1', 'fc2', 'fc3']);
    expect(m.parameters()).toHaveLength(10);
    expect(Object.keys(m)).toEqual([]); // registered members live in _modules, like Python
  });

  it('state dict tensors are detached views sharing storage; keepVars returns the Parameters', () => {
    const m = new TheModelClass();
    const w = m.stateDict().get('fc3.weight')!;
    expect(w).not.toBeInstanceOf(Parameter);
    expect(w.requiresGrad).toBe(false);
    expect(w.untypedStorage()).toBe(m.fc3.weight.untypedStorage());
    expect(m.stateDict({ keepVars: true }).get('fc3.weight')).toBe(m.fc3.weight);
    expect([...m.stateDict({ prefix: 'net.' }).keys()][0]).toBe('net.conv1.weight');
  });

  it('assignment re-registers: replacing a submodule keeps its slot, null keeps the key, plain values stay attributes', () => {
    const m = new TheModelClass();
    m.conv2 = new nn.Conv2d(6, 16, 3);
    expect(m.namedChildren().map(([k]) => k)).toEqual(['conv1', 'pool', 'conv2', 'fc1', 'fc2', 'fc3']);
    (m as unknown as { fc3: null }).fc3 = null;
    expect(m.namedChildren().map(([k]) => k)).not.toContain('fc3');
    expect([...m.stateDict().keys()]).not.toContain('fc3.weight');
    (m as unknown as { hidden: number }).hidden = 5;
    expect(Object.keys(m)).toEqual(['hidden']);
    expect(() => {
      (m.fc1 as unknown as { weight: unknown }).weight = zeros([2]);
    }).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });

  it('buffers: persistent ones are saved, non-persistent ones are not', () => {
    const m = new BNNet();
    const keys = [...m.stateDict().keys()];
    expect(keys).toContain('scale');
    expect(keys).not.toContain('cache');
    expect(m.namedBuffers().map(([k]) => k)).toContain('cache');
    expect(m.stateDict().get('features.1.num_batches_tracked')!.dtype).toBe('int64');
    expect(m.stateDict()._metadata!.get('features.1')!.get('version')).toBe(2);
  });

  it('train/eval propagate; zeroGrad sets grads to null; a module without forward says so', () => {
    const m = new BNNet();
    m.eval();
    expect(m.modules().every((x) => !x.training)).toBe(true);
    m.train();
    expect(m.features.training).toBe(true);
    m.head.weight.grad = zeros([4, 8]);
    m.zeroGrad();
    expect(m.head.weight.grad).toBeNull();
    expect(() => m.call(zeros([1, 3, 4, 4]))).toThrow(expect.objectContaining({ code: 'E_NOT_IMPLEMENTED' }));
    m.requiresGrad_(false);
    expect(m.parameters().every((p) => !p.requiresGrad)).toBe(true);
  });

  it('to(dtype) casts floating parameters and buffers only', () => {
    const m = new BNNet().to('float64');
    expect(m.head.weight.dtype).toBe('float64');
    expect(m.head.weight).toBeInstanceOf(Parameter);
    expect(m.stateDict().get('bn1.num_batches_tracked')!.dtype).toBe('int64');
    expect(() => m.to('cuda')).toThrow(expect.objectContaining({ code: 'E_DEVICE_UNAVAILABLE' }));
  });

  it('default init has the documented bounds (U(±1/sqrt(fan_in)))', () => {
    const l = new nn.Linear(400, 120);
    const b = 1 / Math.sqrt(400);
    const w = l.weight.toFloat64Array();
    expect(Math.max(...w)).toBeLessThanOrEqual(b);
    expect(Math.min(...w)).toBeGreaterThanOrEqual(-b);
    expect(Math.max(...w)).toBeGreaterThan(b * 0.9);
    const e = new nn.Embedding(10, 3, { paddingIdx: 2 });
    expect((e.weight.toArray() as number[][])[2]).toEqual([0, 0, 0]);
  });

  it('loadStateDict copies into the existing parameters (same storage) and round-trips', () => {
    const a = new TheModelClass();
    const b = new TheModelClass();
    const storage = b.fc1.weight.untypedStorage();
    expect(b.loadStateDict(a.stateDict())).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(b.fc1.weight.untypedStorage()).toBe(storage);
    expect(b.fc1.weight.equal(a.fc1.weight)).toBe(true);
    const c = new TheModelClass();
    c.loadStateDict(a.stateDict(), { assign: true });
    expect(c.fc1.weight).toBeInstanceOf(Parameter);
    expect(c.fc1.weight.untypedStorage()).toBe(a.fc1.weight.untypedStorage());
    expect(c.fc1.weight.requiresGrad).toBe(true);
  });

  it('BatchNorm migration: a state dict without num_batches_tracked and without metadata loads strictly', () => {
    const src = new BNNet();
    src.features.at(1).registerBuffer('num_batches_tracked', tensor(7, { dtype: 'int64' }));
    const sd = new Map([...src.stateDict()].filter(([k]) => !k.endsWith('num_batches_tracked')));
    const dst = new BNNet();
    expect(dst.loadStateDict(sd)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const withMd = src.stateDict();
    withMd.delete('bn1.num_batches_tracked');
    expect(() => new BNNet().loadStateDict(withMd)).toThrow(expect.objectContaining({ code: 'E_STATE_DICT_MISMATCH', missingKeys: ['bn1.num_batches_tracked'] }));
  });

  it('whole-module pickle: PyObject global and base keys; user classes default to __main__', () => {
    const m = new TheModelClass();
    const obj = m[pyReduce]();
    expect(obj.fullName).toBe('__main__.TheModelClass');
    expect(obj.kind).toBe('newobj');
    expect([...(obj.state as Map<string, unknown>).keys()]).toEqual(nn.MODULE_BASE_KEYS);
    class Named extends nn.Module {
      static override pyModule = 'mypkg.models';
      static override pyName = 'Net';
    }
    expect(new Named()[pyReduce]().fullName).toBe('mypkg.models.Net');
    class Sub extends nn.Linear {}
    expect(new Sub(2, 2)[pyReduce]().fullName).toBe('__main__.Sub');
  });

  it('fromPyObject rebuilds a user class without running its constructor, and generic modules keep their class', () => {
    const src = new TheModelClass();
    (src as unknown as { hidden: number }).hidden = 3;
    const obj = src[pyReduce]();
    // what a loader hands over: children already converted (here: the TS modules themselves)
    const back = TheModelClass.fromPyObject(obj);
    expect(back).toBeInstanceOf(TheModelClass);
    expect([...back.stateDict().keys()]).toEqual(SEED_KEYS.map(([k]) => k));
    expect(back.fc1.weight).toBe(src.fc1.weight);
    expect((back as unknown as { hidden: number }).hidden).toBe(3);
    const generic = nn.Module.fromPyObject(new PyObject('mypkg', 'Thing', 'newobj', [], obj.state));
    expect(generic.pyGlobal()).toEqual(['mypkg', 'Thing']);
    expect(generic[pyReduce]().fullName).toBe('mypkg.Thing');
    expect(() => nn.expectModule(new PyObject('__main__', 'TheModelClass', 'newobj', [], obj.state))).toThrow(
      expect.objectContaining({ code: 'E_UNSUPPORTED_CLASS', className: '__main__.TheModelClass' }),
    );
    expect(nn.expectModule(back)).toBe(back);
  });

  it('built-in layers rebuild from their pickled state with JS attributes restored', () => {
    const conv = new nn.Conv2d(3, 6, [3, 5], { padding: 'same', dilation: 2 });
    const back = nn.Conv2d.fromPyObject(conv[pyReduce]());
    expect(back.kernelSize).toEqual([3, 5]);
    expect(back.padding).toBe('same');
    expect(back.extraRepr()).toBe(conv.extraRepr());
    const lstm = new nn.LSTM(3, 4, { numLayers: 2 });
    const lb = nn.LSTM.fromPyObject(lstm[pyReduce]());
    expect(lb.flatWeightsNames).toEqual(lstm.flatWeightsNames);
    expect(lb.dropout).toBe(0);
  });

  it('DataParallel adds module. and pickles device_ids = [] like a CPU-only torch', () => {
    const dp = new nn.DataParallel(new TheModelClass());
    expect([...dp.stateDict().keys()][0]).toBe('module.conv1.weight');
    expect([...dp.stateDict()._metadata!.keys()].slice(0, 3)).toEqual(['', 'module', 'module.conv1']);
    const st = dp[pyReduce]().state as Map<string, unknown>;
    expect([...st.keys()].slice(17)).toEqual(['device_ids']);
    expect(st.get('device_ids')).toEqual([]);
    const ddp = new nn.parallel.DistributedDataParallel(new TheModelClass());
    expect([...ddp.stateDict().keys()][0]).toBe('module.conv1.weight');
    expect(() => ddp[pyReduce]()).toThrow(expect.objectContaining({ code: 'E_UNSERIALIZABLE' }));
  });

  it('stripModulePrefix removes nested wrappers; the seed loop strips one level', () => {
    const sd = new nn.DataParallel(new nn.DataParallel(new TheModelClass())).stateDict();
    expect([...sd.keys()][0]).toBe('module.module.conv1.weight');
    const once = nn.utils.dropFirstChars(sd);
    expect([...once.keys()][0]).toBe('module.conv1.weight');
    const twice = nn.utils.dropFirstChars(once);
    const stripped = nn.utils.stripModulePrefix(sd);
    expect([...twice.keys()]).toEqual(SEED_KEYS.map(([k]) => k));
    expect([...stripped.keys()]).toEqual(SEED_KEYS.map(([k]) => k));
    expect([...stripped._metadata!.keys()]).toEqual(['', 'conv1', 'pool', 'conv2', 'fc1', 'fc2', 'fc3']);
    expect(new TheModelClass().loadStateDict(stripped)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const bn = nn.utils.stripModulePrefix(new nn.DataParallel(new BNNet()).stateDict());
    expect(bn._metadata!.get('features.1')!.get('version')).toBe(2);
  });

  it('Sequential/ModuleList index like Python', () => {
    const s = new nn.Sequential(new nn.Linear(2, 3), new nn.ReLU());
    expect(s.at(-1)).toBeInstanceOf(nn.ReLU);
    expect((s as unknown as Record<string, unknown>)['0']).toBeInstanceOf(nn.Linear);
    expect([...s]).toHaveLength(2);
    expect(String(s)).toBe('Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)');
  });
});

describe('semantics checked against torch 2.11', () => {
  it('consumePrefixInStateDictIfPresent matches Python on key order and _metadata quirks', () => {
    const cases = [
      { keys: ['module.a', 'b', 'module.c'], metadata: null, prefix: 'module.' },
      { keys: ['module.fc.weight', 'module.fc.bias', 'module.bn.running_mean'], metadata: ['', 'module', 'module.fc', 'module.bn'], prefix: 'module.' },
      { keys: ['module.module.x', 'module.y', 'y'], metadata: ['', 'module', 'module.module', 'module.module.fc'], prefix: 'module.' },
      { keys: ['a.b.c', 'a.b.d', 'e'], metadata: ['', 'a', 'a.b', 'a.b.c'], prefix: 'a.b.' },
      { keys: ['x', 'y'], metadata: ['', 'x'], prefix: 'module.' },
    ];
    const py = runPy<{ items: [string, number][]; metadata: [string, number][] | null }[]>('consume_prefix.py', [], JSON.stringify(cases));
    const ts = cases.map((c) => {
      const sd = new OrderedDict<string, unknown>(c.keys.map((k, i) => [k, i]));
      if (c.metadata) sd._metadata = new OrderedDict(c.metadata.map((k, i) => [k, new Map([['version', i]])]));
      nn.utils.consumePrefixInStateDictIfPresent(sd, c.prefix);
      return { items: [...sd], metadata: sd._metadata ? [...sd._metadata].map(([k, v]) => [k, v.get('version')]) : null };
    });
    expect(ts).toEqual(py);
  });

  it("loadStateDict errors carry PyTorch's exact text (plus a module. hint)", () => {
    const seed = build('seed').stateDict();
    const shapes = (sd: Map<string, Tensor>, rename = (k: string) => k): [string, number[] | null][] => [...sd].map(([k, t]) => [rename(k), [...t.size()]]);
    const cases = [
      { model: 'seed', entries: shapes(seed, (k) => 'module.' + k), metadata: null, strict: true },
      { model: 'seed', entries: shapes(seed).map(([k, s]) => [k, k === 'fc1.weight' ? [120, 300] : s]), metadata: null, strict: true },
      { model: 'seed', entries: shapes(seed).map(([k, s]) => [k, k === 'fc3.bias' ? null : s]), metadata: null, strict: true },
      { model: 'seed', entries: [...shapes(seed).slice(2), ['extra.weight', [1]]], metadata: null, strict: false },
      { model: 'dp', entries: shapes(seed), metadata: null, strict: true },
      { model: 'bn', entries: shapes(build('bn').stateDict()).filter(([k]) => !k.endsWith('num_batches_tracked')), metadata: null, strict: true },
      { model: 'bn', entries: shapes(build('bn').stateDict()).filter(([k]) => !k.endsWith('num_batches_tracked')), metadata: [['', 1], ['features.1', 2], ['bn1', 1]], strict: true },
    ];
    const py = runPy<{ error: string | null; missing?: string[]; unexpected?: string[] }[]>('load_errors.py', [], JSON.stringify(cases));
    cases.forEach((c, i) => {
      const sd = new OrderedDict<string, unknown>(
        c.entries.map(([k, s]) => [k as string, s === null ? 3 : zeros(s as number[], { dtype: (k as string).endsWith('num_batches_tracked') ? 'int64' : 'float32' })]),
      );
      if (c.metadata) sd._metadata = new OrderedDict(c.metadata.map(([k, v]) => [k as string, new Map([['version', v]])]));
      const want = py[i]!;
      if (want.error === null) {
        expect(build(c.model).loadStateDict(sd, { strict: c.strict })).toEqual({ missingKeys: want.missing, unexpectedKeys: want.unexpected });
      } else {
        let err: (Error & { code?: string; pytorchMessage?: string }) | undefined;
        try {
          build(c.model).loadStateDict(sd, { strict: c.strict });
        } catch (e) {
          err = e as Error;
        }
        expect(err?.code).toBe('E_STATE_DICT_MISMATCH');
        expect(err?.pytorchMessage).toBe(want.error);
        if (i === 0) expect(err!.message).toContain('consumePrefixInStateDictIfPresent');
      }
    });
  });
});

// keep imports used
void ones;
