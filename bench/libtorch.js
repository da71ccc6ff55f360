#!/usr/bin/env node
'use strict';
// libtorch bench (libtorch addon issue): forward passes of the seed model and of a ResNet-18
// built from torchsave's nn layers, against PyTorch's on the same device in the same run; with
// a GPU also the load of a 4 GiB checkpoint to cuda:0 against
// torch.load(map_location='cuda:0'), with the host-to-device bandwidth of plain copies
// measured in the same run as the physical reference. See bench/README.md.

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const c = require('./lib/common');

const USAGE = `usage: node bench/libtorch.js [--device auto|cpu|cuda:N] [--runs N] [--small] [--keep] [--json] [--reference-only]
  --device D        where the models run (default auto: cuda:0 when both sides see a GPU, else cpu)
  --runs N          timed runs per case after a warm-up; the median is reported (default 5)
  --small           smaller batches and a 10x smaller checkpoint (4 GiB -> 400 MiB)
  --keep            keep bench/out/ (generated files are then reused by the next run)
  --json            print the result as JSON instead of a markdown table
  --reference-only  time only PyTorch (no dist/ or libtorch addon needed)`;

const DEFAULTS = { device: 'auto', runs: 5, small: false, keep: false, json: false, referenceOnly: false };

const PY_LT = path.join(c.BENCH, 'py', 'lt_side.py');
const TS_LT = path.join(c.BENCH, 'lib', 'lt_side.js');

/**
 * Runs one worker process on a command or a list of commands (lt_side.py / lt_side.js) and
 * returns its JSON result; stderr passes through so progress is visible.
 */
function worker(kind, cmds) {
  const argv = kind === 'py' ? [c.pythonPath(), PY_LT, JSON.stringify(cmds)] : [process.execPath, '--expose-gc', TS_LT, JSON.stringify(cmds)];
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * c.MiB, env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  if (r.error) throw new Error(`${kind} worker failed to start: ${r.error.message}`);
  const out = String(r.stdout || '').trim();
  const what = Array.isArray(cmds) ? cmds.map((x) => x.cmd).join(',') : cmds.cmd;
  if (r.status !== 0) throw new Error(`${kind} worker (${what}) exited ${r.status ?? r.signal}${out ? `\n${out.slice(-2000)}` : ''}`);
  try {
    return JSON.parse(out.split('\n').pop());
  } catch {
    throw new Error(`${kind} worker (${what}) printed no JSON result:\n${out.slice(-2000)}`);
  }
}

/** Batches and iteration counts per device: big enough to time, small enough for a quick run. */
function sizes(device, small) {
  const cuda = device.startsWith('cuda');
  return {
    batch: cuda ? { seed: 64, resnet18: small ? 8 : 32 } : { seed: 64, resnet18: small ? 1 : 2 },
    // CPU runs of a few hundred ms each: shorter ones followed the shared machine's scheduler.
    iters: cuda ? { seed: small ? 50 : 200, resnet18: small ? 5 : 20 } : { seed: small ? 5 : 100, resnet18: small ? 1 : 5 },
    bigBytes: Math.round((small ? 0.4 : 4) * c.GiB),
    bigTensors: 64,
  };
}

/** The device both sides can use for `--device auto`. */
function pickDevice(opts, py, ts) {
  if (opts.device !== 'auto') return opts.device;
  const tsCuda = opts.referenceOnly || (ts && ts.libtorch && ts.libtorch.cudaAvailable);
  return py.cuda && tsCuda ? 'cuda:0' : 'cpu';
}

