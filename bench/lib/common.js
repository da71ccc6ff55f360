'use strict';
// Shared plumbing for the benches: argument parsing, locating the built package and the
// PyTorch venv, page-cache warming, timing statistics, worker processes and the tables.
// Plain CommonJS on purpose: the benches run with bare `node` against `npm run build` output.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const BENCH = path.join(ROOT, 'bench');
const OUT = path.join(BENCH, 'out');
const PY_SIDE = path.join(BENCH, 'py', 'torch_side.py');
const TS_SIDE = path.join(BENCH, 'lib', 'ts_side.js');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function log(...a) {
  process.stderr.write(`[bench] ${a.join(' ')}\n`);
}

function die(msg) {
  process.stderr.write(`bench: error: ${msg}\n`);
  process.exit(2);
}

/**
 * `--flag`, `--key value`, `--key=value`. Known booleans never swallow the next word.
 * Unknown flags are an error so a typo does not silently run the default bench.
 */
function parseArgs(argv, spec) {
  const opts = { ...spec.defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(spec.usage + '\n');
      process.exit(0);
    }
    if (!a.startsWith('--')) die(`unexpected argument ${JSON.stringify(a)}\n${spec.usage}`);
    let [k, v] = a.slice(2).split(/=(.*)/s, 2);
    const key = k.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in spec.defaults)) die(`unknown option --${k}\n${spec.usage}`);
    const def = spec.defaults[key];
    if (typeof def === 'boolean') {
      opts[key] = v === undefined ? true : !/^(0|false|no)$/i.test(v);
      continue;
    }
    if (v === undefined) {
      v = argv[++i];
      if (v === undefined) die(`--${k} needs a value`);
    }
    if (typeof def === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) die(`--${k} wants a positive number, got ${v}`);
      opts[key] = n;
    } else opts[key] = v;
  }
  return opts;
}

function pythonPath() {
  const py = process.env.TORCHSAVE_PYTHON || path.join(os.homedir(), '.cache/torchsave/venv-torch-2.11.0/bin/python');
  if (!fs.existsSync(py)) {
    die(`PyTorch's python not found at ${py}. Set TORCHSAVE_PYTHON to a python with torch, numpy and safetensors installed.`);
  }
  return py;
}

/**
 * The built package, or a clear error. `need` lists exports the bench calls, so a half-built
 * dist/ (e.g. the facade without the addon) fails up front rather than mid-run.
 */
function distDir() {
  // TORCHSAVE_BENCH_DIST points the benches at another build (e.g. a worktree's dist/).
  return process.env.TORCHSAVE_BENCH_DIST ? path.resolve(process.env.TORCHSAVE_BENCH_DIST) : path.join(ROOT, 'dist');
}

function requireDist(need = []) {
  const entry = path.join(distDir(), 'index.js');
  if (!fs.existsSync(entry)) die(`${path.relative(process.cwd(), entry) || entry} is missing: run \`npm run build\` first (or pass --reference-only to time only PyTorch and the cat/cp references).`);
  let mod;
  try {
    mod = require(entry);
  } catch (e) {
    die(`loading dist/index.js failed (${e && e.message}); is the native addon built? run \`npm run build\``);
  }
  const missing = need.filter((n) => typeof mod[n] !== 'function');
  if (missing.length) die(`dist/index.js does not export ${missing.join(', ')}; rebuild with \`npm run build\``);
  return mod;
}

function cliPath() {
  const cli = path.join(distDir(), 'cli.js');
  if (!fs.existsSync(cli)) die(`dist/cli.js is missing: run \`npm run build\` first (or pass --reference-only).`);
  return cli;
}

/**
 * In a child process: the exports exist, and (the addon loads lazily, so importing proves
 * little) a one-tensor save + load round trip works. Dies with the library's own message.
 */
