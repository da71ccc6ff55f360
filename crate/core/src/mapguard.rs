//! Mapped files that change underneath: no SIGBUS, ever, and a coded error at the next call.
//!
//! A file mapping has one fatal hazard: when another process truncates the file (what
//! Python's `torch.save(obj, same_path)` does first, opening the path with `'wb'`), touching
//! a page past the new end raises SIGBUS, and the default action kills the process. JS holds
//! external ArrayBuffers straight into our mappings, so any typed-array read can be that touch.
//!
//! Design (Linux; see "Other platforms" below):
//! * Every mapping the core makes of a file is registered here ([`Guard::register`]) in a
//!   fixed array of [`SLOTS`] slots of atomics: start, length, a state word and a `changed`
//!   flag. The signal handler reads nothing else, takes no lock and allocates nothing.
//! * One SIGBUS handler (`SA_SIGINFO | SA_ONSTACK`), installed once on the first registration.
//!   For a fault address inside a registered mapping it maps anonymous zero pages
//!   (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`, a plain syscall) over the range from the
//!   faulting page to the mapping's end, sets the slot's `changed` flag and returns: the
//!   faulting read resumes and reads zeros. From the faulting page to the end, because the
//!   file's end is one point: every later page is past it too, one fault covers them all, and
//!   the mapping stays one or two VMAs (a page at a time would exhaust `vm.max_map_count` on a
//!   large tensor). Private pages JS had written in that range are lost (they were copies of
//!   a file that no longer has those bytes).
//! * A fault anywhere else goes to the handler that was installed before ours (its
//!   `SA_SIGINFO` or plain form), or, where that was `SIG_DFL`/`SIG_IGN`, to the default
//!   action (reset, re-raise): the process dies exactly as it would have without us.
//! * Library calls ask [`check_addr`] / [`Guard::check`]: `E_FILE_CHANGED` when the flag is
//!   set, or when the path still names the same file (device, inode) but its size or mtime
//!   differ from those at mapping time (a truncation no page has touched yet, or an overwrite
//!   in place: `MAP_PRIVATE` does not protect pages we never wrote, on Linux they show the
//!   file's new bytes). The verdict is sticky. A path that is gone or names another inode
//!   (deleted, or replaced by an atomic rename) is fine: our mapping holds the old inode,
//!   whose pages stay valid until we unmap.
//! * A slot's state word is `generation << 2 | tag` (free, busy, live): the handler reads it
//!   before and after reading start/length and ignores the slot when it moved. Unregistration
//!   (free) happens before the unmap, and a thread can only fault on a mapping it still holds.
//! * When every slot is taken the caller reads the file eagerly instead (no mapping, so no
//!   hazard): more than [`SLOTS`] files mapped at once cost memory, never a crash.
//!
//! Why in the core (not crate/napi-common): the core makes the mappings, and the hazard is
//! the core's (a Rust user of `load_file` would die the same way); the module uses `libc`
//! only, nothing of Node.
//!
//! Other platforms: Windows refuses to truncate a file that is mapped
//! (`ERROR_USER_MAPPED_FILE`), so there is nothing to catch. On macOS and other unixes this
//! module is a no-op (registration succeeds, checks compare size/mtime only): a truncated
//! mapped file there still raises SIGBUS, as `torch.load(mmap=True)` does; pass `mmap: false`
//! where another program may rewrite the file.

use crate::error::{Error, ErrorCode, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many mappings can be guarded at once (the registry's fixed size).
pub const SLOTS: usize = 8192;

const FREE: u64 = 0;
const BUSY: u64 = 1;
const LIVE: u64 = 2;

struct Slot {
    state: AtomicU64,
    start: AtomicUsize,
    len: AtomicUsize,
    changed: AtomicBool,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            state: AtomicU64::new(FREE),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            changed: AtomicBool::new(false),
        }
    }
}

/// The lock-free registry the signal handler reads (a type so tests can make small ones).
struct Registry<const N: usize> {
    slots: [Slot; N],
    /// One past the highest slot ever claimed: lookups scan no further.
    high: AtomicUsize,
}

