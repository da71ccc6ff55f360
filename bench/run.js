#!/usr/bin/env node
'use strict';
// Runs the load, save and convert benches in one go and prints one markdown table for the
// README (or --json). Generated data is shared between the benches and removed at the end
// unless --keep.

const c = require('./lib/common');

// libtorch needs the optional libtorch addon, so it runs only when asked for (--only libtorch).
const BENCHES = { load: require('./load'), save: require('./save'), convert: require('./convert'), libtorch: require('./libtorch'), mem: require('./mem'), soak: require('./soak') };

const USAGE = `usage: node bench/run.js [--only load|save|convert|libtorch|mem|soak[,...]] [--small] [--runs N] [--keep] [--json] [--reference-only]
  --only LIST       run only these benches (comma-separated; libtorch needs the libtorch addon;
                    libtorch, mem and soak are not in the default list)
  --small           10x smaller data for a quick run (a few minutes instead of ~15)
  --runs N          timed runs per case (default: each bench's own, 5 load / 3 save / 3 convert / 5 libtorch)
  --keep            keep bench/out/ (generated files are then reused by the next run)
  --json            print all results as one JSON object instead of markdown
  --reference-only  time only PyTorch and the cat/cp references (no dist/ needed)`;

async function main() {
  const opts = c.parseArgs(process.argv.slice(2), {
    defaults: { only: 'load,save,convert', small: false, runs: 0, keep: false, json: false, referenceOnly: false },
    usage: USAGE,
  });
  const names = opts.only.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!BENCHES[n]) c.die(`--only: unknown bench ${JSON.stringify(n)} (load, save, convert, libtorch, mem, soak)`);
  c.cleanupOnExit(opts);
  const results = [];
  for (const n of names) {
    const b = BENCHES[n];
    // The benches share bench/out/data, so none of them cleans up on its own here.
    const o = { ...b.DEFAULTS, small: opts.small, keep: true, json: opts.json, referenceOnly: opts.referenceOnly };
    if (opts.runs) o.runs = opts.runs;
    c.log(`=== ${n} ===`);
    results.push(await b.main(o));
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify({ machine: c.machineLine(), small: opts.small, results }, null, 2) + '\n');
    return;
  }
  const rows = results.flatMap((r) => r.rows.map((row) => ({ ...row, name: `${r.bench}: ${row.name}` })));
  const out = [
    `## Benchmarks${opts.small ? ' (--small: data 10x smaller than the targets assume)' : ''}`,
    '',
    `${c.machineLine()}. Same run, same files, same warm page cache for both sides; median of N runs.`,
    '',
    c.markdownTable(rows),
    '',
  ];
  for (const r of results) {
    out.push(`**${r.bench}.** ${r.setup.replace(`; ${c.machineLine()}`, '')}`, '', ...r.notes.map((n) => `- ${n}`), '');
  }
  const failed = rows.filter((r) => r.ok === false).length;
  const met = rows.filter((r) => r.ok === true).length;
  out.push(`Targets met: ${met} of ${met + failed} measured${failed ? ` (${failed} missed)` : ''}.`);
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
