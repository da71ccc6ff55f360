//! The addon's errors: JS errors whose `.code` is one of the core's codes
//! ([`torchsave_core::ErrorCode`], through the shared `torchsave-napi-common` crate) and whose
//! message is the reason alone. Every entry point returns [`Result`].
use torchsave_core::ErrorCode;
use torchsave_napi_common::{coded, panic_text, Coded};

/// What every `#[napi]` entry point of this addon returns: napi-rs throws the error with
/// `.code` = its [`Coded`] status.
pub type Result<T> = torchsave_napi_common::CodedResult<T>;
pub type Error = napi::Error<Coded>;

/// `E_COMPUTE`: libtorch raised an error.
pub fn compute(e: impl std::fmt::Display) -> Error {
    // libtorch's messages end with a C++ backtrace in debug builds; the first lines say it all.
    let text = e.to_string();
    let short: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
    coded(ErrorCode::Compute, short)
}

pub fn invalid(msg: impl std::fmt::Display) -> Error {
    coded(ErrorCode::InvalidArgument, msg)
}

pub fn dtype(msg: impl std::fmt::Display) -> Error {
    coded(ErrorCode::UnsupportedDtype, msg)
}

pub fn device(msg: impl std::fmt::Display) -> Error {
    coded(ErrorCode::DeviceUnavailable, msg)
}

pub fn internal(msg: impl std::fmt::Display) -> Error {
    coded(ErrorCode::Internal, msg)
}

/// `tch` results into the addon's results.
pub trait OrCompute<T> {
    fn or_compute(self) -> Result<T>;
}

impl<T> OrCompute<T> for std::result::Result<T, tch::TchError> {
    fn or_compute(self) -> Result<T> {
        self.map_err(compute)
    }
}

/// Runs `f`, turning a panic into `E_COMPUTE` (libtorch's message when the panic is tch
/// unwrapping a libtorch error, as its infallible accessors and `Scalar::drop` do).
pub fn no_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    quiet_tch_panics();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(compute(torch_message(&panic_text(payload.as_ref())))),
    }
}

/// Runs a `tch` op that takes a `Scalar` argument.
///
/// tch 0.24 drops such an op's temporary `Scalar` before it reads libtorch's error, and that
/// drop (`unsafe_torch!` in `Scalar::drop`) unwraps the pending error: a failing scalar op
/// (an in-place op on a leaf that requires grad, a bad dtype) panics instead of returning
/// `Err`, and a panic here aborts the user's Node process. This catches that panic (libtorch's
/// error is already read and cleared by then) and returns it as `E_COMPUTE`.
pub fn scalar_op<T>(f: impl FnOnce() -> std::result::Result<T, tch::TchError>) -> Result<T> {
    no_panic(|| f().or_compute())
}

/// libtorch's message out of `called Result::unwrap() on an Err value: Torch("...")`.
fn torch_message(raw: &str) -> String {
    let inner = raw
        .split_once("Torch(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map_or(raw, |(msg, _)| msg);
    // The payload is the error's Debug form: undo its escapes.
    inner
        .replace("\\n", "\n")
        .replace("\\\"", "\"")
        .replace("\\\\", "\\")
}

/// Keeps the default panic hook from printing the tch panics [`no_panic`] turns into errors.
fn quiet_tch_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let from_tch = info.location().is_some_and(|l| {
                let file = l.file();
                file.contains("tch-") || file.contains("/tch/")
            });
            if !from_tch {
                previous(info);
            }
        }));
    });
}
