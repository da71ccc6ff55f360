#!/usr/bin/env node
'use strict';
// The GPU check of the libtorch addon, run by `scripts/gpu-check.sh run` on a machine with a
// GPU (from the folder `scripts/gpu-check.sh pack` made), or here with `--device cpu --small`
// to exercise the same logic on the CPU. PyTorch is the oracle for every check, run in its own
// processes through bench/py/lt_side.py; our side runs in bench/lib/lt_side.js.
//
// Checks (each fails the run on a mismatch):
//  1. Loading onto the device: a file with many dtypes, views sharing a storage, offsets, 0-d
//     and empty tensors, saved from the device, loaded with no mapLocation, with mapLocation
//     and with loadAsync; a file saved from the host loaded to the device (sync and async);
//     the big checkpoint loaded to the device (sync and async). Every tensor's dtype, shape,
//     stride, offset, device, storage sharing and sha256 of its values must equal
//     torch.load(map_location=...)'s. Our re-save of the device-loaded file must load in
//     PyTorch with the same values and devices.
//  2. Forward of the seed model and of ResNet-18 on the device against PyTorch's (tolerance).
//  3. Backward (loss, gradients) of the seed model, and SGD with momentum and Adam, two steps
//     fed PyTorch's gradients: final parameters and optimizer state against PyTorch's.
//  4. nn.DataParallel on the device equals the module; nn.parallel.dataParallel over two
//     replicas equals the whole batch, gradients included.
// Then the perf rows of bench/libtorch.js on the same device (reported, not failing).
//
// Output: progress on stderr, a readable table and one JSON line on stdout, and the full
// JSON in --out. Exit 0 when every check passed, 1 on a mismatch, 2 when the run broke.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const c = require(path.join(ROOT, 'bench', 'lib', 'common.js'));
const bench = require(path.join(ROOT, 'bench', 'libtorch.js'));

const USAGE = `usage: node scripts/gpu-check.js [--device cuda:0|cpu] [--small] [--work DIR] [--out FILE] [--runs N] [--no-perf]
  --device D   where to check (default cuda:0)
  --small      small data (the big checkpoint is 64 MiB instead of 4 GiB) and short perf runs
  --work DIR   scratch folder for the generated files (default: a temp dir, removed at the end)
  --out FILE   also write the full JSON result there
  --runs N     timed runs per perf case (default 3)
  --no-perf    correctness checks only
  --inject-mismatch  corrupt one digest of our side on purpose (proves the check can fail)`;

const DEFAULTS = { device: 'cuda:0', small: false, work: '', out: '', runs: 3, noPerf: false, injectMismatch: false };

function tol(device) {
  const cuda = device.startsWith('cuda');
  // cuDNN may choose other algorithms (TF32 convolutions included) for other batch sizes or
  // in another process; the CPU kernels are the same code on both sides.
  return {
    forward: cuda ? { rel: 1e-3, abs: 1e-5 } : { rel: 1e-5, abs: 1e-6 },
    grads: cuda ? { rel: 1e-3, abs: 1e-6 } : { rel: 1e-4, abs: 1e-7 },
    // PyTorch uses its foreach kernels on CUDA, single-tensor ones on the CPU: same math.
    optim: { rel: 1e-5, abs: 1e-7 },
    exact: { rel: 1e-6, abs: 0 },
  };
}

function within(d, t) {
  return d != null && d.maxAbs != null && Number.isFinite(d.maxAbs) && d.maxAbs <= t.abs + t.rel * (d.scale ?? 0);
}

const results = [];
function record(name, ok, detail) {
  results.push({ name, ok: Boolean(ok), detail });
  c.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail).slice(0, 400)}`}`);
}

/** Compares two describe results (ours vs torch's) tensor by tensor. */
function compareDescribe(name, ours, theirs) {
  const keysO = Object.keys(ours.tensors);
  const keysT = Object.keys(theirs.tensors);
  const problems = [];
  if (keysO.join('\n') !== keysT.join('\n')) problems.push(`keys differ: ours [${keysO}] torch [${keysT}]`);
  for (const k of keysT) {
    const a = ours.tensors[k];
    const b = theirs.tensors[k];
    if (!a) continue;
    for (const f of ['dtype', 'shape', 'stride', 'offset', 'device', 'sha256', 'storage']) {
      if (JSON.stringify(a[f]) !== JSON.stringify(b[f])) problems.push(`${k}.${f}: ours ${JSON.stringify(a[f])} torch ${JSON.stringify(b[f])}`);
    }
  }
  record(name, problems.length === 0, problems.length ? problems.slice(0, 8).join('; ') : { tensors: keysT.length });
}

