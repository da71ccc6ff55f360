#!/usr/bin/env node
'use strict';
// Memory-loop bench (issue 15): the same file loaded `--count` times in one process, each
// result touched (one byte per 4 KiB page) and dropped, torch.load in a Python loop against
// our synchronous and async eager loops and our mmap loop. Peak RSS (VmHWM), loop time, RSS
// after the loop (one gc, no event-loop turn), and a fresh process's first load. See
// bench/README.md.

const c = require('./lib/common');

const USAGE = `usage: node bench/mem.js [--count N] [--small] [--keep] [--json] [--reference-only]
  --count N         loads per loop (default 8)
  --small           10x smaller file (~100 MiB) for a quick run
  --keep            keep bench/out/
  --json            print the result as JSON
  --reference-only  time only PyTorch and cat`;

const DEFAULTS = { runs: 0, count: 8, small: false, keep: false, json: false, referenceOnly: false };

async function main(opts) {
  c.checkOurSide(opts, ['load', 'dispose']);
  const count = opts.count || DEFAULTS.count;
  const py = c.runWorker('py', { cmd: 'info' });
  const big = c.dataFile('big', opts);
  const B = c.fmtBytes(c.fileBytes(big.file));
  c.catToNull(big.file);
  const catS = [];
  for (let i = 0; i < 3; i++) catS.push(c.catToNull(big.file));
  const loop = (kind, extra) => {
    c.log(`${kind} loop ${JSON.stringify(extra)}`);
    c.catToNull(big.file);
    return c.runWorker(kind, { cmd: 'loop', file: big.file, count, ...extra });
  };
  const raw = {
    cat_s: catS,
    torchEager: loop('py', { mmap: false }),
    torchMmap: loop('py', { mmap: true }),
  };
  if (!opts.referenceOnly) {
    raw.syncEager = loop('ts', { mode: 'sync', mmap: false });
    raw.asyncEager = loop('ts', { mode: 'async', mmap: false });
    raw.syncMmap = loop('ts', { mode: 'sync', mmap: true });
    raw.syncEagerDispose = loop('ts', { mode: 'sync', mmap: false, dispose: true });
  }
  const KiB = 1024;
  const peak = (r) => (r ? r.peak_kib * KiB : null);
  const grow = (r) => (r ? (r.after_kib - r.start_kib) / KiB : null); // MiB
  const idle = (r) => (r && r.idle_kib != null ? (r.idle_kib - r.start_kib) / KiB : null); // MiB
  const steady = (r) => (r ? c.median(r.each_s.slice(1)) : null);
  const first = (r) => (r ? r.each_s[0] : null);
  const mib = { format: 'mib' };
  const rows = [
    c.row({ name: `peak RSS, ${count} sync eager loads of ${B}`, ours: peak(raw.syncEager), other: peak(raw.torchEager), otherLabel: 'torch.load loop', kind: 'within', target: 1.1, ...mib }),
    c.row({ name: `peak RSS, ${count} async eager loads of ${B}`, ours: peak(raw.asyncEager), other: peak(raw.torchEager), otherLabel: 'torch.load loop', kind: 'within', target: 1.1, ...mib }),
    c.row({ name: `peak RSS, ${count} mmap loads of ${B}, pages touched`, ours: peak(raw.syncMmap), other: peak(raw.torchMmap), otherLabel: 'torch.load(mmap=True) loop', kind: 'within', target: 1.1, ...mib }),
    c.row({ name: `peak RSS, ${count} sync eager loads + torch.dispose`, ours: peak(raw.syncEagerDispose), other: peak(raw.torchEager), otherLabel: 'torch.load loop', kind: 'within', target: 1.1, ...mib }),
    c.row({ name: 'RSS after the sync eager loop − before', value: grow(raw.syncEager), kind: 'at-most', target: 64, unit: ' MiB', digits: 0 }),
    c.row({ name: 'RSS after the async eager loop − before', value: grow(raw.asyncEager), kind: 'at-most', target: 64, unit: ' MiB', digits: 0 }),
    c.row({ name: 'RSS after the mmap loop − before', value: grow(raw.syncMmap), kind: 'at-most', target: 64, unit: ' MiB', digits: 0 }),
    c.row({ name: 'torch: RSS after its eager loop − before (reference)', value: grow(raw.torchEager), kind: 'at-most', unit: ' MiB', digits: 0 }),
    c.row({ name: 'RSS 1.5 s after the sync eager loop (gc, one event-loop turn) − before', value: idle(raw.syncEager), kind: 'at-most', target: 64, unit: ' MiB', digits: 0 }),
    c.row({ name: 'RSS 1.5 s after the async eager loop − before', value: idle(raw.asyncEager), kind: 'at-most', target: 64, unit: ' MiB', digits: 0 }),
    c.row({ name: 'RSS 1.5 s after the mmap loop − before', value: idle(raw.syncMmap), kind: 'at-most', target: 64, unit: ' MiB', digits: 0 }),
    c.row({ name: 'torch: RSS 1.5 s after its eager loop (gc) − before (reference)', value: idle(raw.torchEager), kind: 'at-most', unit: ' MiB', digits: 0 }),
    c.row({ name: `sync eager loop time (${count} loads)`, ours: raw.syncEager?.loop_s, other: raw.torchEager.loop_s, otherLabel: 'torch.load loop', kind: 'faster', target: 1 }),
    c.row({ name: `async eager loop time (${count} loads)`, ours: raw.asyncEager?.loop_s, other: raw.torchEager.loop_s, otherLabel: 'torch.load loop', kind: 'faster', target: 1 }),
    c.row({ name: 'eager load in the loop (median after the first) vs reading the file', ours: steady(raw.syncEager), other: c.median(catS), otherLabel: 'cat > /dev/null', kind: 'within', target: 1.5 }),
    c.row({ name: 'first eager load in a fresh process', ours: first(raw.syncEager), other: first(raw.torchEager), otherLabel: 'torch.load, fresh process', kind: 'faster', target: 1.5 }),
    c.row({ name: `mmap loop time (${count} loads, pages touched)`, ours: raw.syncMmap?.loop_s, other: raw.torchMmap.loop_s, otherLabel: 'torch.load(mmap=True) loop', kind: 'faster', target: 1 }),
  ];
  const notes = [
    `Peak RSS is the worker's VmHWM (baseline included: Python with torch imported starts near ${c.fmtBytes(raw.torchEager.start_kib * KiB)}, Node near ${raw.syncEager ? c.fmtBytes(raw.syncEager.start_kib * KiB) : '—'}).`,
    'Each result is touched (one byte per 4 KiB page of every storage) and dropped (the JS loop clears its variable, as Python drops `touch(torch.load(f))`); "after" is read after one gc with no event-loop turn, "1.5 s after" after a 1.5 s wait, a gc and an event-loop turn.',
    'Eager storages come from a pool of anonymous mappings (crate/napi-common/src/pool.rs: reused by the next load, unmapped after 1 s idle); before a big load, one full collection runs when enough young tracked buffers wait (pressure.rs); a collected buffer\'s memory goes back at the next load or on its finalizer, which Node-API runs on an event-loop turn (release.rs). Without an event-loop turn and with no load after it, the last result stays resident: Node-API has no hook after a collection.',
  ];
  return {
    bench: 'mem',
    title: 'memory loop (torchsave.load loops vs torch.load loops)',
    setup: `${count} loads per loop, each loop in a fresh process; torch ${py.torch}, python ${py.python}; ${c.machineLine()}.`,
    rows,
    notes,
    raw,
  };
}

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

module.exports = { main, DEFAULTS, USAGE };