function smokeTest(need) {
  const torch = requireDist(need);
  if (typeof torch.save !== 'function' || typeof torch.load !== 'function' || typeof torch.zeros !== 'function') return;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'torchsave-bench-'));
  try {
    const f = path.join(tmp, 'smoke.pt');
    torch.save(new Map([['w', torch.zeros([4])]]), f);
    const back = torch.load(f);
    if (!(back instanceof Map) || !back.has('w')) die('smoke test: torchsave.load did not give back the saved dict');
  } catch (e) {
    die(`smoke test (save + load of one tensor through dist/) failed: ${e && e.code ? `${e.code}: ` : ''}${e && e.message}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Checks our side is runnable before spending minutes generating data. */
function checkOurSide(opts, need) {
  if (opts.referenceOnly) return;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(BENCH, 'lib', 'common.js'))}).smokeTest(${JSON.stringify(need)})`], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) process.exit(2);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs argv, stdout to /dev/null, and returns wall seconds (spawn cost included, ~1-3 ms). */
function timeCommand(argv, env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], ...(env ? { env } : {}) });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) die(`${argv.join(' ')} exited ${r.status ?? r.signal}`);
  return s;
}

/** `cat FILE... > /dev/null`: pulls the files into the page cache (and times a plain read). */
function catToNull(files) {
  const list = Array.isArray(files) ? files : [files];
  let total = 0;
  // Chunks keep the command line short for the 200-file convert set.
  for (let i = 0; i < list.length; i += 256) total += timeCommand(['sh', '-c', 'cat "$@" > /dev/null', 'sh', ...list.slice(i, i + 256)]);
  return total;
}

/**
 * Runs a worker (python torch_side.py or node ts_side.js) with one JSON argument and parses
 * the last stdout line as its JSON result. stderr passes through so progress is visible.
 */
function runWorker(kind, args) {
  const argv = kind === 'py' ? [pythonPath(), PY_SIDE, JSON.stringify(args)] : [process.execPath, '--expose-gc', TS_SIDE, JSON.stringify(args)];
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * MiB, env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  if (r.error) die(`${kind} worker failed to start: ${r.error.message}`);
  const out = String(r.stdout || '').trim();
  if (r.status !== 0) die(`${kind} worker ${args.cmd} exited ${r.status ?? r.signal}${out ? `\n${out}` : ''}`);
  const last = out.split('\n').pop();
  try {
    return JSON.parse(last);
  } catch {
    die(`${kind} worker ${args.cmd} printed no JSON result:\n${out}`);
  }
  return undefined;
}

/** Generates a data file once per spec; a sidecar records the spec so --keep runs reuse it. */
function ensureGenerated(file, spec) {
  const side = `${file}.spec.json`;
  const want = JSON.stringify(spec);
  if (fs.existsSync(file) && fs.existsSync(side) && fs.readFileSync(side, 'utf8') === want) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  log(`generating ${path.relative(ROOT, file)} with torch (${spec.cmd})`);
  runWorker('py', { ...spec, out: file });
  fs.writeFileSync(side, want);
}

/**
 * The shared inputs of the load and save benches, generated by torch.save into bench/out/data
 * (once per run.js, or reused under --keep). Returns { file, tensors }.
 */
function dataFile(which, opts) {
  const div = opts.small ? 10 : 1;
  const dir = path.join(OUT, 'data');
  const specs = {
    big: { name: `sd_64t_${Math.round(1024 / div)}MiB.pt`, cmd: 'gen-statedict', tensors: 64, bytes: Math.round(GiB / div) },
    mid: { name: `sd_64t_${Math.round(640 / div) / 10}MiB.pt`, cmd: 'gen-statedict', tensors: 64, bytes: Math.round((64 * MiB) / div) },
    tiny: { name: 'tiny_2000t.pt', cmd: 'gen-tiny', count: 2000 },
  };
  const { name, ...spec } = specs[which];
  const file = path.join(dir, name);
  ensureGenerated(file, spec);
  return { file, tensors: spec.tensors ?? spec.count };
}

function fileBytes(files) {
  return (Array.isArray(files) ? files : [files]).reduce((n, f) => n + fs.statSync(f).size, 0);
}

function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

/**
 * Removes bench/out when the process ends, however it ends (die() exits directly, and ^C
 * should not leave gigabytes behind), unless --keep.
 */
