//! torchsave dtype names (PyTorch's: `float32`, `bfloat16`, ...) <-> libtorch scalar types.
use crate::errors;
use tch::Kind;

pub fn kind(dtype: &str) -> napi::Result<Kind> {
    Ok(match dtype {
        "uint8" => Kind::Uint8,
        "int8" => Kind::Int8,
        "int16" => Kind::Int16,
        "int32" => Kind::Int,
        "int64" => Kind::Int64,
        "float16" => Kind::Half,
        "float32" => Kind::Float,
        "float64" => Kind::Double,
        "complex32" => Kind::ComplexHalf,
        "complex64" => Kind::ComplexFloat,
        "complex128" => Kind::ComplexDouble,
        "bool" => Kind::Bool,
        "bfloat16" => Kind::BFloat16,
        "float8_e5m2" => Kind::Float8e5m2,
        "float8_e4m3fn" => Kind::Float8e4m3fn,
        "float8_e5m2fnuz" => Kind::Float8e5m2fnuz,
        "float8_e4m3fnuz" => Kind::Float8e4m3fnuz,
        other => {
            return Err(errors::dtype(format!(
                "compute in dtype '{other}' is not supported by tch"
            )))
        }
    })
}

pub fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Uint8 => "uint8",
        Kind::Int8 => "int8",
        Kind::Int16 => "int16",
        Kind::Int => "int32",
        Kind::Int64 => "int64",
        Kind::Half => "float16",
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::ComplexHalf => "complex32",
        Kind::ComplexFloat => "complex64",
        Kind::ComplexDouble => "complex128",
        Kind::Bool => "bool",
        Kind::QInt8 => "qint8",
        Kind::QUInt8 => "quint8",
        Kind::QInt32 => "qint32",
        Kind::BFloat16 => "bfloat16",
        Kind::Float8e5m2 => "float8_e5m2",
        Kind::Float8e4m3fn => "float8_e4m3fn",
        Kind::Float8e5m2fnuz => "float8_e5m2fnuz",
        Kind::Float8e4m3fnuz => "float8_e4m3fnuz",
    }
}

pub fn element_size(kind: Kind) -> usize {
    kind.elt_size_in_bytes()
}

/// `cpu`, `cuda`, `cuda:1` -> tch Device.
pub fn device(s: &str) -> napi::Result<tch::Device> {
    if s == "cpu" {
        return Ok(tch::Device::Cpu);
    }
    if s == "cuda" {
        return Ok(tch::Device::Cuda(0));
    }
    if let Some(i) = s.strip_prefix("cuda:") {
        let idx: usize = i
            .parse()
            .map_err(|_| errors::invalid(format!("bad device '{s}'")))?;
        return Ok(tch::Device::Cuda(idx));
    }
    if s == "mps" {
        return Ok(tch::Device::Mps);
    }
    Err(errors::device(format!(
        "device '{s}' is not supported by the libtorch addon"
    )))
}

pub fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cpu => "cpu".to_string(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        tch::Device::Mps => "mps".to_string(),
        tch::Device::Vulkan => "vulkan".to_string(),
    }
}
