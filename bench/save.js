#!/usr/bin/env node
'use strict';
// Save bench (writer issue): torchsave.save vs torch.save of the same state dicts (each side
// loads the same source file first), with `cp` of the finished file as the physical floor,
// and the peak memory each side needs above the tensors it is saving; both without fsync
// (`durable: false` / torch.save / cp) and with (`durable` / + os.fsync / + sync). See
// bench/README.md.

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

/**
 * `cp` of a finished file, cold target each time; --reflink=never so it really copies. Modes
 * alternate run by run: `plain` (cp alone) and `fsync` (cp, then `sync FILE FOLDER`: fsync of
 * the copy and of its folder, what a durable save must do).
 */
function timeCp(src, dst, runs, modes) {
  const probe = require('node:child_process').spawnSync('cp', ['--reflink=never', '--version'], { stdio: 'ignore' });
  const flags = probe.status === 0 ? ['--reflink=never'] : [];
  const out = Object.fromEntries(modes.map((m) => [m, []]));
  for (let i = 0; i <= runs; i++) {
    for (const m of modes) {
      fs.rmSync(dst, { force: true });
      c.timeCommand(['sync']);
      const argv = m === 'fsync' ? ['sh', '-c', 'dst=$1; shift; cp "$@" && sync "$dst" "$(dirname "$dst")"', 'sh', dst, ...flags, src, dst] : m === 'plain' ? ['cp', ...flags, src, dst] : ddArgv(src, dst);
      const s = c.timeCommand(argv);
      if (i > 0) out[m].push(s);
    }
  }
  fs.rmSync(dst, { force: true });
  return out;
}

/**
 * The durable write floor: dd of as many zero bytes (nothing to read or encode) with O_DIRECT
 * in 8 MiB blocks, then fsync of the file and its folder: the disk's own write speed, the
 * least a durable save must spend. (A page-cache floor, dd without O_DIRECT, measured slower
 * than cp and our save here, so it is not reported.)
 */
function ddArgv(src, dst) {
  const bytes = fs.statSync(src).size;
  const n = Math.ceil(bytes / (8 * c.MiB));
  return ['sh', '-c', `dd if=/dev/zero of="$1" bs=8M count=${n} oflag=direct conv=fsync status=none && sync "$(dirname "$1")"`, 'sh', dst];
}

