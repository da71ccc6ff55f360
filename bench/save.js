#!/usr/bin/env node
'use strict';
// Save bench (writer issue): torchsave.save vs torch.save of the same state dicts (each side
// loads the same source file first), with `cp` of the finished file as the physical floor,
// and the peak memory each side needs above the tensors it is saving. See bench/README.md.

const fs = require('node:fs');
const path = require('node:path');
const c = require('./lib/common');

const USAGE = `usage: node bench/save.js [--runs N] [--small] [--keep] [--json] [--reference-only]
  --runs N          timed runs per side (after one warm-up); the median is reported (default 3)
  --small           10x smaller state dict (~100 MiB instead of 1 GiB) for a quick run
  --keep            keep bench/out/ (generated files are then reused by the next run)
  --json            print the result as JSON instead of a markdown table
  --reference-only  time only PyTorch and cp (no dist/ needed)`;

const DEFAULTS = { runs: 3, small: false, keep: false, json: false, referenceOnly: false };

/** `cp` of a finished file, cold target each time; --reflink=never so it really copies. */
function timeCp(src, dst, runs) {
  const probe = require('node:child_process').spawnSync('cp', ['--reflink=never', '--version'], { stdio: 'ignore' });
  const flags = probe.status === 0 ? ['--reflink=never'] : [];
  const out = [];
  for (let i = 0; i <= runs; i++) {
    fs.rmSync(dst, { force: true });
    c.timeCommand(['sync']);
    const s = c.timeCommand(['cp', ...flags, src, dst]);
    if (i > 0) out.push(s);
  }
  fs.rmSync(dst, { force: true });
  return out;
}

async function main(opts) {
  c.checkOurSide(opts, ['load', 'save']);
  const py = c.runWorker('py', { cmd: 'info' });
  const big = c.dataFile('big', opts);
  const tiny = c.dataFile('tiny', opts);
  const dir = path.join(c.OUT, 'save');
  fs.mkdirSync(dir, { recursive: true });

  const raw = { torch: {}, ours: {}, cp_s: null };
  const cases = [
    { key: 'big', src: big },
    { key: 'tiny', src: tiny },
  ];
  for (const k of cases) {
    const torchOut = path.join(dir, `torch_${k.key}.pt`);
    const oursOut = path.join(dir, `ours_${k.key}.pt`);
    c.log(`torch.save ${path.basename(k.src.file)}`);
    c.catToNull(k.src.file);
    raw.torch[k.key] = c.runWorker('py', { cmd: 'save', src: k.src.file, out: torchOut, runs: opts.runs });
    if (!opts.referenceOnly) {
      c.log(`torchsave.save ${path.basename(k.src.file)}`);
      c.catToNull(k.src.file);
      raw.ours[k.key] = c.runWorker('ts', { cmd: 'save', src: k.src.file, out: oursOut, runs: opts.runs, expectTensors: k.src.tensors });
    }
    if (k.key === 'big') {
      // cp copies what we wrote (what torch wrote when our side is not run): same bytes to move.
      const finished = opts.referenceOnly ? torchOut : oursOut;
      c.log(`cp ${path.basename(finished)}`);
      raw.cp_s = timeCp(finished, path.join(dir, 'cp_target.pt'), opts.runs);
    }
    fs.rmSync(torchOut, { force: true });
    fs.rmSync(oursOut, { force: true });
  }
  const m = (side, key, what) => (raw[side][key] && raw[side][key][what].length ? c.median(raw[side][key][what]) : null);
  const peak = (side, key) => (raw[side][key] && raw[side][key].peak_above_base.length ? Math.max(...raw[side][key].peak_above_base) : null);
  const B = c.fmtBytes(raw.torch.big.tensor_bytes);
  const rows = [
    c.row({ name: `save ${B} state dict, 64 tensors`, ours: m('ours', 'big', 'times_s'), other: m('torch', 'big', 'times_s'), otherLabel: 'torch.save', kind: 'faster', target: 2 }),
    c.row({ name: `save ${B} vs copying the finished file`, ours: m('ours', 'big', 'times_s'), other: c.median(raw.cp_s), otherLabel: 'cp', kind: 'within', target: 1.5 }),
    c.row({ name: `peak RSS above the tensors, saving ${B}`, ours: peak('ours', 'big'), other: peak('torch', 'big'), otherLabel: 'torch.save', kind: 'at-most', target: 64, format: 'mib', unit: ' MiB', digits: 1, value: peak('ours', 'big') == null ? null : peak('ours', 'big') / c.MiB }),
    c.row({ name: 'save 2,000 tiny tensors (16 floats each)', ours: m('ours', 'tiny', 'times_s'), other: m('torch', 'tiny', 'times_s'), otherLabel: 'torch.save', kind: 'faster', target: 2 }),
    c.row({ name: 'peak RSS above the tensors, 2,000 tiny tensors', ours: peak('ours', 'tiny'), other: peak('torch', 'tiny'), otherLabel: 'torch.save', kind: 'at-most', target: 64, format: 'mib', unit: ' MiB', digits: 1, value: peak('ours', 'tiny') == null ? null : peak('ours', 'tiny') / c.MiB }),
  ];
  const notes = [
    `cp --reflink=never of the ${c.fmtBytes(raw.torch.big.bytes)} file: ${c.fmtSeconds(c.median(raw.cp_s))}; torch.save is ${(m('torch', 'big', 'times_s') / c.median(raw.cp_s)).toFixed(2)}x of it.`,
    'Peak RSS above the tensors = VmHWM during the save (reset through /proc/self/clear_refs just before it) minus VmRSS just before it, with the state dict already loaded and resident; the worst of the runs is shown (Python\'s resource.getrusage ru_maxrss, reset the same way, is in the JSON as maxrss_above_base).',
    'Each run writes a fresh file after `sync`, so no run pays for an earlier run\'s writeback; neither side fsyncs.',
  ];
  if (!raw.torch.big.peak_above_base.length) notes.push('/proc/self/clear_refs was not writable here, so peaks could not be measured.');
  return {
    bench: 'save',
    title: 'save (torchsave.save vs torch.save)',
    setup: `Median of ${opts.runs} runs after a warm-up; both sides save the state dict they loaded from the same file; torch ${py.torch}, python ${py.python}; ${c.machineLine()}.`,
    rows,
    notes,
    raw,
  };
}

module.exports = { main, DEFAULTS, USAGE };

if (require.main === module) {
  const opts = c.parseArgs(process.argv.slice(2), { defaults: DEFAULTS, usage: USAGE });
  c.cleanupOnExit(opts);
  main(opts).then(
    (res) => {
      if (opts.json) process.stdout.write(JSON.stringify(res, null, 2) + '\n');
      else c.report(res.title, res, opts);
    },
    (e) => c.die(e && e.stack ? e.stack : String(e)),
  );
}
