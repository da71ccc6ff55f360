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