impl<const N: usize> Registry<N> {
    const fn new() -> Self {
        Registry {
            slots: [const { Slot::new() }; N],
            high: AtomicUsize::new(0),
        }
    }

    fn claim(&self, start: usize, len: usize) -> Option<usize> {
        for (i, s) in self.slots.iter().enumerate() {
            let cur = s.state.load(Ordering::Acquire);
            if cur & 3 != FREE {
                continue;
            }
            let generation = (cur >> 2).wrapping_add(1);
            let busy = generation << 2 | BUSY;
            if s.state
                .compare_exchange(cur, busy, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            s.start.store(start, Ordering::Relaxed);
            s.len.store(len, Ordering::Relaxed);
            s.changed.store(false, Ordering::Relaxed);
            s.state.store(generation << 2 | LIVE, Ordering::Release);
            self.high.fetch_max(i + 1, Ordering::AcqRel);
            return Some(i);
        }
        None
    }

    fn release(&self, i: usize) {
        if let Some(s) = self.slots.get(i) {
            let cur = s.state.load(Ordering::Acquire);
            s.state.store(cur & !3, Ordering::Release);
        }
    }

    /// The live slot whose range holds `addr`, with its range. Async-signal-safe.
    fn find(&self, addr: usize) -> Option<(usize, usize, usize)> {
        let high = self.high.load(Ordering::Acquire).min(N);
        for i in 0..high {
            let s = self.slots.get(i)?;
            let before = s.state.load(Ordering::Acquire);
            if before & 3 != LIVE {
                continue;
            }
            let start = s.start.load(Ordering::Relaxed);
            let len = s.len.load(Ordering::Relaxed);
            if s.state.load(Ordering::Acquire) != before {
                continue;
            }
            if addr >= start && addr - start < len {
                return Some((i, start, len));
            }
        }
        None
    }

    fn changed(&self, i: usize) -> bool {
        self.slots
            .get(i)
            .is_some_and(|s| s.changed.load(Ordering::Acquire))
    }

    fn mark(&self, i: usize) {
        if let Some(s) = self.slots.get(i) {
            s.changed.store(true, Ordering::Release);
        }
    }
}

static REGISTRY: Registry<SLOTS> = Registry::new();

/// Zero-page replacements the handler made (all mappings, this process's lifetime).
static FAULTS: AtomicU64 = AtomicU64::new(0);

/// How the file looked when it was mapped; read only by normal code, never the handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl Identity {
    /// The identity of the open `file` (opened from `path`).
    pub fn of(file: &std::fs::File, path: &std::path::Path) -> std::io::Result<Identity> {
        let md = file.metadata()?;
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Identity::from_metadata(path, &md))
    }

    fn from_metadata(path: PathBuf, md: &std::fs::Metadata) -> Identity {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Identity {
                path,
                dev: md.dev(),
                ino: md.ino(),
                size: md.size(),
                mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            Identity {
                path,
                dev: 0,
                ino: 0,
                size: md.len(),
                mtime_ns,
            }
        }
    }

    /// What the path says now: `Some(true)` the same file with other contents, `Some(false)`
    /// unchanged, `None` the path no longer names this file (deleted or replaced: our
    /// mapping keeps the old one, which is fine).
    fn changed_on_disk(&self) -> Option<bool> {
        let md = std::fs::metadata(&self.path).ok()?;
        let now = Identity::from_metadata(self.path.clone(), &md);
        if cfg!(unix) && (now.dev, now.ino) != (self.dev, self.ino) {
            return None;
        }
        Some(now.size != self.size || now.mtime_ns != self.mtime_ns)
    }
}

/// Slot index → identity, for the checks (a lock is fine here: never the handler).
static IDENTITIES: Mutex<Vec<Option<Identity>>> = Mutex::new(Vec::new());

fn set_identity(i: usize, id: Option<Identity>) {
    let mut t = match IDENTITIES.lock() {
        Ok(t) => t,
        Err(p) => p.into_inner(),
    };
    if t.len() <= i {
        t.resize(i + 1, None);
    }
    if let Some(slot) = t.get_mut(i) {
        *slot = id;
    }
}

fn identity(i: usize) -> Option<Identity> {
    let t = match IDENTITIES.lock() {
        Ok(t) => t,
        Err(p) => p.into_inner(),
    };
    t.get(i).cloned().flatten()
}

