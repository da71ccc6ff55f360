'use strict';
// torchsave's half of the benches: the mirror of py/torch_side.py, run as
// `node --expose-gc ts_side.js '<json>'` against the built package (dist/). Prints one JSON
// line on stdout. Timings are taken in-process around the measured call only, exactly as the
// Python side does, so Node's start-up is not charged to us either.

const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const { requireDist } = require('./common');

const PAGE = 4096;

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function statusBytes(key) {
  const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Resets VmHWM so the next reading is the peak of the operation that follows. */
function resetPeak() {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function gc() {
  if (typeof global.gc === 'function') global.gc();
}

/**
 * A collection plus one turn of the event loop: Node runs the finalizers of external
 * ArrayBuffers (which free torchsave's storage memory) after the turn, as it does in any
 * real program between requests. Without it a synchronous loop keeps every run's buffers.
 */
async function settle() {
  gc();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
}

function isTensor(v) {
  return v !== null && typeof v === 'object' && typeof v.untypedStorage === 'function' && typeof v.dtype === 'string';
}

function* tensors(obj, seen = new Set()) {
  if (obj === null || typeof obj !== 'object' || seen.has(obj)) return;
  seen.add(obj);
  if (isTensor(obj)) {
    yield obj;
    return;
  }
  if (obj instanceof Map) for (const v of obj.values()) yield* tensors(v, seen);
  else if (Array.isArray(obj)) for (const v of obj) yield* tensors(v, seen);
  else if (!ArrayBuffer.isView(obj)) for (const v of Object.values(obj)) yield* tensors(v, seen);
}

/** One byte per 4 KiB page of every storage, plus its last byte: same walk as the Python side. */
function touch(obj) {
  let total = 0;
  let count = 0;
  for (const t of tensors(obj)) {
    const b = t.untypedStorage().bytes;
    count++;
    if (b.length === 0) continue;
    for (let i = 0; i < b.length; i += PAGE) total += b[i];
    total += b[b.length - 1];
  }
  return { total, count };
}

async function benchLoad(torch, a) {
  const loadS = [];
  const totalS = [];
  let count = 0;
  for (let r = 0; r <= a.runs; r++) {
    await settle();
    const t0 = now();
    let sd = torch.load(a.file, { mmap: a.mmap });
    const t1 = now();
    count = touch(sd).count;
    const t2 = now();
    if (r > 0) {
      loadS.push(t1 - t0);
      totalS.push(t2 - t0);
    }
    sd = null;
  }
  if (count !== a.expectTensors) throw new Error(`loaded ${count} tensors from ${a.file}, expected ${a.expectTensors}`);
  return { load_s: loadS, total_s: totalS };
}

/**
 * Saves the loaded state dict `a.runs` times (after a warm-up) in each of `a.modes`
 * (`fast`: `durable: false`; `durable`: the default), alternating the modes run by run so
 * drift on a shared machine hits both alike.
 */
function benchSave(torch, a) {
  const sd = torch.load(a.src, { mmap: false });
  const { count } = touch(sd);
  if (count !== a.expectTensors) throw new Error(`loaded ${count} tensors from ${a.src}, expected ${a.expectTensors}`);
  let tensorBytes = 0;
  for (const t of tensors(sd)) tensorBytes += t.untypedStorage().bytes.byteLength;
  const modes = a.modes ?? ['durable'];
  const byMode = {};
  for (const m of modes) byMode[m] = { times_s: [], peak_above_base: [], rss_delta: [] };
  for (let r = 0; r <= a.runs; r++) {
    for (const m of modes) {
      fs.rmSync(a.out, { force: true });
      // Flush earlier runs' dirty pages so no run pays for another's writeback.
      spawnSync('sync');
      gc();
      const base = statusBytes('VmRSS');
      const rss0 = process.memoryUsage().rss;
      const canReset = resetPeak();
      const t0 = now();
      torch.save(sd, a.out, { durable: m === 'durable' });
      const t1 = now();
      if (r > 0) {
        const o = byMode[m];
        o.times_s.push(t1 - t0);
        o.rss_delta.push(process.memoryUsage().rss - rss0);
        // Clamped at 0: the kernel's RSS counters lag by a few pages.
        if (canReset) o.peak_above_base.push(Math.max(0, statusBytes('VmHWM') - base));
      }
    }
  }
  return { by_mode: byMode, tensor_bytes: tensorBytes, bytes: fs.statSync(a.out).size };
}

/**
 * `count` loads of one file in a loop, each result touched and dropped (issue 15): `mode`
 * `sync` (torch.load) or `async` (await torch.loadAsync); `dispose` frees each result with
 * torch.dispose, else it is only dropped. Peak RSS (VmHWM), loop time, each load's time, RSS
 * before and after (after one global.gc(), no event-loop turn in between).
 */
async function benchLoop(torch, a) {
  gc();
  const start = statusBytes('VmRSS') / 1024;
  resetPeak();
  const each = [];
  const t0 = now();
  for (let i = 0; i < a.count; i++) {
    const t = now();
    const opts = { mmap: a.mmap };
    // `let` and cleared, as Python's `touch(torch.load(f))` drops its result at once: a
    // loop's `const` stays in V8's frame until the next iteration overwrites it.
    let sd = a.mode === 'async' ? await torch.loadAsync(a.file, opts) : torch.load(a.file, opts);
    touch(sd);
    if (a.dispose) torch.dispose(sd);
    sd = null;
    each.push(now() - t);
  }
  const loop_s = now() - t0;
  const peak = statusBytes('VmHWM') / 1024;
  gc();
  const after = statusBytes('VmRSS') / 1024;
  // What a server sees a moment later: finalizers run on an event-loop turn and the storage
  // pool unmaps what it kept after 1 s idle (crate/napi-common/src/pool.rs).
  // The gc runs on a fresh turn: an async loop's last `await` job still holds its last result.
  await new Promise((r) => setImmediate(r));
  gc();
  await new Promise((r) => setTimeout(r, 1500));
  return { loop_s, each_s: each, start_kib: start, peak_kib: peak, after_kib: after, idle_kib: statusBytes('VmRSS') / 1024 };
}

async function main() {
  const a = JSON.parse(process.argv[2]);
  const torch = requireDist(['load', 'save']);
  const fn = { load: benchLoad, save: benchSave, loop: benchLoop }[a.cmd];
  if (!fn) throw new Error(`unknown command ${a.cmd}`);
  process.stdout.write(JSON.stringify(await fn(torch, a)) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e.stack ?? e}\n`);
  process.exit(1);
});
