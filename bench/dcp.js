#!/usr/bin/env node
'use strict';
// DCP bench (issue 17): a distributed checkpoint (torch.distributed.checkpoint.save, float32,
// written by crate/core/tests/dcp/make_dcp.py bigdcp: 4 writers) -> one safetensors file.
// Ours: `torchsave convert DIR --to safetensors` (streamed: pread from the .distcp maps).
// Python, in the same run: format_utils.dcp_to_torch_save(DIR, tmp.pt), torch.load(tmp.pt),
// safetensors.torch.save_file (there is no streaming path in Python). Wall time and peak RSS
// (/usr/bin/time %M) of each process; targets: 3x faster, 1/10 of the peak memory.
// The development VM is shared and noisy: figures vary by tens of percent between runs.

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const c = require('./lib/common');

const USAGE = `usage: node bench/dcp.js [--gib N] [--runs N] [--keep] [--json]
  --gib N    checkpoint size in GiB (default 4)
  --runs N   timed runs per side; the median is reported (default 1)
  --keep     keep bench/out/dcp-* (reused by the next run)
  --json     print the result as JSON`;

function timed(argv) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', ...argv], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 * c.MiB });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const err = String(r.stderr);
  if (r.status !== 0) c.die(`${argv.join(' ')} exited ${r.status ?? r.signal}:\n${err}`);
  const m = /MAXRSS (\d+)/.exec(err);
  return { seconds: s, peakKiB: m ? Number(m[1]) : NaN };
}

function main() {
  const opts = c.parseArgs(process.argv.slice(2), { usage: USAGE, defaults: { gib: 4, runs: 1, keep: false, json: false } });
  const py = c.pythonPath();
  const cli = c.cliPath();
  const dir = path.join(c.OUT, `dcp-${opts.gib}`);
  if (!fs.existsSync(path.join(dir, '.metadata'))) {
    fs.mkdirSync(c.OUT, { recursive: true });
    const r = spawnSync(py, ['-W', 'ignore', path.join(c.ROOT, 'crate/core/tests/dcp/make_dcp.py'), 'bigdcp', dir, String(opts.gib)], { stdio: 'inherit' });
    if (r.status !== 0) c.die('make_dcp.py bigdcp failed');
  }
  const files = fs.readdirSync(dir).map((n) => path.join(dir, n));
  const oursOut = path.join(c.OUT, 'dcp-ours');
  const theirsOut = path.join(c.OUT, 'dcp-torch');
  const script = [
    'import sys, torch',
    'from torch.distributed.checkpoint.format_utils import dcp_to_torch_save',
    'from safetensors.torch import save_file',
    'd, out = sys.argv[1], sys.argv[2]',
    'dcp_to_torch_save(d, out + ".pt")',
    'sd = torch.load(out + ".pt", weights_only=True)',
    'save_file(sd, out + "/model.safetensors")',
  ].join('\n');
  const ours = [];
  const theirs = [];
  for (let i = 0; i < opts.runs; i++) {
    for (const o of [oursOut, theirsOut]) {
      c.rmrf(o);
      c.rmrf(o + '.pt');
      fs.mkdirSync(o, { recursive: true });
    }
    c.catToNull(files);
    ours.push(timed([process.execPath, cli, 'convert', dir, '--to', 'safetensors', '--out', oursOut, '--force']));
    c.catToNull(files);
    theirs.push(timed([py, '-W', 'ignore', '-c', script, dir, theirsOut]));
  }
  const med = (xs, k) => c.median(xs.map((x) => x[k]));
  const res = {
    gib: opts.gib,
    oursSeconds: med(ours, 'seconds'),
    torchSeconds: med(theirs, 'seconds'),
    oursPeakMiB: med(ours, 'peakKiB') / 1024,
    torchPeakMiB: med(theirs, 'peakKiB') / 1024,
  };
  res.speedup = res.torchSeconds / res.oursSeconds;
  res.memoryRatio = res.oursPeakMiB / res.torchPeakMiB;
  if (opts.json) console.log(JSON.stringify(res, null, 2));
  else {
    console.log(`DCP of ${opts.gib} GiB -> one safetensors file (${c.machineLine()}; noisy shared VM)`);
    console.log(`| | torchsave convert | dcp_to_torch_save + torch.load + save_file | ratio | target |`);
    console.log(`|---|---|---|---|---|`);
    console.log(`| wall | ${res.oursSeconds.toFixed(2)} s | ${res.torchSeconds.toFixed(2)} s | ${res.speedup.toFixed(1)}x faster | >= 3x |`);
    console.log(`| peak RSS | ${res.oursPeakMiB.toFixed(0)} MiB | ${res.torchPeakMiB.toFixed(0)} MiB | ${res.memoryRatio.toFixed(3)} | <= 0.1 |`);
  }
  if (!opts.keep) {
    c.rmrf(oursOut);
    c.rmrf(theirsOut);
    c.rmrf(theirsOut + '.pt');
  }
}

main();
