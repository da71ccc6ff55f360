'use strict';
// torchsave's half of the libtorch bench and of scripts/gpu-check.js: the mirror of
// bench/py/lt_side.py, run as `node --expose-gc lt_side.js '<json>'` (one command or a list)
// against the built package. Prints one JSON line on stdout. Timings are taken in-process
// around the measured call only, with torch.cuda.synchronize on CUDA, as the Python side does.

const crypto = require('node:crypto');
const path = require('node:path');
const { requireDist } = require('./common');

const torch = requireDist(['load', 'loadAsync', 'save']);
const models = require('./lt_models')(torch);

function log(...a) {
  process.stderr.write(`[torchsave] ${a.join(' ')}\n`);
}

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function isCuda(dev) {
  return String(dev).startsWith('cuda');
}

function sync(dev) {
  if (isCuda(dev)) torch.cuda.synchronize(Number(String(dev).split(':')[1] ?? 0));
}

/**
 * A collection plus one turn of the event loop, so the finalizers of dropped tensors run
 * (they free libtorch memory, on the GPU too) before the next run, as between requests.
 */
async function release() {
  if (typeof global.gc === 'function') global.gc();
  await new Promise((r) => setImmediate(r));
  if (typeof global.gc === 'function') global.gc();
}

function sha256(t) {
  return crypto.createHash('sha256').update(t.contiguousBytes()).digest('hex');
}

/** [key, tensor] pairs of nested Maps/arrays/objects, keys joined with '/' (as lt_side.py). */
function flatTensors(v, prefix = '', out = []) {
  const sub = (k) => (prefix ? `${prefix}/${k}` : String(k));
  if (v instanceof torch.Tensor) out.push([prefix, v]);
  else if (v instanceof Map) for (const [k, x] of v) flatTensors(x, sub(k), out);
  else if (Array.isArray(v)) v.forEach((x, i) => flatTensors(x, sub(i), out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) flatTensors(x, sub(k), out);
  return out;
}

function describeValue(v) {
  const groups = new Map();
  const out = {};
  for (const [k, t] of flatTensors(v)) {
    const s = t.untypedStorage();
    if (!groups.has(s)) groups.set(s, k);
    out[k] = {
      dtype: t.dtype,
      shape: [...t.size()],
      stride: t.stride(),
      offset: t.storageOffset(),
      device: String(t.device),
      sha256: sha256(t),
      storage: groups.get(s),
    };
  }
  return out;
}

async function describe(a) {
  const opts = a.mapLocation ? { mapLocation: a.mapLocation } : {};
  const t0 = now();
  const v = a.async ? await torch.loadAsync(a.file, opts) : torch.load(a.file, opts);
  if (torch.cuda.isAvailable()) torch.cuda.synchronize(0);
  const loadS = now() - t0;
  const tensors = describeValue(v);
  // Re-saving device tensors copies them to the host; Python then reloads the file.
  if (a.resaveTo) torch.save(v, a.resaveTo);
  return { load_s: loadS, tensors };
}

async function loadTime(a) {
  const times = [];
  let count = 0;
  for (let i = 0; i <= a.runs; i++) {
    const t0 = now();
    let sd = a.async ? await torch.loadAsync(a.file, { mapLocation: a.device }) : torch.load(a.file, { mapLocation: a.device });
    sync(a.device);
    const dt = now() - t0;
    count = sd.size;
    for (const t of sd.values()) if (String(t.device) !== a.device) throw new Error(`load put a tensor on ${t.device}, not ${a.device}`);
    sd = null;
    await release();
    if (i > 0) times.push(dt);
    log(`${a.async ? 'loadAsync' : 'load'}(mapLocation '${a.device}') ${i === 0 ? 'warm-up' : `run ${i}`}: ${dt.toFixed(3)} s`);
  }
  return { load_s: times, tensors: count };
}

function loadModel(name, dir, device) {
  const m = models.build(name);
  m.loadStateDict(torch.load(path.join(dir, `${name}.pt`)));
  m.eval();
  m.to(device);
  return m;
}

/**
 * Forward timing. Between iterations the loop yields to the event loop, as an application
 * does between requests or batches: libtorch's memory for dropped results is freed by
 * finalizers, which never run inside one synchronous loop (PyTorch frees by refcount at once).
 */
async function forward(a) {
  const dev = a.device;
  const m = loadModel(a.model, a.dir, dev);
  const x = torch.load(path.join(a.dir, `${a.model}_x.pt`)).to(dev);
  // Each forward runs in torch.tidy, which frees its intermediates when it returns, as
  // Python's reference counting does (without it they wait for the garbage collector).
  const forwardOnce = () => torch.tidy(() => void m.call(x));
  const per = torch.noGrad(() => {
    const y = m.call(x);
    if (a.out) torch.save(y.cpu(), a.out);
    for (let i = 0; i < (a.warmup ?? 3); i++) forwardOnce();
    sync(dev);
    const res = [];
    for (let r = 0; r < a.runs; r++) {
      sync(dev);
      const t0 = now();
      for (let i = 0; i < a.iters; i++) forwardOnce();
      sync(dev);
      res.push((now() - t0) / a.iters);
    }
    return res;
  });
  await release();
  return { forward_s: per };
}

/** max |a - b| and max |b| over two tensors' values (host copies). */
function diff(a, b) {
  if (a.size().join() !== b.size().join()) return { maxAbs: Infinity, scale: 0, equal: false, why: `shape ${a.size()} vs ${b.size()}` };
  const x = a.cpu().toFloat64Array();
  const y = b.cpu().toFloat64Array();
  let maxAbs = 0;
  let scale = 0;
  let equal = a.dtype === b.dtype;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
    if (Math.abs(y[i]) > scale) scale = Math.abs(y[i]);
    if (x[i] !== y[i]) equal = false;
  }
  return { maxAbs, scale, equal };
}