function cleanupOnExit(opts) {
  process.on('exit', () => {
    if (opts.keep) log(`keeping ${path.relative(ROOT, OUT)}/`);
    else rmrf(OUT);
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
}

// ---- presentation ---------------------------------------------------------------------

function fmtSeconds(s) {
  if (s == null) return '—';
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : 1)} ms`;
  return `${s.toFixed(2)} s`;
}

function fmtBytes(n) {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(n >= 10 * MiB ? 0 : 1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

/**
 * One comparison row. kind:
 *  - 'faster': value = other / ours (higher is better), shown as "3.1x faster";
 *  - 'within': value = ours / other (lower is better), shown as "1.2x of cat";
 *  - 'at-least' / 'at-most': a plain number compared with target.
 */
function row(r) {
  let value = r.value;
  if (value === undefined && r.ours != null && r.other != null) {
    value = r.kind === 'faster' ? r.other / r.ours : r.ours / r.other;
  }
  let ok = null;
  if (value != null && r.target != null) {
    ok = r.kind === 'faster' || r.kind === 'at-least' ? value >= r.target : value <= r.target;
  }
  return { ...r, value: value ?? null, ok };
}

function ratioText(r) {
  if (r.value == null) return '—';
  const v = r.value;
  switch (r.kind) {
    case 'faster':
      return v >= 1 ? `${v.toFixed(2)}x faster` : `${(1 / v).toFixed(2)}x slower`;
    case 'within':
      return `${v.toFixed(2)}x of ${r.otherLabel}`;
    default:
      return `${v.toFixed(r.digits ?? 2)}${r.unit ?? ''}`;
  }
}

function targetText(r) {
  if (r.target == null) return '';
  switch (r.kind) {
    case 'faster':
      return `≥ ${r.target}x faster`;
    case 'within':
      return `≤ ${r.target}x`;
    case 'at-least':
      return `≥ ${r.target}${r.unit ?? ''}`;
    default:
      return `≤ ${r.target}${r.unit ?? ''}`;
  }
}

function cell(v, r, which) {
  if (v == null) return '—';
  const f = r.format || 'seconds';
  if (f === 'seconds') return fmtSeconds(v);
  if (f === 'mib') return `${(v / MiB).toFixed(1)} MiB`;
  if (f === 'throughput') return `${v.toFixed(1)} files/s`;
  if (typeof f === 'function') return f(v, which);
  return String(v);
}

function markdownTable(rows) {
  const head = ['case', 'torchsave', 'compared with', 'its result', 'ratio', 'target', 'met'];
  const lines = [head, head.map(() => '---')];
  for (const r of rows) {
    lines.push([
      r.name,
      cell(r.ours, r, 'ours'),
      r.otherLabel ?? '',
      cell(r.other, r, 'other'),
      ratioText(r),
      targetText(r),
      r.ok == null ? '—' : r.ok ? 'yes' : '**no**',
    ]);
  }
  return lines.map((l) => `| ${l.join(' | ')} |`).join('\n');
}

function report(title, result, opts) {
  if (opts.json) return;
  const lines = [`### ${title}`, '', result.setup, '', markdownTable(result.rows), ''];
  if (result.notes && result.notes.length) lines.push(...result.notes.map((n) => `- ${n}`), '');
  process.stdout.write(lines.join('\n'));
}

function machineLine() {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0] ? cpus[0].model.trim() : 'cpu'}, ${(os.totalmem() / GiB).toFixed(0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

module.exports = {
  ROOT,
  BENCH,
  OUT,
  MiB,
  GiB,
  log,
  die,
  parseArgs,
  pythonPath,
  distDir,
  requireDist,
  cliPath,
  checkOurSide,
  smokeTest,
  median,
  timeCommand,
  catToNull,
  runWorker,
  ensureGenerated,
  dataFile,
  fileBytes,
  rmrf,
  cleanupOnExit,
  fmtSeconds,
  fmtBytes,
  row,
  markdownTable,
  report,
  machineLine,
};