function fmtDiff(d) {
  if (!d) return 'missing';
  return `max |Δ| ${d.maxAbs == null ? '∞' : d.maxAbs.toExponential(2)} (scale ${d.scale != null ? d.scale.toExponential(2) : '?'})${d.equal ? ', bitwise equal' : ''}`;
}

/** Values of a saved tensor as float64, and max |a-b| / max |b| (no libtorch needed). */
function diffFiles(torch, fa, fb) {
  const a = torch.load(fa);
  const b = torch.load(fb);
  if (a.size().join() !== b.size().join()) return { maxAbs: null, scale: 0, why: `shape ${a.size()} vs ${b.size()}` };
  const x = a.toFloat64Array();
  const y = b.toFloat64Array();
  let maxAbs = 0;
  let scale = 0;
  let equal = true;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? null : d;
    if (maxAbs === null) break;
    scale = Math.max(scale, Math.abs(y[i]));
    if (x[i] !== y[i]) equal = false;
  }
  return { maxAbs, scale, equal };
}

async function main() {
  const opts = c.parseArgs(process.argv.slice(2), { defaults: DEFAULTS, usage: USAGE });
  const device = opts.device;
  const cuda = device.startsWith('cuda');
  const T = tol(device);
  const work = opts.work ? path.resolve(opts.work) : fs.mkdtempSync(path.join(os.tmpdir(), 'torchsave-gpu-check-'));
  fs.mkdirSync(work, { recursive: true });
  const started = Date.now();
  const torch = c.requireDist(['load']);
  const out = { device, small: opts.small, started: new Date().toISOString(), machine: c.machineLine() };
  const benchOutExisted = fs.existsSync(c.OUT);
  const cleanup = () => {
    if (!opts.work) fs.rmSync(work, { recursive: true, force: true });
    if (!benchOutExisted) fs.rmSync(c.OUT, { recursive: true, force: true });
  };
  try {
    out.torch = bench.worker('py', { cmd: 'info' });
    out.ours = bench.worker('ts', { cmd: 'info' });
    c.log(`torch ${out.torch.torch} cuda=${out.torch.cuda} ${out.torch.device_name ?? ''}; libtorch addon: ${out.ours.libtorch ? JSON.stringify(out.ours.libtorch) : out.ours.reason}`);
    if (!out.ours.libtorch) throw new Error(`the libtorch addon did not load: ${out.ours.reason}`);
    if (cuda && !(out.torch.cuda && out.ours.libtorch.cudaAvailable)) {
      throw new Error(`${device} is not usable: torch.cuda.is_available()=${out.torch.cuda}, addon cudaAvailable=${out.ours.libtorch.cudaAvailable}`);
    }

    const sz = bench.sizes(device, opts.small);
    const f = (n) => path.join(work, n);
    const bigBytes = opts.small ? 64 * c.MiB : 4 * c.GiB;
    // 1. data and PyTorch's answers, in one Python process.
    c.log(`torch: generating files in ${work} and computing its answers`);
    const py = bench.worker('py', [
      { cmd: 'gen-mixed', out: f('mixed_dev.pt'), device },
      { cmd: 'gen-mixed', out: f('mixed_host.pt'), device: 'cpu', seed: 1 },
      { cmd: 'gen-models', dir: work, batch: sz.batch },
      { cmd: 'gen-big', out: f('big.pt'), bytes: bigBytes, tensors: 64 },
      { cmd: 'describe', file: f('mixed_dev.pt'), map_location: null },
      { cmd: 'describe', file: f('mixed_dev.pt'), map_location: device },
      { cmd: 'describe', file: f('mixed_host.pt'), map_location: device },
      { cmd: 'describe', file: f('big.pt'), map_location: device },
      { cmd: 'forward', model: 'seed', dir: work, device, runs: 1, iters: 1, out: f('seed_out_torch.pt') },
      { cmd: 'forward', model: 'resnet18', dir: work, device, runs: 1, iters: 1, out: f('resnet18_out_torch.pt') },
      { cmd: 'train', dir: work, device, optim: 'sgd', out: f('train_sgd.pt') },
      { cmd: 'train', dir: work, device, optim: 'adam', out: f('train_adam.pt') },
    ]);
    const [, , , gen, dDevNone, dDevMap, dHostMap, dBig] = py;
    out.bigBytes = gen.bytes;

    // 2. our side, in one Node process.
    c.log('torchsave: the same loads, forwards, training steps and DataParallel');
    const ts = bench.worker('ts', [
      { cmd: 'describe', file: f('mixed_dev.pt'), resaveTo: f('mixed_resaved.pt') },
      { cmd: 'describe', file: f('mixed_dev.pt'), mapLocation: device },
      { cmd: 'describe', file: f('mixed_dev.pt'), mapLocation: device, async: true },
      { cmd: 'describe', file: f('mixed_host.pt'), mapLocation: device },
      { cmd: 'describe', file: f('mixed_host.pt'), mapLocation: device, async: true },
      { cmd: 'describe', file: f('big.pt'), mapLocation: device },
      { cmd: 'describe', file: f('big.pt'), mapLocation: device, async: true },
      { cmd: 'forward', model: 'seed', dir: work, device, runs: 1, iters: 1, out: f('seed_out_ours.pt') },
      { cmd: 'forward', model: 'resnet18', dir: work, device, runs: 1, iters: 1, out: f('resnet18_out_ours.pt') },
      { cmd: 'train', dir: work, device, optim: 'sgd', record: f('train_sgd.pt') },
      { cmd: 'train', dir: work, device, optim: 'adam', record: f('train_adam.pt') },
      { cmd: 'data-parallel', dir: work, device },
    ]);
    const [oDevNone, oDevMap, oDevMapAsync, oHostMap, oHostMapAsync, oBig, oBigAsync, , , trSgd, trAdam, dp] = ts;
    if (opts.injectMismatch) oHostMapAsync.tensors.f16.sha256 = '0'.repeat(64);
    compareDescribe('load: file saved on the device, no mapLocation', oDevNone, dDevNone);
    compareDescribe(`load: file saved on the device, mapLocation '${device}'`, oDevMap, dDevMap);
    compareDescribe(`loadAsync: file saved on the device, mapLocation '${device}'`, oDevMapAsync, dDevMap);
    compareDescribe(`load: file saved on the host, mapLocation '${device}'`, oHostMap, dHostMap);
    compareDescribe(`loadAsync: file saved on the host, mapLocation '${device}'`, oHostMapAsync, dHostMap);
    compareDescribe(`load: ${c.fmtBytes(gen.bytes)} checkpoint, mapLocation '${device}'`, oBig, dBig);
    compareDescribe(`loadAsync: ${c.fmtBytes(gen.bytes)} checkpoint, mapLocation '${device}'`, oBigAsync, dBig);

    // 3. PyTorch reloads what we re-saved from the device.
    const [resaved] = bench.worker('py', [{ cmd: 'check-resaved', file: f('mixed_resaved.pt'), map_location: null }]);
    compareDescribe('torch.load of our re-save of the device-loaded file', resaved, dDevNone);

    for (const m of ['seed', 'resnet18']) {
      const d = diffFiles(torch, f(`${m}_out_ours.pt`), f(`${m}_out_torch.pt`));
      record(`forward ${m} on ${device} vs PyTorch`, within(d, T.forward), fmtDiff(d));
    }
    for (const [name, tr] of [['SGD(momentum=0.9)', trSgd], ['Adam', trAdam]]) {
      const lossOk = Math.abs(tr.loss.ours - tr.loss.torch) <= 1e-5 * Math.max(1, Math.abs(tr.loss.torch));
      record(`${name} run: loss and gradients of the seed model on ${device}`, lossOk && within(tr.grads, T.grads), `loss ${tr.loss.ours} vs ${tr.loss.torch}; grads ${fmtDiff(tr.grads)}`);
      record(`${name}: two steps on PyTorch's gradients, parameters`, within(tr.params, T.optim), fmtDiff(tr.params));
      record(`${name}: optimizer state (${tr.stateEntries} tensors)`, tr.stateEntries > 0 && within(tr.state, T.optim), fmtDiff(tr.state));
    }
    // DataParallel's defaults: every CUDA device (one here), module and output on cuda:0.
    const wantIds = cuda ? [0] : [];
    const wantOut = cuda ? 'cuda:0' : 'cpu';
    const wrapperOk = JSON.stringify(dp.wrapper.deviceIds) === JSON.stringify(wantIds) && dp.wrapper.moduleDevice === wantOut && dp.wrapper.outDevice === wantOut && within(dp.wrapper, T.exact);
    record(`nn.DataParallel on ${cuda ? 'CUDA (module moved to cuda:0)' : 'cpu (runs the module)'} equals the module`, wrapperOk, `deviceIds ${JSON.stringify(dp.wrapper.deviceIds)}, module on ${dp.wrapper.moduleDevice}, output on ${dp.wrapper.outDevice}; ${fmtDiff(dp.wrapper)}`);
    record(
      `nn.parallel.dataParallel over ${dp.functional.devices.join(', ')} equals the whole batch, gradients too`,
      dp.functional.outDevice === device && within(dp.functional.out, T.forward) && within(dp.functional.grads, T.grads),
      `out ${fmtDiff(dp.functional.out)}; grads ${fmtDiff(dp.functional.grads)}`,
    );

    // 4. performance (reported, never failing the check).
    if (!opts.noPerf) {
      c.log('perf: bench/libtorch.js on the same device');
      // The bench reuses the big checkpoint made above (same generator, same size).
      out.perf = await bench.main({ ...bench.DEFAULTS, device, runs: opts.runs, small: opts.small, keep: true, bigFile: opts.small ? null : f('big.pt') });
    }
  } catch (e) {
    out.error = e && e.stack ? e.stack : String(e);
    c.log(`the check broke: ${out.error}`);
  } finally {
    out.checks = results;
    out.seconds = (Date.now() - started) / 1000;
    cleanup();
  }
  const failed = results.filter((r) => !r.ok);
  out.ok = !out.error && failed.length === 0 && results.length > 0;

  const lines = ['', `## GPU check (${device}${opts.small ? ', --small' : ''}): ${out.ok ? 'PASSED' : 'FAILED'}`, '', '| check | result | detail |', '| --- | --- | --- |'];
  for (const r of results) lines.push(`| ${r.name} | ${r.ok ? 'ok' : '**FAIL**'} | ${typeof r.detail === 'string' ? r.detail : JSON.stringify(r.detail)} |`);
  if (out.perf) lines.push('', `### ${out.perf.title}`, '', out.perf.setup, '', c.markdownTable(out.perf.rows), '', ...out.perf.notes.map((n) => `- ${n}`));
  if (out.error) lines.push('', `Error: ${out.error}`);
  lines.push('', `${results.length - failed.length} of ${results.length} checks passed in ${out.seconds.toFixed(0)} s.`);
  process.stdout.write(lines.join('\n') + '\n');
  if (opts.out) fs.writeFileSync(opts.out, JSON.stringify(out, null, 2));
  // One compact JSON line last: checks and perf rows without raw timings.
  const compact = {
    ok: out.ok,
    device,
    torch: out.torch,
    ours: out.ours,
    bigBytes: out.bigBytes,
    checks: results.map((r) => ({ name: r.name, ok: r.ok, detail: r.detail })),
    perf: out.perf ? out.perf.rows.map((r) => ({ name: r.name, ours: r.ours, other: r.other, value: r.value, target: r.target, ok: r.ok })) : null,
    h2d: out.perf && out.perf.raw ? out.perf.raw.h2d ?? null : null,
    error: out.error ?? null,
    seconds: out.seconds,
  };
  process.stdout.write(JSON.stringify(compact) + '\n');
  process.exit(out.error ? 2 : out.ok ? 0 : 1);
}

main();