async function main(opts) {
  c.checkOurSide(opts, ['load', 'save']);
  const py = c.runWorker('py', { cmd: 'info' });
  const big = c.dataFile('big', opts);
  const tiny = c.dataFile('tiny', opts);
  const dir = path.join(c.OUT, 'save');
  fs.mkdirSync(dir, { recursive: true });

  const raw = { torch: {}, ours: {}, cp_s: null };
  // The tiny case takes tens of milliseconds a run, where one scheduler hiccup on a shared
  // machine moves a median of 3: it gets at least 15 runs (both sides alike).
  const cases = [
    { key: 'big', src: big, runs: opts.runs },
    { key: 'tiny', src: tiny, runs: Math.max(opts.runs, 15) },
  ];
  for (const k of cases) {
    const torchOut = path.join(dir, `torch_${k.key}.pt`);
    const oursOut = path.join(dir, `ours_${k.key}.pt`);
    c.log(`torch.save ${path.basename(k.src.file)} (plain, and + fsync)`);
    c.catToNull(k.src.file);
    raw.torch[k.key] = c.runWorker('py', { cmd: 'save', src: k.src.file, out: torchOut, runs: k.runs, modes: ['plain', 'fsync'] });
    if (!opts.referenceOnly) {
      c.log(`torchsave.save ${path.basename(k.src.file)} (durable: false, and durable)`);
      c.catToNull(k.src.file);
      raw.ours[k.key] = c.runWorker('ts', { cmd: 'save', src: k.src.file, out: oursOut, runs: k.runs, modes: ['fast', 'durable'], expectTensors: k.src.tensors });
    }
    if (k.key === 'big') {
      // cp copies the file torch wrote (ours has the same bytes but for the archive folder's
      // name): the same number of bytes to move, present in the page cache.
      c.log(`cp ${path.basename(torchOut)} (plain, and + fsync), and dd of as many bytes (direct + fsync)`);
      raw.cp_s = timeCp(torchOut, path.join(dir, 'cp_target.pt'), opts.runs, ['plain', 'fsync', 'direct']);
    }
    fs.rmSync(torchOut, { force: true });
    fs.rmSync(oursOut, { force: true });
  }
  const pick = (side, key, mode) => raw[side][key] && raw[side][key].by_mode[mode];
  const m = (side, key, mode) => {
    const o = pick(side, key, mode);
    return o && o.times_s.length ? c.median(o.times_s) : null;
  };
  const peak = (side, key, mode) => {
    const o = pick(side, key, mode);
    return o && o.peak_above_base.length ? Math.max(...o.peak_above_base) : null;
  };
  const cp = (mode) => c.median(raw.cp_s[mode]);
  const B = c.fmtBytes(raw.torch.big.tensor_bytes);
  const peakRow = (name, key, mode) =>
    c.row({ name, ours: peak('ours', key, mode), other: peak('torch', key, 'plain'), otherLabel: 'torch.save', kind: 'at-most', target: 64, format: 'mib', unit: ' MiB', digits: 1, value: peak('ours', key, mode) == null ? null : peak('ours', key, mode) / c.MiB });
  const rows = [
    c.row({ name: `save ${B} state dict, 64 tensors, durable: false`, ours: m('ours', 'big', 'fast'), other: m('torch', 'big', 'plain'), otherLabel: 'torch.save', kind: 'faster', target: 2 }),
    c.row({ name: `save ${B}, durable: false, vs copying the finished file`, ours: m('ours', 'big', 'fast'), other: cp('plain'), otherLabel: 'cp', kind: 'within', target: 1.5 }),
    c.row({ name: `save ${B} state dict, durable (default)`, ours: m('ours', 'big', 'durable'), other: m('torch', 'big', 'fsync'), otherLabel: 'torch.save + fsync', kind: 'faster', target: 2 }),
    c.row({ name: `save ${B}, durable, vs copying + fsync`, ours: m('ours', 'big', 'durable'), other: cp('fsync'), otherLabel: 'cp + sync', kind: 'within', target: 1.5 }),
    c.row({ name: `floor: save ${B}, durable, vs writing as many bytes to the disk`, ours: m('ours', 'big', 'durable'), other: cp('direct'), otherLabel: 'dd oflag=direct conv=fsync', kind: 'within' }),
    peakRow(`peak RSS above the tensors, saving ${B}, durable: false`, 'big', 'fast'),
    peakRow(`peak RSS above the tensors, saving ${B}, durable`, 'big', 'durable'),
    c.row({ name: 'save 2,000 tiny tensors (16 floats each), durable: false', ours: m('ours', 'tiny', 'fast'), other: m('torch', 'tiny', 'plain'), otherLabel: 'torch.save', kind: 'faster', target: 2 }),
    c.row({ name: 'save 2,000 tiny tensors, durable', ours: m('ours', 'tiny', 'durable'), other: m('torch', 'tiny', 'fsync'), otherLabel: 'torch.save + fsync', kind: 'faster', target: 2 }),
    peakRow('peak RSS above the tensors, 2,000 tiny tensors, durable', 'tiny', 'durable'),
  ];
  const notes = [
    `cp --reflink=never of the ${c.fmtBytes(raw.torch.big.bytes)} file: ${c.fmtSeconds(cp('plain'))}, with \`sync FILE FOLDER\` after it ${c.fmtSeconds(cp('fsync'))}; torch.save is ${(m('torch', 'big', 'plain') / cp('plain')).toFixed(2)}x of cp, torch.save + fsync ${(m('torch', 'big', 'fsync') / cp('fsync')).toFixed(2)}x of cp + sync.`,
    `Disk floor (dd of as many zero bytes with O_DIRECT, then fsync): ${c.fmtSeconds(cp('direct'))}. torch.save + fsync takes ${(m('torch', 'big', 'fsync') / cp('direct')).toFixed(2)}x of it, so "2x faster than torch.save + fsync" is only possible when that factor is at least 2: no durable save can beat the disk.`,
    'Two like-for-like pairs: `durable: false` (atomic temp file + rename, no fsync) against plain torch.save and plain cp, which do not fsync either; the default `durable: true` (fsync of the file and of its folder) against torch.save + os.fsync of the file and folder, and cp + sync of the copy and folder. Each side alternates its two modes run by run.',
    'Peak RSS above the tensors = VmHWM during the save (reset through /proc/self/clear_refs just before it) minus VmRSS just before it, with the state dict already loaded and resident; the worst of the runs is shown, against plain torch.save\'s (Python\'s resource.getrusage ru_maxrss, reset the same way, is in the JSON as maxrss_above_base).',
    'Each run writes a fresh file after `sync`, so no run pays for an earlier run\'s writeback.',
  ];
  if (!raw.torch.big.by_mode.plain.peak_above_base.length) notes.push('/proc/self/clear_refs was not writable here, so peaks could not be measured.');
  return {
    bench: 'save',
    title: 'save (torchsave.save vs torch.save)',
    setup: `Median of ${opts.runs} runs (the tiny case: ${Math.max(opts.runs, 15)}) after a warm-up; both sides save the state dict they loaded from the same file; torch ${py.torch}, python ${py.python}; ${c.machineLine()}.`,
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
