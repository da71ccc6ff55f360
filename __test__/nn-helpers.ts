/** Shared by the nn/optim/seed tests: the Python oracle runner, a typed encoding, model twins. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as nn from '../ts/nn';
import { Parameter, Tensor, ones, zeros } from '../ts/tensor';
import { OrderedDict, PyFloat, PyObject, PyTuple } from '../ts/values';
import { TheModelClass } from '../ts/demo/seed';

export const PYTHON = process.env.TORCHSAVE_PYTHON ?? join(homedir(), '.cache/torchsave/venv-torch-2.11.0/bin/python');
export const HAVE_PYTHON = existsSync(PYTHON);
export const PY_DIR = join(__dirname, 'python', 'nn');

/** Runs a script under __test__/python/nn and parses its JSON stdout. */
export function runPy<T = unknown>(script: string, args: string[] = [], input?: string): T {
  const r = spawnSync(PYTHON, [join(PY_DIR, script), ...args], { input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`python ${script} failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** The same typed encoding as __test__/python/nn/encode.py. */
export function enc(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return { bool: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { int: v } : { float: v };
  if (typeof v === 'bigint') return { int: Number(v) };
  if (v instanceof PyFloat) return { float: v.value };
  if (typeof v === 'string') return { str: v };
  if (v instanceof Parameter) return { param: [[...v.size()], v.dtype, v.requiresGrad] };
  if (v instanceof Tensor) return { tensor: [[...v.size()], v.dtype] };
  if (v instanceof nn.Module) return { module: v.pyGlobal().join('.'), state: enc(v.pyStateDict()) };
  if (v instanceof PyObject) return { module: v.fullName, state: enc(v.state) };
  if (v instanceof PyTuple) return { tuple: Array.from(v, enc) };
  if (Array.isArray(v)) return { list: v.map(enc) };
  if (v instanceof OrderedDict) {
    const out: Record<string, unknown> = { odict: Array.from(v, ([k, x]) => [enc(k), enc(x)]) };
    if (v._metadata) out.metadata = enc(v._metadata);
    return out;
  }
  if (v instanceof Map) return { dict: Array.from(v, ([k, x]) => [enc(k), enc(x)]) };
  if (v instanceof Set) return { set: [...v].map(String).sort() };
  throw new Error(`cannot encode ${String(v)}`);
}

// --- the TS twins of __test__/python/nn/models.py ---

// The seed's model: the demo's own class (its forward is unused here).
export { TheModelClass };

export class BNNet extends nn.Module {
  features = new nn.Sequential(new nn.Conv2d(3, 8, 3, { padding: 1 }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.AdaptiveAvgPool2d([1, 1]));
  flat = new nn.Flatten();
  drop = new nn.Dropout(0.5);
  bn1 = new nn.BatchNorm1d(8);
  head = new nn.Linear(8, 4);
  constructor() {
    super();
    this.registerBuffer('scale', ones([4]));
    this.registerBuffer('cache', zeros([2]), false);
  }
}

export class LSTMNet extends nn.Module {
  emb = new nn.Embedding(20, 6, { paddingIdx: 0 });
  lstm = new nn.LSTM(6, 5, { numLayers: 2, batchFirst: true, bidirectional: true });
  gru = new nn.GRU(10, 4);
  norm = new nn.LayerNorm(4);
  out = new nn.Linear(4, 3);
}

export function zoo(): nn.ModuleDict {
  return new nn.ModuleDict({
    linear: new nn.Linear(3, 4),
    linear_nobias: new nn.Linear(3, 4, { bias: false }),
    bilinear: new nn.Bilinear(2, 3, 4),
    conv1d: new nn.Conv1d(3, 6, 5, { stride: 2, padding: 1 }),
    conv2d: new nn.Conv2d(3, 6, [3, 5], { padding: 'same', dilation: 2 }),
    conv2d_valid: new nn.Conv2d(2, 4, 3, { padding: 'valid', groups: 2, bias: false }),
    conv3d: new nn.Conv3d(2, 4, 3),
    convt2d: new nn.ConvTranspose2d(3, 6, 5, { stride: 2, outputPadding: 1 }),
    maxpool: new nn.MaxPool2d(2, 2),
    maxpool3: new nn.MaxPool2d(3),
    avgpool: new nn.AvgPool2d(2),
    adaptive: new nn.AdaptiveAvgPool2d([5, 7]),
    adaptive1: new nn.AdaptiveAvgPool2d(1),
    bn1d: new nn.BatchNorm1d(4),
    bn2d: new nn.BatchNorm2d(4, { momentum: null, affine: false }),
    bn_nostats: new nn.BatchNorm2d(3, { trackRunningStats: false }),
    ln: new nn.LayerNorm([4, 5], { eps: 1e-6 }),
    ln_noaffine: new nn.LayerNorm(4, { elementwiseAffine: false }),
    gn: new nn.GroupNorm(2, 4),
    emb: new nn.Embedding(10, 3),
    emb_pad: new nn.Embedding(10, 3, { paddingIdx: -1, maxNorm: 1.0 }),
    dropout: new nn.Dropout(),
    dropout1: new nn.Dropout(1.0),
    relu: new nn.ReLU(),
    gelu: new nn.GELU('tanh'),
    sigmoid: new nn.Sigmoid(),
    tanh: new nn.Tanh(),
    softmax: new nn.Softmax(1),
    flatten: new nn.Flatten(),
    identity: new nn.Identity(),
    seq: new nn.Sequential(new nn.Linear(2, 2), new nn.ReLU()),
    mlist: new nn.ModuleList([new nn.Linear(2, 3), new nn.Tanh()]),
    lstm: new nn.LSTM(3, 4),
    lstm_proj: new nn.LSTM(3, 6, { projSize: 2, bias: false }),
    gru: new nn.GRU(3, 4, { numLayers: 2, bidirectional: true, dropout: 0.25 }),
  });
}

export function build(name: string): nn.Module {
  switch (name) {
    case 'seed':
      return new TheModelClass();
    case 'bn':
      return new BNNet();
    case 'lstm':
      return new LSTMNet();
    case 'zoo':
      return zoo();
    case 'dp':
      return new nn.DataParallel(new TheModelClass());
    case 'dp2':
      return new nn.DataParallel(new nn.DataParallel(new BNNet()));
    default:
      throw new Error(name);
  }
}

export const MODEL_NAMES = ['seed', 'bn', 'lstm', 'zoo', 'dp', 'dp2'];
export const MODEL_CLASSES = { '__main__.TheModelClass': TheModelClass, '__main__.BNNet': BNNet, '__main__.LSTMNet': LSTMNet };
