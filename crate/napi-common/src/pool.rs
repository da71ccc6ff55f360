//! Memory for eager storages: anonymous mappings the addon owns, reused across loads.
//!
//! Why not JS-owned buffers (Node's allocator): V8 frees those in its array-buffer sweeper,
//! on another thread and some time after the collection, into glibc's heap. A load right
//! after a collection therefore allocated before the frees landed, the heap grew around the
//! freed blocks, and a loop of 1 GiB loads sat at 3 GiB of RSS however early V8 collected.
//! A fresh buffer also pays one page fault (and a zeroed page) per 4 KiB: 262,144 faults, a
//! third of a 1 GiB load. Here:
//!
//! * a storage's memory is an anonymous mapping exposed as an external ArrayBuffer
//!   ([`crate::release::external_releasable`]), so it comes back to us, on the JS thread, the
//!   moment V8 has collected its buffer (`reap`), `torch.dispose` detached it, or Node ran
//!   its finalizer;
//! * a mapping that comes back is kept for the next load of about its size (a loop of loads,
//!   a hot reload), as torch's CPU allocator reuses glibc's freed blocks: no page faults, no
//!   zeroing;
//! * kept mappings are bounded ([`POOL_MAX`]) and given back to the system after [`IDLE`]
//!   unused, by a background thread, so the unmapping of a 1 GiB block never runs on the
//!   event loop and an idle server returns to its resting RSS;
//! * only storages of at least [`POOL_FROM`] come from here: a mapping costs a VMA and a
//!   whole page, and glibc's heap serves small blocks well.
//!
//! Where the runtime refuses external buffers (Electron's memory cage) the caller falls back
//! to JS-owned buffers; a mapping handed out there comes straight back here.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// At most this many bytes of unused mappings are kept.
pub const POOL_MAX: usize = 4 << 30;

/// A kept mapping unused for this long is unmapped.
pub const IDLE: Duration = Duration::from_secs(1);

/// Storages smaller than this are not pooled (callers give them JS-owned buffers): glibc's
/// heap serves small blocks well, and a mapping each would cost a VMA and a page apiece.
pub const POOL_FROM: usize = 1 << 20;

/// At most this many mappings are kept, so [`take`]'s scan stays short.
pub const KEPT_MAX: usize = 256;

const PAGE: usize = 4096;

/// Writable anonymous memory of at least the asked length (whole pages, up to an eighth more
/// when reused); back to the pool when dropped.
pub struct Block {
    map: Option<memmap2::MmapMut>,
}

impl Block {
    /// The start of the block's memory.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.map
            .as_mut()
            .map_or(std::ptr::null_mut(), |m| m.as_mut_ptr())
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            give_back(map);
        }
    }
}

struct Kept {
    map: memmap2::MmapMut,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    kept: Vec<Kept>,
    bytes: usize,
    /// Bytes reused instead of mapped fresh (for benches).
    reused: u64,
    trimmer: bool,
}

fn pool() -> &'static (Mutex<Pool>, Condvar) {
    static POOL: OnceLock<(Mutex<Pool>, Condvar)> = OnceLock::new();
    POOL.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, Pool> {
    pool().0.lock().unwrap_or_else(|p| p.into_inner())
}

/// A block of at least `len` (non-zero) bytes: a kept mapping of about that size (at most
/// an eighth larger, so a small load never pins a big block), else a fresh one. A reused
/// block holds the bytes of its last use; the caller overwrites all `len` of them.
pub fn take(len: usize) -> std::io::Result<Block> {
    let want = len.div_ceil(PAGE) * PAGE;
    {
        let mut p = lock();
        let best = p
            .kept
            .iter()
            .enumerate()
            .filter(|(_, k)| k.map.len() >= want && k.map.len() - want <= want / 8)
            .min_by_key(|(_, k)| k.map.len())
            .map(|(i, _)| i);
        if let Some(i) = best {
            let k = p.kept.swap_remove(i);
            p.bytes -= k.map.len();
            p.reused += k.map.len() as u64;
            return Ok(Block { map: Some(k.map) });
        }
    }
    let map = memmap2::MmapOptions::new().len(want).map_anon()?;
    Ok(Block { map: Some(map) })
}

fn give_back(map: memmap2::MmapMut) {
    let len = map.len();
    let mut p = lock();
    if len > POOL_MAX {
        drop(p);
        drop(map);
        return;
    }
    // Oldest first out: what a loop reuses is what it freed last.
    let mut evicted = Vec::new();
    while (p.bytes + len > POOL_MAX || p.kept.len() >= KEPT_MAX) && !p.kept.is_empty() {
        let old = p.kept.remove(0);
        p.bytes -= old.map.len();
        evicted.push(old);
    }
    p.bytes += len;
    p.kept.push(Kept {
        map,
        since: Instant::now(),
    });
    ensure_trimmer(&mut p);
    drop(p);
    pool().1.notify_one();
    drop(evicted); // unmapped without the lock (rare: only past a bound)
}

fn ensure_trimmer(p: &mut Pool) {
    if !p.trimmer {
        p.trimmer = true;
        let spawned = std::thread::Builder::new()
            .name("torchsave-pool".into())
            .spawn(trim_forever);
        if spawned.is_err() {
            p.trimmer = false;
        }
    }
}

/// The background trimmer: unmaps kept blocks idle for [`IDLE`], sleeping while none is kept.
fn trim_forever() {
    let (m, cv) = pool();
    let mut p = m.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if p.kept.is_empty() {
            p = cv.wait(p).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let now = Instant::now();
        let mut old = Vec::new();
        let mut i = 0;
        while i < p.kept.len() {
            if p.kept
                .get(i)
                .is_some_and(|k| now.duration_since(k.since) >= IDLE)
            {
                let k = p.kept.swap_remove(i);
                p.bytes -= k.map.len();
                old.push(k);
            } else {
                i += 1;
            }
        }
        let next = p
            .kept
            .iter()
            .map(|k| IDLE.saturating_sub(now.duration_since(k.since)))
            .min()
            .unwrap_or(IDLE);
        drop(p);
        drop(old); // unmapped without the lock, off the JS thread
        std::thread::sleep(next.max(Duration::from_millis(50)));
        p = m.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// (bytes kept now, bytes reused so far), for tests and benches.
pub fn stats() -> (usize, u64) {
    let p = lock();
    (p.bytes, p.reused)
}
