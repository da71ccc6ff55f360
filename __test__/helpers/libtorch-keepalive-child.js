// Run by __test__/libtorch-bridge.test.ts as `node --expose-gc <this> <addon.node>`: memory
// that libtorch borrows from JS stays alive while libtorch uses it, however hard the GC runs,
// and is released once libtorch is done with it (and the other way round for a libtorch
// storage exposed to JS as an ArrayBuffer). Prints one JSON line.
'use strict';
// The addon has no rpath: load it through the facade's loader, which preloads libtorch's
// libraries first (TORCHSAVE_LIBTORCH, see ts/libtorch/addon.ts), and check it is the same file.
const state = require('../../dist/libtorch/addon.js').loadLibtorch();
if (state.path !== process.argv[2]) throw new Error(`loaded ${state.path} (${state.reason}), not ${process.argv[2]}`);
const addon = state.addon;

const N = 1 << 16;
const expected = (i) => (i % 1000) * 0.25;

function churn() {
  // Garbage of every size class, then full collections.
  for (let k = 0; k < 20; k++) {
    const junk = [];
    for (let j = 0; j < 50; j++) junk.push(new ArrayBuffer(64 * 1024), new Float64Array(512));
    junk.length = 0;
  }
  for (let k = 0; k < 5; k++) global.gc();
}

async function settle() {
  // FinalizationRegistry callbacks and WeakRef clearing happen between tasks.
  for (let k = 0; k < 5; k++) {
    churn();
    await new Promise((r) => setTimeout(r, 10));
  }
}

let bufferCollected = false;
const registry = new FinalizationRegistry(() => {
  bufferCollected = true;
});

/** A float32 libtorch tensor over a JS ArrayBuffer that nothing in JS references afterwards. */
function makeBorrowed() {
  const buf = new ArrayBuffer(N * 4 + 16);
  const f = new Float32Array(buf, 16, N);
  for (let i = 0; i < N; i++) f[i] = expected(i);
  registry.register(buf, 'buf');
  const storage = addon.NativeTensor.fromStorage(buf, 16, N * 4);
  return storage.viewAs('float32', [N], [1], 0);
}

function check(t) {
  // Read through libtorch ops (a reduction and a copy into new memory).
  let want = 0;
  for (let i = 0; i < N; i++) want += expected(i);
  const sum = t.to('float64', null, false, true).sum().item();
  const copy = new Float32Array(t.mulScalar(1).storageBuffer(true));
  let bad = 0;
  for (let i = 0; i < N; i++) if (copy[i] !== expected(i)) bad++;
  return { sum, want, bad };
}

(async () => {
  const out = {};
  let t = makeBorrowed();
  await settle();
  out.bufferCollectedWhileBorrowed = bufferCollected;
  out.borrowed = check(t);

  // Drop the tensor: libtorch's deleter queues the reference, the next addon call releases it.
  t = null;
  await settle();
  out.released = addon.NativeTensor.drainReleased();
  await settle();
  out.bufferCollectedAfterRelease = bufferCollected;

  // The other way: a libtorch-owned storage exposed to JS without a copy outlives its tensor.
  let owned = addon.NativeTensor.full([N], 1.5, 'float32', 'cpu');
  const ab = owned.storageBuffer();
  owned = null;
  await settle();
  const view = new Float32Array(ab);
  out.ownedLength = view.length;
  out.ownedBad = view.filter((v) => v !== 1.5).length;
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