async function main(opts) {
  const py = worker('py', { cmd: 'info' });
  let ts = null;
  if (!opts.referenceOnly) {
    c.checkOurSide(opts, ['load']);
    ts = worker('ts', { cmd: 'info' });
    if (!ts.libtorch) c.die(`the libtorch addon is not available to dist/: ${ts.reason}`);
  }
  const device = pickDevice(opts, py, ts);
  const cuda = device.startsWith('cuda');
  const sz = sizes(device, opts.small);
  const dir = path.join(c.OUT, 'libtorch');
  fs.mkdirSync(dir, { recursive: true });
  c.log(`generating the models' weights and inputs with torch (batch ${JSON.stringify(sz.batch)})`);
  worker('py', { cmd: 'gen-models', dir, batch: sz.batch });

  const raw = { device, torch: {}, ours: {} };
  // On a shared CPU the load drifts within seconds, so the sides alternate in rounds of one
  // run each; on a GPU each side does all its runs in one process (CUDA start-up is slow).
  const rounds = cuda ? 1 : opts.runs;
  const perRound = cuda ? opts.runs : 1;
  for (const model of ['seed', 'resnet18']) {
    const cmd = { cmd: 'forward', model, dir, device, runs: perRound, iters: sz.iters[model] };
    raw.torch[model] = { forward_s: [] };
    raw.ours[model] = opts.referenceOnly ? null : { forward_s: [] };
    for (let r = 0; r < rounds; r++) {
      c.log(`forward ${model} on ${device}${rounds > 1 ? `, round ${r + 1} of ${rounds}` : ''}`);
      raw.torch[model].forward_s.push(...worker('py', cmd).forward_s);
      if (!opts.referenceOnly) raw.ours[model].forward_s.push(...worker('ts', cmd).forward_s);
    }
  }

  let big = null;
  if (cuda) {
    // scripts/gpu-check.js passes the checkpoint it made (same generator) as opts.bigFile.
    const file = opts.bigFile || path.join(c.OUT, 'data', `big_${sz.bigTensors}t_${Math.round(sz.bigBytes / c.MiB)}MiB.pt`);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      c.log(`generating ${c.fmtBytes(sz.bigBytes)} checkpoint with torch`);
      worker('py', { cmd: 'gen-big', out: file, bytes: sz.bigBytes, tensors: sz.bigTensors });
    }
    big = { file, bytes: c.fileBytes(file) };
    c.catToNull(file);
    c.log(`host-to-device bandwidth (torch, 1 GiB copies)`);
    raw.h2d = worker('py', { cmd: 'h2d', device, bytes: Math.min(c.GiB, big.bytes), runs: 3 });
    c.catToNull(file);
    raw.torch.load = worker('py', { cmd: 'load-time', file, device, runs: opts.runs });
    if (!opts.referenceOnly) {
      c.catToNull(file);
      raw.ours.load = worker('ts', { cmd: 'load-time', file, device, runs: opts.runs, async: false });
      c.catToNull(file);
      raw.ours.loadAsync = worker('ts', { cmd: 'load-time', file, device, runs: opts.runs, async: true });
    }
  }

  const med = (side, key, field) => (raw[side][key] ? c.median(raw[side][key][field]) : null);
  const rows = [
    c.row({ name: `forward, seed model, batch ${sz.batch.seed}, ${device}`, ours: med('ours', 'seed', 'forward_s'), other: med('torch', 'seed', 'forward_s'), otherLabel: 'PyTorch', kind: 'within', target: 1.1 }),
    c.row({ name: `forward, ResNet-18, batch ${sz.batch.resnet18}×3×224×224, ${device}`, ours: med('ours', 'resnet18', 'forward_s'), other: med('torch', 'resnet18', 'forward_s'), otherLabel: 'PyTorch', kind: 'within', target: 1.1 }),
  ];
  const notes = [
    'Forward: eval mode under no_grad / torch.noGrad, the same weights and input on both sides (made by torch), time per forward over a loop of iterations, synchronized on CUDA; median of the runs.',
    `Each of our forwards runs in torch.tidy, which frees its intermediates when it returns, as Python's reference counting does (without it, dropped results wait for the garbage collector and every op touches fresh memory)${cuda ? '' : '; on the CPU the sides alternate in rounds of one run, so load drift on a shared machine hits both'}.`,
  ];
  if (big) {
    const B = c.fmtBytes(big.bytes);
    const floor = raw.h2d ? big.bytes / (raw.h2d.pinned_gbps * 1e9) : null;
    rows.push(
      c.row({ name: `load ${B} to ${device} (load)`, ours: med('ours', 'load', 'load_s'), other: med('torch', 'load', 'load_s'), otherLabel: `torch.load(map_location='${device}')`, kind: 'faster', target: 1.5 }),
      c.row({ name: `load ${B} to ${device} (loadAsync)`, ours: med('ours', 'loadAsync', 'load_s'), other: med('torch', 'load', 'load_s'), otherLabel: `torch.load(map_location='${device}')`, kind: 'faster', target: 1.5 }),
      c.row({ name: `loadAsync ${B} vs the pinned host-to-device copy`, ours: med('ours', 'loadAsync', 'load_s'), other: floor, otherLabel: 'bytes / pinned H2D bandwidth', kind: 'within' }),
    );
    if (raw.h2d) {
      notes.push(
        `Host-to-device bandwidth in this run (torch, 1 GiB uint8 copies, best of 3): pinned ${raw.h2d.pinned_gbps.toFixed(1)} GB/s, pageable ${raw.h2d.pageable_gbps.toFixed(1)} GB/s; ${B} at the pinned rate takes ${c.fmtSeconds(floor)}.`,
      );
    }
    notes.push(`Load: ${big.bytes} bytes, ${sz.bigTensors} float32 tensors saved by torch from the host; page cache warm for both sides; each run ends with torch.cuda.synchronize and frees the tensors before the next.`);
  }
  return {
    bench: 'libtorch',
    title: `libtorch (torchsave's libtorch addon vs PyTorch, ${device})`,
    setup: `Median of ${opts.runs} runs after a warm-up; torch ${py.torch}, python ${py.python}${py.device_name ? `, ${py.device_name}` : ''}${ts && ts.libtorch ? `, libtorch addon ${ts.libtorch.libtorch} (${ts.libtorch.numThreads} CPU threads; torch ${py.threads})` : ''}; ${c.machineLine()}.`,
    rows,
    notes,
    raw,
  };
}

module.exports = { main, DEFAULTS, USAGE, worker, sizes };

if (require.main === module) {
  const opts = c.parseArgs(process.argv.slice(2), { defaults: DEFAULTS, usage: USAGE });
  c.cleanupOnExit(opts);
  main(opts)
    .then((r) => {
      if (opts.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else c.report(r.title, r, opts);
    })
    .catch((e) => c.die(e && e.message ? e.message : String(e)));
}
