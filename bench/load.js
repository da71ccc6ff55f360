#!/usr/bin/env node
'use strict';
// Load bench (reader issue): torchsave.load vs torch.load on the same files, same run, same
// warm page cache, with `cat FILE > /dev/null` as the physical floor. See bench/README.md.

const path = require('node:path');
const c = require('./lib/common');

const USAGE = `usage: node bench/load.js [--runs N] [--small] [--keep] [--json] [--reference-only]
  --runs N          timed runs per side (after one warm-up); the median is reported (default 5)
  --small           10x smaller files (1 GiB -> ~100 MiB, 64 MiB -> ~6.4 MiB) for a quick run
  --keep            keep bench/out/ (generated files are then reused by the next run)
  --json            print the result as JSON instead of a markdown table
  --reference-only  time only PyTorch and cat (no dist/ needed)`;

const DEFAULTS = { runs: 5, small: false, keep: false, json: false, referenceOnly: false };

async function main(opts) {
  c.checkOurSide(opts, ['load']);
  const py = c.runWorker('py', { cmd: 'info' });
  const big = c.dataFile('big', opts);
  const mid = c.dataFile('mid', opts);
  const tiny = c.dataFile('tiny', opts);
  const bigBytes = c.fileBytes(big.file);
  const midBytes = c.fileBytes(mid.file);

  // The physical floor: one read to warm the cache, then `runs` timed reads.
  c.catToNull(big.file);
  const catS = [];
  for (let i = 0; i < opts.runs; i++) catS.push(c.catToNull(big.file));

  const cases = [
    { key: 'bigEager', file: big.file, mmap: false, tensors: 64 },
    { key: 'bigMmap', file: big.file, mmap: true, tensors: 64 },
    { key: 'midMmap', file: mid.file, mmap: true, tensors: 64 },
    { key: 'tiny', file: tiny.file, mmap: false, tensors: 2000 },
  ];
  const raw = { cat_s: catS, torch: {}, ours: {} };
  for (const k of cases) {
    // Each side gets the same treatment: the file read once through the page cache, then
    // one untimed warm-up load inside the worker, then the timed runs.
    c.log(`torch.load ${path.basename(k.file)} mmap=${k.mmap}`);
    c.catToNull(k.file);
    raw.torch[k.key] = c.runWorker('py', { cmd: 'load', file: k.file, mmap: k.mmap, runs: opts.runs });
    if (!opts.referenceOnly) {
      c.log(`torchsave.load ${path.basename(k.file)} mmap=${k.mmap}`);
      c.catToNull(k.file);
      raw.ours[k.key] = c.runWorker('ts', { cmd: 'load', file: k.file, mmap: k.mmap, runs: opts.runs, expectTensors: k.tensors });
    }
  }
  const m = (side, key, what) => (raw[side][key] ? c.median(raw[side][key][what]) : null);
  const B = c.fmtBytes(bigBytes);
  const M = c.fmtBytes(midBytes);
  const rows = [
    c.row({ name: `eager load ${B}, 64 tensors, every page touched`, ours: m('ours', 'bigEager', 'total_s'), other: m('torch', 'bigEager', 'total_s'), otherLabel: 'torch.load(mmap=False)', kind: 'faster', target: 2 }),
    c.row({ name: `eager load ${B} vs reading the file`, ours: m('ours', 'bigEager', 'total_s'), other: c.median(catS), otherLabel: 'cat > /dev/null', kind: 'within', target: 1.5 }),
    c.row({ name: `mmap load ${B}, 64 tensors`, ours: m('ours', 'bigMmap', 'load_s'), other: m('torch', 'bigMmap', 'load_s'), otherLabel: 'torch.load(mmap=True)', kind: 'faster', target: 1 }),
    c.row({ name: `mmap load ${M}, 64 tensors`, ours: m('ours', 'midMmap', 'load_s'), other: m('torch', 'midMmap', 'load_s'), otherLabel: 'torch.load(mmap=True)', kind: 'faster', target: 1 }),
    c.row({ name: `mmap load time, ${B} over ${M} (same tensor count)`, ours: m('ours', 'bigMmap', 'load_s'), other: m('ours', 'midMmap', 'load_s'), otherLabel: `torchsave at ${M}`, kind: 'at-most', target: 1.5, unit: 'x' }),
    c.row({ name: `mmap load ${B} + touch every page`, ours: m('ours', 'bigMmap', 'total_s'), other: m('torch', 'bigMmap', 'total_s'), otherLabel: 'torch.load(mmap=True)', kind: 'faster' }),
    c.row({ name: '2,000 tiny tensors (16 floats each)', ours: m('ours', 'tiny', 'total_s'), other: m('torch', 'tiny', 'total_s'), otherLabel: 'torch.load', kind: 'faster', target: 3 }),
  ];
  const tb = m('torch', 'bigMmap', 'load_s');
  const tm = m('torch', 'midMmap', 'load_s');
  const notes = [
    `cat > /dev/null of ${B}: ${c.fmtSeconds(c.median(catS))} (${((bigBytes / c.median(catS)) / c.GiB).toFixed(2)} GiB/s from the page cache); torch.load(mmap=False) is ${(m('torch', 'bigEager', 'total_s') / c.median(catS)).toFixed(2)}x of it.`,
    `torch.load(mmap=True) grows ${(tb / tm).toFixed(2)}x from ${M} to ${B}.`,
    'Eager rows include reading one byte per 4 KiB page of every tensor on both sides (proof that all bytes are materialized); mmap rows time the load call alone, the "+ touch" row adds the page walk.',
  ];
  return {
    bench: 'load',
    title: 'load (torchsave.load vs torch.load)',
    setup: `Median of ${opts.runs} runs after a warm-up, page cache warm for both sides; torch ${py.torch}, python ${py.python}; ${c.machineLine()}.`,
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
