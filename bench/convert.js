#!/usr/bin/env node
'use strict';
// Convert bench (convert issue): `torchsave convert --to safetensors --dtype float16` over 200
// legacy-format checkpoints, with 1 and 2 jobs, vs the obvious Python script (torch.load ->
// .half() -> safetensors.torch.save_file) with 1 and 2 processes. See bench/README.md.

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const c = require('./lib/common');

const USAGE = `usage: node bench/convert.js [--runs N] [--small] [--files N] [--keep] [--json] [--reference-only]
  --runs N          timed runs per configuration; the median is reported (default 3)
  --small           10x smaller checkpoints (~200 MiB in all instead of ~2 GiB)
  --files N         number of checkpoints (default 200)
  --keep            keep bench/out/ (generated files are then reused by the next run)
  --json            print the result as JSON instead of a markdown table
  --reference-only  time only the Python converter (no dist/ needed)`;

const DEFAULTS = { runs: 3, small: false, files: 200, keep: false, json: false, referenceOnly: false };

function listOutputs(dir) {
  const out = new Map();
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.safetensors')) out.set(path.basename(e.name, '.safetensors'), p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

function prepare(files, outDir) {
  c.rmrf(outDir);
  c.timeCommand(['sync']);
  c.catToNull(files);
}

/**
 * One CLI run. Returns `inner`, the CLI's own timer (`summary.seconds` of `--json`: from the
 * command's start, modules loaded, to the last output committed), which is the boundary the
 * Python script's timer has (after `import torch`); and `wall`, the whole process with Node's
 * start-up, reported in the notes. Without NODE_EXTRA_CA_CERTS: where it is set (some
 * sandboxes and CI images), Node parses that CA bundle at start-up, 60-80 ms on the
 * development VM, for a command that opens no TLS connection.
 */
function runOurs(cli, files, outDir, jobs, durable = true) {
  prepare(files, outDir);
  fs.mkdirSync(outDir, { recursive: true });
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const argv = [cli, 'convert', ...files, '--to', 'safetensors', '--dtype', 'float16', '--jobs', String(jobs), '--out', outDir, '--force', '--json', ...(durable ? [] : ['--no-durable'])];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'], env, maxBuffer: 64 * c.MiB });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) c.die(`torchsave convert --jobs ${jobs} exited ${r.status ?? r.signal}`);
  const summary = JSON.parse(String(r.stdout)).summary;
  const got = listOutputs(outDir).size;
  if (got !== files.length || summary.converted !== files.length) c.die(`torchsave convert --jobs ${jobs}${durable ? '' : ' --no-durable'} wrote ${got} .safetensors files for ${files.length} inputs (in ${outDir})`);
  return { inner: summary.seconds, wall };
}

function runPython(files, outDir, jobs) {
  prepare(files, outDir);
  const r = c.runWorker('py', { cmd: 'convert', files, outdir: outDir, jobs });
  return r.elapsed_s;
}

async function main(opts) {
  const cli = opts.referenceOnly ? null : c.cliPath();
  c.checkOurSide(opts, []);
  const py = c.runWorker('py', { cmd: 'info' });
  const total = Math.round((2 * c.GiB) / (opts.small ? 10 : 1));
  const inDir = path.join(c.OUT, 'convert', `legacy_${opts.files}f_${Math.round(total / c.MiB)}MiB`);
  c.ensureGenerated(inDir, { cmd: 'gen-legacy', count: opts.files, total_bytes: total });
  const files = fs
    .readdirSync(inDir)
    .filter((f) => f.endsWith('.pth'))
    .sort()
    .map((f) => path.join(inDir, f));
  if (files.length !== opts.files) c.die(`${inDir} holds ${files.length} checkpoints, expected ${opts.files}; delete it and rerun`);
  const bytes = c.fileBytes(files);
  const pyOut = path.join(c.OUT, 'convert', 'out_python');
  const tsOut = path.join(c.OUT, 'convert', 'out_torchsave');
  const fastOut = path.join(c.OUT, 'convert', 'out_torchsave_nodurable');

  // `fast`: our --no-durable (no fsyncs, still atomic), like for like with the Python script,
  // which does not sync its outputs either.
  const raw = { torch: { 1: [], 2: [] }, ours: { 1: [], 2: [] }, fast: { 1: [], 2: [] }, oursWall: { 1: [], 2: [] }, fastWall: { 1: [], 2: [] } };
  for (const jobs of [1, 2]) {
    for (let r = 0; r < opts.runs; r++) {
      c.log(`python converter, ${jobs} process(es), run ${r + 1}/${opts.runs}`);
      raw.torch[jobs].push(runPython(files, pyOut, jobs));
      if (cli) {
        c.log(`torchsave convert --jobs ${jobs}, run ${r + 1}/${opts.runs}`);
        const d = runOurs(cli, files, tsOut, jobs);
        raw.ours[jobs].push(d.inner);
        raw.oursWall[jobs].push(d.wall);
        c.log(`torchsave convert --jobs ${jobs} --no-durable, run ${r + 1}/${opts.runs}`);
        const f = runOurs(cli, files, fastOut, jobs, false);
        raw.fast[jobs].push(f.inner);
        raw.fastWall[jobs].push(f.wall);
      }
    }
  }

  // The physical floor on this machine, same run, same bytes: read every input from the page
  // cache (`cat`), and write the bytes of our outputs again durably: concatenated into one
  // file, then `sync FILE` (one fsync of that file only; a plain `sync` would also flush
  // whatever other processes wrote). Our outputs are fsynced before they are named; the
  // Python script's are not synced at all.
  const floor = { read: [], write: [] };
  if (cli) {
    const outs = [...listOutputs(tsOut).values()];
    const copy = path.join(c.OUT, 'convert', 'floor_copy.bin');
    for (let r = 0; r < opts.runs; r++) {
      c.log(`floor: cat inputs, durable copy of the outputs, run ${r + 1}/${opts.runs}`);
      c.rmrf(copy);
      c.timeCommand(['sync']);
      c.catToNull(files);
      floor.read.push(c.catToNull(files));
      let w = 0;
      for (let i = 0; i < outs.length; i += 256) w += c.timeCommand(['sh', '-c', 'f="$1"; shift; cat "$@" >> "$f"', 'sh', copy, ...outs.slice(i, i + 256)]);
      floor.write.push(w + c.timeCommand(['sync', copy]));
    }
    c.rmrf(copy);
  }

  // Same answers, not just fast ones: a spread of files checked tensor by tensor.
  let verify = null;
  if (cli) {
    const ours = listOutputs(tsOut);
    const theirs = listOutputs(pyOut);
    const picks = [...new Set([0, 9, Math.floor(files.length / 4), Math.floor(files.length / 2), files.length - 1])].filter((i) => i >= 0 && i < files.length);
    const pairs = picks.map((i) => {
      const stem = path.basename(files[i], '.pth');
      return [ours.get(stem) ?? path.join(tsOut, `${stem}.safetensors`), theirs.get(stem)];
    });
    verify = c.runWorker('py', { cmd: 'verify-convert', pairs });
  }

  // --no-durable writes the same bytes as the durable run: every file compared.
  let same = null;
  if (cli && raw.fast[1].length) {
    const a = listOutputs(tsOut);
    const b = listOutputs(fastOut);
    same = { checked: a.size, bad: [] };
    for (const [stem, p] of a) if (!b.has(stem) || !fs.readFileSync(p).equals(fs.readFileSync(b.get(stem)))) same.bad.push(stem);
  }

  const med = (side, j) => (raw[side][j].length ? c.median(raw[side][j]) : null);
  const n = files.length;
  const fmt = (s) => `${c.fmtSeconds(s)} (${(n / s).toFixed(1)} files/s, ${(bytes / s / 1e9).toFixed(2)} GB/s)`;
  const label = `${n} legacy .pth (${c.fmtBytes(bytes)}) → safetensors fp16`;
  const rows = [
    c.row({ name: `durable: ${label}, 1 job`, ours: med('ours', 1), other: med('torch', 1), otherLabel: 'Python, 1 process', kind: 'faster', format: fmt }),
    c.row({ name: `durable: ${label}, 2 jobs`, ours: med('ours', 2), other: med('torch', 2), otherLabel: 'Python, 2 processes', kind: 'faster', target: 3, format: fmt }),
    c.row({
      name: 'durable: scaling from 1 to 2 jobs (throughput ratio)',
      ours: med('ours', 1),
      other: med('ours', 2),
      otherLabel: 'torchsave, 2 jobs',
      kind: 'at-least',
      target: 1.8,
      unit: 'x',
      value: med('ours', 1) != null ? med('ours', 1) / med('ours', 2) : null,
      format: fmt,
    }),
  ];
  if (raw.fast[1].length) {
    rows.push(
      c.row({ name: `--no-durable: ${label}, 1 job`, ours: med('fast', 1), other: med('torch', 1), otherLabel: 'Python, 1 process', kind: 'faster', format: fmt }),
      c.row({ name: `--no-durable: ${label}, 2 jobs`, ours: med('fast', 2), other: med('torch', 2), otherLabel: 'Python, 2 processes', kind: 'faster', target: 3, format: fmt }),
      c.row({
        name: '--no-durable: scaling from 1 to 2 jobs (throughput ratio)',
        ours: med('fast', 1),
        other: med('fast', 2),
        otherLabel: 'torchsave --no-durable, 2 jobs',
        kind: 'at-least',
        target: 1.8,
        unit: 'x',
        value: med('fast', 1) / med('fast', 2),
        format: fmt,
      }),
    );
  }
  if (floor.read.length) {
    const fl = c.median(floor.read) + c.median(floor.write);
    rows.push(
      c.row({
        name: 'floor: cat of the inputs + durable copy of the outputs (cat > one file + sync FILE), vs 2 jobs',
        ours: med('ours', 2),
        other: fl,
        otherLabel: 'cat + durable copy',
        kind: 'within',
        format: fmt,
      }),
    );
  }
  if (verify) {
    rows.push(
      c.row({ name: 'outputs identical to the Python converter\'s', ours: verify.checked - verify.bad.length, other: verify.checked, otherLabel: 'files checked', kind: 'at-least', target: verify.checked, value: verify.checked - verify.bad.length, digits: 0, unit: ` of ${verify.checked}`, format: (v) => `${v} files` }),
    );
  }
  if (same) {
    rows.push(
      c.row({ name: '--no-durable outputs byte-identical to the durable ones', ours: same.checked - same.bad.length, other: same.checked, otherLabel: 'files compared', kind: 'at-least', target: same.checked, value: same.checked - same.bad.length, digits: 0, unit: ` of ${same.checked}`, format: (v) => `${v} files` }),
    );
  }
  const notes = [
    `Python scales ${(med('torch', 1) / med('torch', 2)).toFixed(2)}x from 1 to 2 processes (torch.set_num_threads(1) in every process: torch's default OpenMP threads made the 1-process baseline swing up to 10x on this shared 2-core machine).`,
    'Both sides are timed from inside, after their modules are loaded: Python after `import torch` (pool start-up included), our CLI by its own timer (`--json` summary.seconds: from the command\'s start to the last output committed, worker threads included). GB/s counts input bytes (10^9).',
    'Durable rows: our outputs are fsynced before they are named (crash-safe); the Python script does not sync its outputs, whose writeback happens after its timer stops. The --no-durable rows skip our fsyncs too (outputs still atomic: temp file + rename), so they compare like for like; both write identical bytes.',
    'Before every run: the output folder removed, `sync`, and every input read once (`cat > /dev/null`) so both sides start from the same warm page cache.',
  ];
  if (floor.read.length && med('torch', 2) != null) {
    notes.push(
      `Floor: cat of the inputs ${c.fmtSeconds(c.median(floor.read))}, durable copy of our outputs (cat > one file, sync FILE) ${c.fmtSeconds(c.median(floor.write))}, one process each. ` +
        `3x the Python script's 2-process throughput means ${c.fmtSeconds(med('torch', 2) / 3)} for everything, reading and writing included.`,
    );
  }
  if (raw.oursWall[2].length && med('torch', 2) != null) {
    const w = (k) => c.median(raw[k][2]);
    notes.push(
      `Whole CLI processes at 2 jobs, Node start-up included (not part of the rows, as Python's interpreter start-up and \`import torch\` are not): durable ${c.fmtSeconds(w('oursWall'))} (${(med('torch', 2) / w('oursWall')).toFixed(2)}x faster than the script), --no-durable ${c.fmtSeconds(w('fastWall'))} (${(med('torch', 2) / w('fastWall')).toFixed(2)}x).`,
    );
  }
  if (same && same.bad.length) notes.push(`--no-durable MISMATCHES: ${same.bad.slice(0, 10).join(', ')}`);
  if (verify && verify.bad.length) notes.push(`MISMATCHES: ${verify.bad.join('; ')}`);
  return {
    bench: 'convert',
    title: 'convert (torchsave convert vs torch + safetensors in Python)',
    setup: `Median of ${opts.runs} runs; torch ${py.torch}, python ${py.python}; ${c.machineLine()}.`,
    rows,
    notes,
    raw: { ...raw, floor, files: n, bytes, verify, same },
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
