//! Links the addon against the libtorch that torch-sys found (LIBTORCH_USE_PYTORCH=1 or LIBTORCH).
//!
//! No rpath: the binary must not name the build machine's libtorch folder (a venv path that
//! exists nowhere else). At run time ts/libtorch/addon.ts finds a libtorch 2.11 folder
//! (TORCHSAVE_LIBTORCH / LIBTORCH, else `python3`'s torch) and loads its libraries by absolute
//! path with RTLD_GLOBAL (the default addon's `preloadSharedLibraries`) before requiring this
//! addon, so its NEEDED sonames resolve to those. torch-sys' own build script emits
//! `-Wl,-rpath=<libtorch>/lib` only for its own package's link steps (cargo applies a
//! library's `rustc-link-arg` to nothing downstream), so leaving the rpath out here is enough;
//! scripts/release-pack.sh asserts with readelf that no RUNPATH is left.
//!
//! torch-sys' own `-Wl,--no-as-needed -ltorch` and rpath link args do not reach dependent
//! crates, so without repeating them here the linker drops libtorch_cuda.so (nothing calls it
//! directly) and CUDA reports unavailable even on a GPU machine.
use std::path::PathBuf;

fn main() {
    napi_build::setup();
    let lib = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from);
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if let Some(lib) = &lib {
        if os == "linux" {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch");
            for cuda in ["torch_cuda", "c10_cuda"] {
                if lib.join(format!("lib{cuda}.so")).exists() {
                    println!("cargo:rustc-link-arg=-l{cuda}");
                }
            }
        }
    }
    // The C++ shim: torch::from_blob with a deleter, which tch does not expose.
    let include = lib
        .as_ref()
        .and_then(|l| l.parent().map(|p| p.join("include")))
        .unwrap_or_default();
    println!("cargo:rerun-if-changed=src/shim.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/shim.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .warnings(false)
        .compile("torchsave_shim");
}
