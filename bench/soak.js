#!/usr/bin/env node
'use strict';
// Server soak (issue 15): an HTTP server on 127.0.0.1 (a child Node on dist/) with load /
// infer / save endpoints, and a bounded client here: --requests requests at concurrency 16
// mixing a small, a 64 MiB and a 1 GiB checkpoint. It stops by itself and prints request
// latency p50/p99, the server's event-loop delay p99/max (perf_hooks.monitorEventLoopDelay)
// and its RSS min/max/final sampled every 250 ms. See bench/README.md.

const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const c = require('./lib/common');

const USAGE = `usage: node bench/soak.js [--requests N] [--concurrency N] [--small] [--keep] [--json]
  --requests N      requests in all (default 2000)
  --concurrency N   requests in flight (default 16)
  --small           10x smaller checkpoints (1 GiB -> ~100 MiB, 64 MiB -> ~6.4 MiB)
  --keep            keep bench/out/
  --json            print the result as JSON`;

const DEFAULTS = { runs: 0, requests: 2000, concurrency: 16, small: false, keep: false, json: false, referenceOnly: false };

// The server: loads with loadAsync (eager), frees each result with torch.dispose, keeps one
// small model resident for /infer, saves with saveAsync to its own temp file. At most two
// 1 GiB operations run at once (a server bounds its big work; 16 at once would need 16 GiB).
const SERVER = String.raw`
const torch = require(process.argv[1]);
const http = require('http'), fs = require('fs'), os = require('os'), path = require('path');
const { monitorEventLoopDelay } = require('perf_hooks');
const files = JSON.parse(process.argv[2]);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'torchsave-soak-'));
const h = monitorEventLoopDelay({ resolution: 5 });
const rss = [];
const sample = () => rss.push(process.memoryUsage.rss());
setInterval(sample, 250).unref();
let bigSlots = 2; const waiting = [];
const big = async (f) => { if (bigSlots === 0) await new Promise((r) => waiting.push(r)); else bigSlots--; try { return await f(); } finally { const n = waiting.shift(); if (n) n(); else bigSlots++; } };
const model = torch.load(files.small, { mmap: false });
const w = [...model.values()][0].typedArray();
let seq = 0;
function sum(sd) { let s = 0; for (const t of sd.values()) { const b = t.untypedStorage().bytes; for (let i = 0; i < b.length; i += 4096) s += b[i]; } return s; }
async function handle(op, key) {
  const file = files[key];
  const run = async () => {
    if (op === 'load') { const sd = await torch.loadAsync(file, { mmap: false }); const s = sum(sd); torch.dispose(sd); return s; }
    if (op === 'save') { const sd = await torch.loadAsync(file, { mmap: false }); const out = path.join(tmp, 'o' + (seq++) + '.pt'); try { await torch.saveAsync(sd, out, { durable: false }); } finally { torch.dispose(sd); fs.rmSync(out, { force: true }); } return 0; }
    if (op === 'infer') { let s = 0; for (let r = 0; r < 64; r++) for (let i = 0; i < 4096 && i < w.length; i++) s += w[i] * (r + 1); return s; }
    throw new Error('unknown op ' + op);
  };
  return key === 'big' ? big(run) : run();
}
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/stats') {
    sample();
    res.end(JSON.stringify({ rss, elMaxMs: h.max / 1e6, elP99Ms: h.percentile(99) / 1e6, elP50Ms: h.percentile(50) / 1e6 }));
    return;
  }
  if (u.pathname === '/reset') { h.reset(); rss.length = 0; res.end('{}'); return; }
  handle(u.pathname.slice(1), u.searchParams.get('f')).then((v) => res.end(JSON.stringify({ v })), (e) => { res.statusCode = 500; res.end(JSON.stringify({ error: String(e && e.code || e) })); });
});
server.listen(0, '127.0.0.1', () => { h.enable(); console.log(JSON.stringify({ port: server.address().port })); });
process.on('SIGTERM', () => { fs.rmSync(tmp, { recursive: true, force: true }); process.exit(0); });
`;

function request(agent, port, p) {
  return new Promise((resolve) => {
    const t = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - t) / 1e6, ok: res.statusCode === 200, body }));
    });
    req.on('error', (e) => resolve({ ms: 0, ok: false, body: String(e) }));
  });
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : null;
}