function worst(list) {
  return list.reduce((w, d) => (d.maxAbs / (d.scale || 1) > w.maxAbs / (w.scale || 1) ? d : w), { maxAbs: 0, scale: 1, equal: true });
}

/**
 * The seed model's training against Python's record (lt_side.py `train`): our backward on the
 * same weights and batch (loss and step-0 gradients), then our optimizer fed Python's
 * gradients for every step (final parameters and optimizer state).
 */
async function train(a) {
  const dev = a.device;
  const rec = torch.load(a.record);
  const names = rec.get('names');
  const F = torch.nn.functional;
  const x = torch.load(path.join(a.dir, 'seed_x.pt')).to(dev);
  const y = torch.load(path.join(a.dir, 'seed_y.pt')).to(dev);

  // 1. forward + backward.
  const m = models.build('seed');
  m.loadStateDict(torch.load(path.join(a.dir, 'seed.pt')));
  m.to(dev);
  const loss = F.crossEntropy(m.call(x), y);
  loss.backward();
  const named = new Map(m.namedParameters());
  const gradDiffs = names.map((n) => ({ name: n, ...diff(named.get(n).grad, rec.get('grads')[0].get(n)) }));
  const lossTs = loss.item();

  // 2. the optimizer on Python's gradients.
  const m2 = models.build('seed');
  m2.loadStateDict(torch.load(path.join(a.dir, 'seed.pt')));
  m2.to(dev);
  const params = new Map(m2.namedParameters());
  const opt = a.optim === 'sgd' ? new torch.optim.SGD(m2.parameters(), { lr: 0.01, momentum: 0.9 }) : new torch.optim.Adam(m2.parameters(), { lr: 1e-3 });
  for (const grads of rec.get('grads')) {
    for (const n of names) params.get(n).grad = grads.get(n).to(dev);
    opt.step();
  }
  const paramDiffs = names.map((n) => ({ name: n, ...diff(params.get(n), rec.get('final').get(n)) }));
  const stateDiffs = [];
  names.forEach((n, i) => {
    const want = rec.get('state')[i];
    const have = opt.state.get(params.get(n));
    for (const [k, t] of want) {
      const got = have && have.get(k);
      stateDiffs.push(got instanceof torch.Tensor ? { name: `${n}.${k}`, ...diff(got, t) } : { name: `${n}.${k}`, maxAbs: Infinity, scale: 0, equal: false, why: 'missing' });
    }
  });
  await release();
  return {
    loss: { ours: lossTs, torch: rec.get('losses')[0] },
    grads: worst(gradDiffs),
    params: worst(paramDiffs),
    state: worst(stateDiffs),
    paramsEqual: paramDiffs.every((d) => d.equal),
    stateEntries: stateDiffs.length,
  };
}

/**
 * nn.DataParallel on `device`: with CUDA the wrapper takes the device (module moved there,
 * CPU input scattered to it) and must equal the module itself; the functional form on two
 * replicas of the same device runs scatter/replicate/gather and must equal the whole batch,
 * gradients included.
 */
async function dataParallel(a) {
  const dev = a.device;
  const x = torch.load(path.join(a.dir, 'seed_x.pt'));
  const m = models.build('seed');
  m.loadStateDict(torch.load(path.join(a.dir, 'seed.pt')));
  const dp = new torch.nn.DataParallel(m);
  const wrapperDevices = dp.deviceIds;
  const onDev = String(m.fc1.weight.device);
  m.to(dev);
  const direct = torch.noGrad(() => m.call(x.to(dev)));
  const viaDp = torch.noGrad(() => dp.call(x));
  const wrapper = { deviceIds: wrapperDevices, moduleDevice: onDev, outDevice: String(viaDp.device), ...diff(viaDp, direct) };
  const devices = [dev, dev];
  const full = m.call(x.to(dev));
  full.pow(2).sum().backward();
  const want = m.parameters().map((p) => p.grad.clone());
  m.zeroGrad();
  const out = torch.nn.parallel.dataParallel(m, [x.to(dev)], devices, dev);
  const outDiff = diff(out, full);
  out.pow(2).sum().backward();
  const gradDiff = worst(m.parameters().map((p, i) => (p.grad ? diff(p.grad, want[i]) : { maxAbs: Infinity, scale: 0, equal: false })));
  await release();
  return { wrapper, functional: { devices, outDevice: String(out.device), out: outDiff, grads: gradDiff } };
}

function info() {
  const lt = torch.backends.libtorch.isAvailable();
  return {
    node: process.version,
    libtorch: lt.available ? torch.backends.libtorch.info() : null,
    reason: lt.reason ?? null,
    addon: lt.path ?? null,
  };
}

const COMMANDS = { info, describe, 'load-time': loadTime, forward, train, 'data-parallel': dataParallel };

async function main() {
  const arg = JSON.parse(process.argv[2]);
  const run = async (c) => {
    const f = COMMANDS[c.cmd];
    if (!f) throw new Error(`unknown command ${c.cmd}`);
    return f(c);
  };
  const res = [];
  for (const c of Array.isArray(arg) ? arg : [arg]) res.push(await run(c));
  process.stdout.write(JSON.stringify(Array.isArray(arg) ? res : res[0]) + '\n');
}

main().catch((e) => {
  process.stderr.write(`lt_side: ${e && e.code ? `${e.code}: ` : ''}${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
