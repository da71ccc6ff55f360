//! `preloadSharedLibraries(paths)`: loads shared libraries by absolute path, process-wide, so
//! that a second addon whose `NEEDED` entries name them (the libtorch addon: `libc10.so`,
//! `libtorch_cpu.so`, `libtorch.so`, `libtorch_cuda.so`, ...) loads without an rpath or
//! `LD_LIBRARY_PATH`. ts/libtorch/addon.ts finds a libtorch folder at run time and calls this
//! before it requires the compute addon: the dynamic linker then satisfies those `NEEDED`
//! sonames with the objects already loaded, so nothing of the build machine's paths has to be
//! baked into the compute binary.
//!
//! Why here and not in JS: Node's `process.dlopen` only loads Node addons (it fails on a
//! plain library without a module registration) and has no `RTLD_GLOBAL` on every platform.
//! Why `libloading`: it is in the tree already (napi-sys' `dyn-symbols` uses it), and it
//! exposes the POSIX flags (`RTLD_NOW | RTLD_GLOBAL`) on Unix and `LoadLibraryExW` on Windows,
//! so this module declares no FFI of its own.
//!
//! A loaded library stays loaded for the life of the process (its handle is leaked on
//! purpose): unloading libtorch under a live addon would crash it.

use napi::{Env, Result};
use napi_derive::napi;
use torchsave_core::{Error as CoreError, ErrorCode};

use crate::error::{guard, to_napi};

/// Loads each file in order, process-wide (`RTLD_NOW | RTLD_GLOBAL` on Unix); a library
/// already loaded is not loaded twice. Throws `E_DEVICE_UNAVAILABLE` naming the first file
/// that fails and the loader's reason; the ones before it stay loaded.
#[napi]
pub fn preload_shared_libraries(env: Env, paths: Vec<String>) -> Result<()> {
    guard(&env, || {
        for p in &paths {
            open_global(p).map_err(|why| {
                to_napi(
                    &env,
                    &CoreError::new(
                        ErrorCode::DeviceUnavailable,
                        format!("cannot load {p}: {why}"),
                    ),
                )
            })?;
        }
        Ok(())
    })
}

#[cfg(unix)]
fn open_global(path: &str) -> std::result::Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading a library runs its initialisers; the caller (our own facade) passes only
    // libtorch's libraries from a folder it checked, which is what the compute addon would load
    // through NEEDED anyway.
    let lib =
        unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| e.to_string())?;
    std::mem::forget(lib);
    Ok(())
}

#[cfg(windows)]
fn open_global(path: &str) -> std::result::Result<(), String> {
    // Windows has no global symbol namespace: a DLL already loaded under a module name
    // satisfies later imports of that name, which is what the compute addon needs.
    // SAFETY: as on Unix, the facade passes only libtorch's own DLLs.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    std::mem::forget(lib);
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn open_global(path: &str) -> std::result::Result<(), String> {
    Err(format!(
        "{path}: shared libraries cannot be loaded on this platform"
    ))
}
