//! When the addon makes V8 collect before a big allocation, and why.
//!
//! V8 frees a dropped ArrayBuffer's memory only in a collection, and picks the moment from its
//! heap and its external-memory count. A reported allocation past the soft limit (64 MiB over
//! the count after the last mark-compact) only *starts incremental marking*, which a
//! synchronous loop hardly advances: in a loop of 1 GiB eager loads two or three dropped
//! results were still alive at each new load (2.5-3.2 GiB peak in `__test__/memory.test.ts`,
//! and the figure moved with V8's timing). Only past the hard limit (half the old generation's
//! maximum over that count) does V8 collect at once, synchronously. Node-API has no `gc()`, so
//! [`collect_now`] crosses the hard limit on purpose: it reports 1 PiB and takes it back. V8
//! runs one full collection inside the first call and resets its limits after it; the second
//! call puts the count back where it was (V8 lowers its baseline with it).
//!
//! Policy, generational so that collections stay proportional to what was allocated:
//! buffers of at least [`TRACK_FROM`] that the addon hands to JS (eager storages, file
//! mappings) are [`track`]ed by weak references. Before each such allocation,
//! [`before_allocation`] collects when the tracked bytes made since the last forced collection
//! and still uncollected (`young`) reach both [`COLLECT_FROM`] and the tracked bytes that
//! survived it (`old`). Then:
//! * a loop that drops each result collects before every load: one result is alive at a time,
//!   as with Python's reference counting (1 GiB loads: 1.1 GiB peak, was 2.5-3.2 GiB);
//! * a server that keeps a 1 GiB model and loads 64 MiB files collects every 16 loads, so
//!   garbage stays below what is kept, and a collection's cost is paid once per its size in
//!   allocations;
//! * disposed buffers (detached: length 0) count as gone, so `torch.dispose` loops never
//!   collect.
//!
//! Mappings found collected are unmapped at once by [`crate::release::reap`], which runs after
//! every forced collection. Each JS thread (a worker has its own env) has its own tracker.

use crate::buffer::{with_referenced, Referenced};
use napi::sys;
use std::cell::RefCell;
use std::ptr;

/// Buffers smaller than this are left to V8's own heuristics (and cost no reference).
pub const TRACK_FROM: usize = 1 << 20;

/// Garbage below this never forces a collection: V8's incremental marking covers it.
pub const COLLECT_FROM: usize = 64 << 20;

/// The amount [`collect_now`] reports: far past any hard limit, and below the 2^60 that V8
/// refuses with a CHECK (an abort).
const OVER_ANY_LIMIT: i64 = 1 << 50;

struct Tracked {
    weak: sys::napi_ref,
    len: usize,
    /// Made after the last forced collection.
    young: bool,
}

#[derive(Default)]
struct Tracker {
    env: usize,
    entries: Vec<Tracked>,
    /// Bytes of young entries at their last count (an upper bound: entries only die).
    young_bound: usize,
    /// Forced collections so far (for tests and benches).
    forced: u64,
}

thread_local! {
    static TRACKER: RefCell<Tracker> = RefCell::new(Tracker::default());
}

/// Bytes each entry still holds: 0 once V8 collected its buffer or `dispose` detached it.
/// (`with_referenced` looks in its own handle scope: a handle left in the caller's scope would
/// keep the buffer alive through the very collection this module is about to ask for.)
fn held(env: sys::napi_env, weak: sys::napi_ref) -> usize {
    with_referenced(env, weak, |r| {
        let Referenced::Live(v) = r else { return 0 };
        let mut data = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: `v` is the ArrayBuffer the reference was made for (detached: length 0).
        let status = unsafe { sys::napi_get_arraybuffer_info(env, v, &mut data, &mut len) };
        if status == sys::Status::napi_ok {
            len
        } else {
            0
        }
    })
}

impl Tracker {
    /// Forgets what another env (a torn-down worker's, on a reused thread) left behind: its
    /// references died with it.
    fn bind(&mut self, env: sys::napi_env) {
        if self.env != env as usize {
            self.entries.clear();
            self.young_bound = 0;
            self.env = env as usize;
        }
    }

    /// Drops dead entries; returns (young, old) bytes still held.
    fn poll(&mut self, env: sys::napi_env) -> (usize, usize) {
        let (mut young, mut old) = (0, 0);
        self.entries.retain(|e| {
            if held(env, e.weak) == 0 {
                // SAFETY: the reference is not used again.
                unsafe { sys::napi_delete_reference(env, e.weak) };
                return false;
            }
            if e.young {
                young += e.len;
            } else {
                old += e.len;
            }
            true
        });
        self.young_bound = young;
        (young, old)
    }
}

/// Runs one synchronous full collection of this env's isolate (see the module doc).
pub fn collect_now(env: &napi::Env) {
    crate::memory::adjust(env, OVER_ANY_LIMIT);
    crate::memory::adjust(env, -OVER_ANY_LIMIT);
}

/// Called before the addon allocates `bytes` for JS values: collects first when the tracked
/// young garbage may be worth it (see the module doc for the rule).
pub fn before_allocation(env: &napi::Env, bytes: usize) {
    if bytes < TRACK_FROM {
        return;
    }
    let raw = env.raw();
    let collect = TRACKER.with(|t| {
        let mut t = t.borrow_mut();
        t.bind(raw);
        if t.young_bound < COLLECT_FROM {
            return false;
        }
        let (young, old) = t.poll(raw);
        young >= COLLECT_FROM && young >= old
    });
    if !collect {
        return;
    }
    collect_now(env);
    crate::release::reap(env);
    TRACKER.with(|t| {
        let mut t = t.borrow_mut();
        t.poll(raw);
        for e in &mut t.entries {
            e.young = false;
        }
        t.young_bound = 0;
        t.forced += 1;
    });
}

/// Tracks `ab` (an ArrayBuffer of `len` bytes just handed to JS) for [`before_allocation`].
///
/// # Safety
/// `ab` must be a live ArrayBuffer handle of `env`.
pub unsafe fn track(env: &napi::Env, ab: sys::napi_value, len: usize) {
    if len < TRACK_FROM {
        return;
    }
    let raw = env.raw();
    let mut weak = ptr::null_mut();
    // SAFETY: a weak (count 0) reference to a live ArrayBuffer of this env.
    if unsafe { sys::napi_create_reference(raw, ab, 0, &mut weak) } != sys::Status::napi_ok {
        return;
    }
    TRACKER.with(|t| {
        let mut t = t.borrow_mut();
        t.bind(raw);
        t.entries.push(Tracked {
            weak,
            len,
            young: true,
        });
        t.young_bound += len;
    });
}

/// How many collections [`before_allocation`] forced on this thread (for tests and benches).
pub fn forced_collections() -> u64 {
    TRACKER.with(|t| t.borrow().forced)
}
