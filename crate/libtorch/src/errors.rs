//! Errors with a code prefix the facade turns into `.code` (ts/libtorch/addon.ts).
use napi::{Error, Status};

pub fn compute(e: impl std::fmt::Display) -> Error {
    // libtorch's messages end with a C++ backtrace in debug builds; the first lines say it all.
    let text = e.to_string();
    let short: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
    Error::new(Status::GenericFailure, format!("E_COMPUTE: {short}"))
}

pub fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::new(Status::InvalidArg, format!("E_INVALID_ARGUMENT: {msg}"))
}

pub fn dtype(msg: impl std::fmt::Display) -> Error {
    Error::new(Status::InvalidArg, format!("E_UNSUPPORTED_DTYPE: {msg}"))
}

pub fn device(msg: impl std::fmt::Display) -> Error {
    Error::new(
        Status::GenericFailure,
        format!("E_DEVICE_UNAVAILABLE: {msg}"),
    )
}

/// `tch` results into napi results.
pub trait OrCompute<T> {
    fn or_compute(self) -> napi::Result<T>;
}

impl<T> OrCompute<T> for Result<T, tch::TchError> {
    fn or_compute(self) -> napi::Result<T> {
        self.map_err(compute)
    }
}

/// Runs a `tch` op that takes a `Scalar` argument.
///
/// tch 0.24 drops such an op's temporary `Scalar` before it reads libtorch's error, and that
/// drop (`unsafe_torch!` in `Scalar::drop`) unwraps the pending error: a failing scalar op
/// (an in-place op on a leaf that requires grad, a bad dtype) panics instead of returning
/// `Err`, and a panic here aborts the user's Node process. This catches that panic (libtorch's
/// error is already read and cleared by then) and returns it as `E_COMPUTE`.
pub fn scalar_op<T>(f: impl FnOnce() -> Result<T, tch::TchError>) -> napi::Result<T> {
    quiet_scalar_drop_panics();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.or_compute(),
        Err(payload) => Err(compute(panic_text(payload.as_ref()))),
    }
}

/// libtorch's message out of `called Result::unwrap() on an Err value: Torch("...")`.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let raw = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("libtorch raised an error");
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

/// Keeps the default panic hook from printing the panics [`scalar_op`] turns into errors.
fn quiet_scalar_drop_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let from_scalar_drop = info.location().is_some_and(|l| {
                let file = l.file();
                file.contains("tch") && file.ends_with("scalar.rs")
            });
            if !from_scalar_drop {
                previous(info);
            }
        }));
    });
}