/// A registered mapping; unregisters on drop (drop it before unmapping).
#[derive(Debug)]
pub struct Guard {
    slot: usize,
}

impl Guard {
    /// Registers `len` bytes at `start` (a file mapping of the file `id` describes), installing
    /// the handler on first use. `None` when the registry is full or the handler cannot be
    /// installed: the caller must not keep a mapping it cannot guard.
    pub fn register(start: *const u8, len: usize, id: Identity) -> Option<Guard> {
        if !imp::install() {
            return None;
        }
        let slot = REGISTRY.claim(start as usize, len)?;
        set_identity(slot, Some(id));
        Some(Guard { slot })
    }

    /// `E_FILE_CHANGED` once the file was seen to change (see the module docs).
    pub fn check(&self) -> Result<()> {
        check_slot(self.slot)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        set_identity(self.slot, None);
        REGISTRY.release(self.slot);
    }
}

fn check_slot(i: usize) -> Result<()> {
    let id = identity(i);
    if REGISTRY.changed(i) {
        return Err(changed_error(id.as_ref(), true));
    }
    if let Some(id) = &id {
        if id.changed_on_disk() == Some(true) {
            REGISTRY.mark(i);
            return Err(changed_error(Some(id), false));
        }
    }
    Ok(())
}

fn changed_error(id: Option<&Identity>, faulted: bool) -> Error {
    let what = if faulted {
        "the mapped file shrank after it was loaded (pages past its new end now read as zeros)"
    } else {
        "the mapped file was modified after it was loaded (its size or mtime changed: tensors may show the new bytes)"
    };
    let e = Error::new(
        ErrorCode::FileChanged,
        format!(
            "{what}; load it again, or load with mmap: false when another program may rewrite it"
        ),
    );
    match id {
        Some(id) => e.in_file(id.path.display().to_string()),
        None => e,
    }
}

/// True when `addr` lies inside a guarded mapping.
pub fn is_guarded(addr: *const u8) -> bool {
    REGISTRY.find(addr as usize).is_some()
}

/// [`Guard::check`] for the mapping holding `addr`; `Ok` for memory that is not a guarded
/// mapping (heap, JS memory, a copy).
pub fn check_addr(addr: *const u8) -> Result<()> {
    match REGISTRY.find(addr as usize) {
        Some((i, _, _)) => check_slot(i),
        None => Ok(()),
    }
}

/// How many faults the handler has turned into zero pages in this process.
pub fn faults_handled() -> u64 {
    FAULTS.load(Ordering::Relaxed)
}

#[cfg(target_os = "linux")]
mod imp {
    //! The handler. Everything reachable from `on_sigbus` is async-signal-safe: atomic loads
    //! and stores, `mmap`, `sigaction`, `raise`, and errno saved and restored.
    use super::{FAULTS, REGISTRY};
    use std::cell::UnsafeCell;
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Once;

