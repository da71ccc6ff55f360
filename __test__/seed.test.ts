import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as optim from '../ts/optim';
import { TheModelClass, type TorchIO, printStateDicts, runSeed } from '../ts/demo/seed';
import { Parameter, Tensor } from '../ts/tensor';
import { OrderedDict, PyObject, PyTuple, type PyClass, isPyReducible, lookupPyClass, pyReduce } from '../ts/values';


/**
 * An in-memory stand-in for torch.save/torch.load with the same value contract: save turns
 * `[pyReduce]` objects into PyObjects (deep, tensors copied); load rebuilds PyObjects whose
 * class is in `classes` or registered, children first, and refuses objects when weightsOnly.
 */
function memoryIO(): TorchIO & { files: Map<string, unknown> } {
  const files = new Map<string, unknown>();
  const toTree = (v: unknown): unknown => {
    if (isPyReducible(v)) {
      const o = v[pyReduce]();
      return new PyObject(o.module, o.name, o.kind, o.args, toTree(o.state));
    }
    if (v instanceof Parameter) return new Parameter(v.clone(), v.requiresGrad);
    if (v instanceof Tensor) return v.clone();
    if (v instanceof OrderedDict) {
      const m = new OrderedDict([...v].map(([k, x]) => [k, toTree(x)]));
      if (v._metadata) m._metadata = toTree(v._metadata) as OrderedDict<string, Map<string, unknown>>;
      return m;
    }
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, toTree(x)]));
    if (v instanceof Set) return new Set(v);
    if (v instanceof PyTuple) return PyTuple.fromItems(Array.from(v, toTree));
    if (Array.isArray(v)) return v.map(toTree);
    return v;
  };
  const fromTree = (v: unknown, opts: { weightsOnly?: boolean; classes?: Record<string, unknown> }): unknown => {
    if (v instanceof PyObject) {
      if (opts.weightsOnly !== false) throw Object.assign(new Error(`weights-only load refuses ${v.fullName}`), { code: 'E_UNSAFE_GLOBAL' });
      const st = fromTree(v.state, opts);
      const obj = new PyObject(v.module, v.name, v.kind, v.args, st);
      const cls = (opts.classes?.[v.fullName] ?? lookupPyClass(v.fullName)) as PyClass | undefined;
      return cls ? cls.fromPyObject(obj) : obj;
    }
    if (v instanceof Tensor) return v;
    if (v instanceof OrderedDict) {
      const m = new OrderedDict([...v].map(([k, x]) => [k, fromTree(x, opts)]));
      if (v._metadata) m._metadata = v._metadata;
      return m;
    }
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, fromTree(x, opts)]));
    if (v instanceof PyTuple) return PyTuple.fromItems(Array.from(v, (x) => fromTree(x, opts)));
    if (Array.isArray(v)) return v.map((x) => fromTree(x, opts));
    return v;
  };
  return {
    files,
    save: (obj, path) => void files.set(path, toTree(obj)),
    load: (path, opts = {}) => fromTree(files.get(path as string), opts),
  };
}

describe('the seed demo', () => {
  it("prints the seed's state_dict listing exactly (Python's print(a, '\\t', b))", () => {
    const model = new TheModelClass();
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.001, momentum: 0.9 });
    expect(printStateDicts(model, optimizer)).toEqual([
      "Model's state_dict:",
      'conv1.weight \t torch.Size([6, 3, 5, 5])',
      'conv1.bias \t torch.Size([6])',
      'conv2.weight \t torch.Size([16, 6, 5, 5])',
      'conv2.bias \t torch.Size([16])',
      'fc1.weight \t torch.Size([120, 400])',
      'fc1.bias \t torch.Size([120])',
      'fc2.weight \t torch.Size([84, 120])',
      'fc2.bias \t torch.Size([84])',
      'fc3.weight \t torch.Size([10, 84])',
      'fc3.bias \t torch.Size([10])',
      "Optimizer's state_dict:",
      'state \t {}',
      "param_groups \t [{'lr': 0.001, 'momentum': 0.9, 'dampening': 0, 'weight_decay': 0, 'nesterov': False, 'maximize': False, 'foreach': None, 'differentiable': False, 'fused': None, 'params': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}]",
    ]);
  });

  it('runs every step against an in-memory torch.save/torch.load with the same value contract', () => {
    const io = memoryIO();
    const lines = runSeed('/mem', io);
    expect(lines.slice(15, 25)).toEqual([
      'saved and reloaded the state dict for inference: /mem/state_dict.pt',
      'saved and reloaded the whole model (__main__.TheModelClass): /mem/model.pt',
      'saved and reloaded a checkpoint (epoch 5, loss 0.4242): /mem/checkpoint.tar',
      'saved DataParallel state dict: first key module.conv1.weight',
      'loaded it into DataParallel(TheModelClass()) as saved',
      'loading it into the plain model fails with E_STATE_DICT_MISMATCH (keys start with "module.")',
      'seed loop (k[7:]) -> plain model loads: first key conv1.weight',
      'double DataParallel: first key module.module.conv1.weight; one k[7:] loads into DataParallel(model), two into the plain model',
      'nn.utils.stripModulePrefix strips every level at once (keys and _metadata)',
      "nn.utils.consumePrefixInStateDictIfPresent(sd, 'module.') does the same as PyTorch's helper",
    ]);
    // With the libtorch addon (test.sh builds it) the models run: eval inference, then resumed training.
    expect(lines[25]).toMatch(/^inference \(model\.eval\(\), torch\.noGrad\): outputs torch\.Size\(\[4, 10\]\) identical/);
    const losses = /loss ([\d.]+) -> ([\d.]+) -> ([\d.]+)$/.exec(lines[26]!)!.slice(1).map(Number);
    expect(losses[2]!).toBeLessThan(losses[0]!);
    expect(lines.length).toBe(27);
    const whole = io.files.get('/mem/model.pt') as PyObject;
    expect(whole.fullName).toBe('__main__.TheModelClass');
    expect(() => io.load('/mem/model.pt')).toThrow(expect.objectContaining({ code: 'E_UNSAFE_GLOBAL' }));
  });

  it('runs end to end on real files (state dict, whole model, checkpoint, DataParallel)', async () => {
    const io = (await import('../ts/serialization')) as TorchIO;
    const dir = mkdtempSync(join(tmpdir(), 'seed-test-'));
    const lines = runSeed(dir, io);
    expect(lines).toContain('loaded it into DataParallel(TheModelClass()) as saved');
    expect(lines.some((l) => l.includes('fails with E_STATE_DICT_MISMATCH'))).toBe(true);
    expect(lines.some((l) => l.startsWith('double DataParallel: first key module.module.conv1.weight'))).toBe(true);
    for (const f of ['state_dict.pt', 'model.pt', 'checkpoint.tar', 'dp.pt', 'dp2.pt']) expect(existsSync(join(dir, f))).toBe(true);
  });
});