/** The request mix: mostly small loads and inference, some 64 MiB loads/saves, a few 1 GiB. */
function pick(i) {
  const r = (i * 2654435761) % 1000; // deterministic spread
  if (r < 400) return '/infer?f=small';
  if (r < 750) return '/load?f=small';
  if (r < 900) return '/load?f=mid';
  if (r < 970) return '/save?f=mid';
  if (r < 988) return '/load?f=big';
  return '/save?f=big';
}

async function main(opts) {
  c.checkOurSide(opts, ['loadAsync', 'saveAsync', 'dispose']);
  const files = { small: c.dataFile('tiny', opts).file, mid: c.dataFile('mid', opts).file, big: c.dataFile('big', opts).file };
  c.catToNull(Object.values(files));
  const child = spawn(process.execPath, ['-e', SERVER, path.join(c.distDir(), 'index.js'), JSON.stringify(files)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(JSON.parse(String(d)).port));
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  try {
    const n = opts.requests;
    const warm = Math.max(16, Math.round(n / 10));
    const lat = {};
    let errors = 0;
    let next = 0;
    let warmRss = null;
    const t0 = Date.now();
    const worker = async () => {
      while (next < n) {
        const i = next++;
        if (i === warm) {
          const s = JSON.parse((await request(agent, port, '/stats')).body);
          warmRss = s.rss[s.rss.length - 1];
        }
        const p = pick(i);
        const r = await request(agent, port, p);
        if (!r.ok) errors++;
        const key = p.split('?')[0] + ' ' + p.split('=')[1];
        (lat[key] ??= []).push(r.ms);
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
    const wall = (Date.now() - t0) / 1000;
    const s = JSON.parse((await request(agent, port, '/stats')).body);
    const all = Object.values(lat).flat();
    const rss = s.rss;
    const after = rss.slice(Math.floor(rss.length / 10));
    // Growth trend: the mean of the last third against the second third.
    const third = Math.floor(after.length / 3);
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const trend = third ? mean(after.slice(2 * third)) / mean(after.slice(third, 2 * third)) : null;
    const MiB = c.MiB;
    const fmt = (b) => `${(b / MiB).toFixed(0)} MiB`;
    const perOp = Object.entries(lat).map(([k, xs]) => `${k}: ${xs.length} requests, p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms`);
    const rows = [
      c.row({ name: 'errors', value: errors, kind: 'at-most', target: 0, digits: 0 }),
      c.row({ name: 'request latency p50 (ms, all requests)', value: pct(all, 50), kind: 'at-most', digits: 1 }),
      c.row({ name: 'request latency p99 (ms, all requests)', value: pct(all, 99), kind: 'at-most', digits: 1 }),
      c.row({ name: 'event-loop delay p99 (ms)', value: s.elP99Ms, kind: 'at-most', digits: 1 }),
      c.row({ name: 'event-loop delay max (ms)', value: s.elMaxMs, kind: 'at-most', target: 20, digits: 1 }),
      c.row({ name: 'RSS max / RSS after warm-up', value: warmRss ? Math.max(...rss) / warmRss : null, kind: 'at-most', target: 1.3, unit: 'x' }),
      c.row({ name: 'RSS trend (mean of last third / middle third)', value: trend, kind: 'at-most', target: 1.1, unit: 'x' }),
    ];
    const notes = [
      `${n} requests at concurrency ${opts.concurrency} in ${wall.toFixed(1)} s; RSS min ${fmt(Math.min(...rss))}, max ${fmt(Math.max(...rss))}, final ${fmt(rss[rss.length - 1])}, after warm-up ${warmRss ? fmt(warmRss) : '—'} (${rss.length} samples, every 250 ms).`,
      ...perOp,
      'The RSS-trend target (no growth over the run) is ours: the issue asks for "no growth trend" without a number.',
    ];
    return { bench: 'soak', title: 'server soak (loadAsync / saveAsync / infer over HTTP)', setup: `Files: ${Object.values(files).map((f) => path.basename(f)).join(', ')}; ${c.machineLine()}.`, rows, notes, raw: { lat, stats: s, warmRss, wall } };
  } finally {
    agent.destroy();
    child.kill('SIGTERM');
  }
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