    struct Prev(UnsafeCell<libc::sigaction>);
    // SAFETY: written once inside `INSTALL` (before READY is set), only read afterwards.
    unsafe impl Sync for Prev {}

    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask, no flags).
    static PREV: Prev = Prev(UnsafeCell::new(unsafe { std::mem::zeroed() }));
    static READY: AtomicBool = AtomicBool::new(false);
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    static INSTALL: Once = Once::new();

    pub fn install() -> bool {
        INSTALL.call_once(|| {
            // SAFETY: sysconf with a constant name.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            // SAFETY: a fully initialised sigaction; PREV receives the old one before any
            // fault can reach our handler through READY.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigbus as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(libc::SIGBUS, &sa, PREV.0.get()) == 0 {
                    READY.store(true, Ordering::Release);
                }
            }
        });
        READY.load(Ordering::Acquire)
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
        // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
        let errno = unsafe { *libc::__errno_location() };
        let addr = if info.is_null() {
            0
        } else {
            // SAFETY: as above; si_addr is meaningful for SIGBUS.
            unsafe { (*info).si_addr() as usize }
        };
        if addr != 0 {
            if let Some((slot, start, len)) = REGISTRY.find(addr) {
                let page = PAGE.load(Ordering::Relaxed);
                let from = addr & !(page - 1);
                let end = (start + len).div_ceil(page) * page;
                // SAFETY: [from, end) lies inside our own live mapping (page-aligned, the
                // kernel's VMA extends to the page boundary); replacing it with private zero
                // pages keeps every pointer into it valid.
                let r = unsafe {
                    libc::mmap(
                        from as *mut c_void,
                        end - from,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    )
                };
                if r != libc::MAP_FAILED {
                    REGISTRY.mark(slot);
                    FAULTS.fetch_add(1, Ordering::Relaxed);
                    // SAFETY: restoring the interrupted code's errno.
                    unsafe { *libc::__errno_location() = errno };
                    return;
                }
            }
        }
        // SAFETY: chaining to the previous disposition with the kernel's arguments.
        unsafe { chain(sig, info, ctx) };
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    /// Not ours: the previous handler, or the default action (the process dies as before).
    unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
        let prev = if READY.load(Ordering::Acquire) {
            // SAFETY: written once before READY was set.
            Some(unsafe { &*PREV.0.get() })
        } else {
            None
        };
        if let Some(p) = prev {
            let h = p.sa_sigaction;
            if h != libc::SIG_DFL && h != libc::SIG_IGN {
                if p.sa_flags & libc::SA_SIGINFO != 0 {
                    // SAFETY: an SA_SIGINFO handler has this signature.
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                        unsafe { std::mem::transmute(h) };
                    f(sig, info, ctx);
                } else {
                    // SAFETY: a plain handler takes the signal number.
                    let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
                    f(sig);
                }
                return;
            }
        }
        // SIG_DFL (or SIG_IGN, which the kernel overrides for a fault): default action. The
        // signal is blocked while we run, so it is delivered when we return.
        // SAFETY: sigaction and raise are async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
            libc::raise(sig);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    /// No handler here (see the module docs): registration still succeeds so the size/mtime
    /// checks run, and mappings behave as before.
    pub fn install() -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn registry_claims_finds_and_releases() {
        let r: Registry<4> = Registry::new();
        let a = r.claim(0x1000, 0x2000).unwrap();
        let b = r.claim(0x10000, 0x10).unwrap();
        assert_ne!(a, b);
        assert_eq!(r.find(0x1000).map(|x| x.0), Some(a));
        assert_eq!(r.find(0x2fff).map(|x| x.0), Some(a));
        assert_eq!(r.find(0x3000), None);
        assert_eq!(r.find(0x0fff), None);
        assert_eq!(r.find(0x1000f).map(|x| x.0), Some(b));
        assert!(!r.changed(a));
        r.mark(a);
        assert!(r.changed(a));
        r.release(a);
        assert_eq!(r.find(0x1000), None);
        // A reclaimed slot starts clean and has a new generation.
        let gen_before = r.slots[a].state.load(Ordering::Relaxed) >> 2;
        let c = r.claim(0x5000, 0x1000).unwrap();
        assert_eq!(c, a);
        assert!(!r.changed(c));
        assert_eq!(
            r.slots[c].state.load(Ordering::Relaxed) >> 2,
            gen_before + 1
        );
    }

    #[test]
    fn a_full_registry_refuses() {
        let r: Registry<3> = Registry::new();
        let ids: Vec<_> = (0..3).map(|i| r.claim(i * 100, 10).unwrap()).collect();
        assert_eq!(r.claim(1000, 10), None);
        r.release(ids[1]);
        assert_eq!(r.claim(1000, 10), Some(ids[1]));
        assert_eq!(r.high.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn concurrent_claims_never_share_a_slot() {
        static R: Registry<64> = Registry::new();
        let got: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|t| {
                    s.spawn(move || {
                        (0..8)
                            .map(|k| R.claim((t * 8 + k) * 4096, 4096).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 64);
        assert_eq!(R.claim(1 << 30, 1), None);
    }

    #[test]
    fn unguarded_memory_checks_ok() {
        let v = [1u8; 16];
        assert!(!is_guarded(v.as_ptr()));
        assert!(check_addr(v.as_ptr()).is_ok());
    }
}
