//! External ArrayBuffers whose memory can be given back before Node runs their finalizer.
//!
//! Why: Node runs the finalizer of an external ArrayBuffer on a later turn of the event loop
//! (`SetImmediate` after the garbage collector freed the backing store), never inside the
//! collection. A synchronous loop of mmap loads therefore keeps every dropped file mapping
//! until it yields, although V8 collected the buffers long before (10 GiB of file pages after
//! ten 1 GiB loads). Two ways out, both safe because JS can no longer reach the memory:
//!
//! * [`reap`]: each buffer made here has a weak reference; V8 clears it during the collection
//!   that finds the buffer dead, so a cleared reference means no JS value views the memory and
//!   its owner (the mapping) can be dropped at once. The addons call `reap` at the start of
//!   every load, i.e. right where a loop would otherwise pile mappings up.
//! * [`release`]: `torch.dispose` detaches the buffer (every view reads as empty from then
//!   on) and drops the owner now.
//!
//! The finalizer still runs later; it then finds the owner already dropped. Entries live in
//! a per-thread registry (each JS thread, i.e. each worker, has its own env and buffers).

use crate::buffer::{arraybuffer_info, detach, external_arraybuffer, with_referenced, Referenced};
use napi::{sys, Result};
use std::cell::RefCell;
use std::ptr;
use std::sync::{Arc, Mutex};

type Owner = Box<dyn Send + Sync>;

/// The owner of an external buffer's memory, droppable before the finalizer runs. While it
/// holds the owner, `len` bytes are reported to V8 ([`crate::memory::adjust`]): V8's own
/// count of external ArrayBuffers goes negative under churn (Node 20: `external` read
/// -2 GiB in a loop of 1 GiB mapped loads), so without this a loop of mapped loads was
/// collected only every third or fourth load. Reported once per mapping, never per view.
struct Slot {
    owner: Mutex<Option<Owner>>,
    env: usize,
    len: usize,
}

impl Slot {
    /// Drops the owner (on the JS thread: reap, release, or the finalizer) and un-reports it.
    /// Dropped here, not on a background thread: a mapping unmapped later was still resident
    /// while the next load touched its own (three 1 GiB mappings at once in a loop, not two).
    fn drop_owner(&self) -> bool {
        let had = match self.owner.lock() {
            Ok(mut g) => g.take().is_some(),
            Err(poisoned) => poisoned.into_inner().take().is_some(),
        };
        if had {
            crate::memory::adjust(
                &napi::Env::from_raw(self.env as sys::napi_env),
                -(self.len as i64),
            );
        }
        had
    }
}

/// What the external buffer's finalizer owns: dropping it (on the JS thread) drops the owner
/// if reap/release did not. Not a `Drop` of [`Slot`] itself: the registry's clones are
/// dropped by the thread-local destructor at exit, when no Node-API call may run.
struct Finalized(Arc<Slot>);

impl Drop for Finalized {
    fn drop(&mut self) {
        self.0.drop_owner();
    }
}

struct Entry {
    data: usize,
    len: usize,
    weak: sys::napi_ref,
    slot: Arc<Slot>,
}

thread_local! {
    static LIVE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// An external ArrayBuffer over `len` bytes at `data` whose `owner` can be dropped early by
/// [`reap`] (once V8 collected the buffer) or [`release`] (after detaching it); `None` where
/// the runtime refuses external buffers (Electron: the owner is dropped, the caller copies).
///
/// # Safety
/// As [`crate::buffer::external_arraybuffer`]: `data` points to `len` (non-zero) writable
/// bytes valid while `owner` lives, and no other ArrayBuffer starts at `data`.
pub unsafe fn external_releasable<T: Send + Sync + 'static>(
    env: sys::napi_env,
    data: *mut u8,
    len: usize,
    owner: T,
) -> Result<Option<sys::napi_value>> {
    let slot = Arc::new(Slot {
        owner: Mutex::new(Some(Box::new(owner))),
        env: env as usize,
        len,
    });
    crate::memory::adjust(&napi::Env::from_raw(env), len as i64);
    // SAFETY: the caller's contract; the memory lives while `slot` holds the owner, and the
    // owner is dropped early only once no JS value can reach the buffer (see the module doc).
    let made = unsafe { external_arraybuffer(env, data, len, Finalized(slot.clone())) }?;
    if let Some(ab) = made {
        // SAFETY: `ab` is the buffer just made on `env`.
        unsafe { crate::pressure::track(&napi::Env::from_raw(env), ab, len) };
        let mut weak = ptr::null_mut();
        // SAFETY: a weak (count 0) reference to the buffer just made.
        let status = unsafe { sys::napi_create_reference(env, ab, 0, &mut weak) };
        if status == sys::Status::napi_ok {
            LIVE.with(|l| {
                l.borrow_mut().push(Entry {
                    data: data as usize,
                    len,
                    weak,
                    slot,
                })
            });
        }
        // Reporting `len` may have made V8 collect: give back what it found dead now.
        reap(&napi::Env::from_raw(env));
    }
    Ok(made)
}

/// Drops the owners of every buffer made by [`external_releasable`] that V8 has collected.
/// Returns the bytes given back.
pub fn reap(env: &napi::Env) -> usize {
    let env = env.raw();
    LIVE.with(|l| {
        let mut live = l.borrow_mut();
        let mut freed = 0;
        live.retain(|e| {
            let collected = with_referenced(env, e.weak, |r| matches!(r, Referenced::Collected));
            if !collected {
                return true;
            }
            if e.slot.drop_owner() {
                freed += e.len;
            }
            // SAFETY: the reference is not used again.
            unsafe { sys::napi_delete_reference(env, e.weak) };
            false
        });
        freed
    })
}

/// Detaches `ab` and gives its memory back now: the owner of a buffer made by
/// [`external_releasable`] is dropped, a JS-owned buffer is freed by V8. Any view of it reads
/// as empty afterwards. `false` when there was nothing to free (already detached, or not
/// detachable).
pub fn release(env: &napi::Env, ab: &napi::Unknown<'_>) -> Result<bool> {
    let ab = napi::JsValue::raw(ab);
    let (data, _) = arraybuffer_info(env, ab)?;
    let napi_env = env;
    let env = env.raw();
    let entry = LIVE.with(|l| {
        let mut live = l.borrow_mut();
        let pos = live.iter().position(|e| {
            if e.data != data as usize {
                return false;
            }
            with_referenced(env, e.weak, |r| matches!(r, Referenced::Live(_)))
        });
        pos.map(|p| live.swap_remove(p))
    });
    let detached = detach(napi_env, ab)?;
    if let Some(e) = entry {
        // SAFETY: the reference is not used again.
        unsafe { sys::napi_delete_reference(env, e.weak) };
        if detached {
            e.slot.drop_owner();
        } else {
            // Not detachable: JS still sees the memory, so the owner must stay.
            LIVE.with(|l| l.borrow_mut().push(e.rewrap(env, ab)));
            return Ok(false);
        }
    }
    Ok(detached)
}

impl Entry {
    fn rewrap(self, env: sys::napi_env, ab: sys::napi_value) -> Entry {
        let mut weak = ptr::null_mut();
        // SAFETY: a new weak reference to the live buffer.
        unsafe { sys::napi_create_reference(env, ab, 0, &mut weak) };
        Entry { weak, ..self }
    }
}

/// Bytes of external memory this thread's buffers still hold (for tests and benches).
pub fn live_bytes() -> usize {
    LIVE.with(|l| l.borrow().iter().map(|e| e.len).sum())
}
