//! The core's dtypes ([`torchsave_core::DType`], the one table) <-> libtorch scalar types,
//! and device names.
use crate::errors::{self, Result};
use tch::Kind;
use torchsave_core::DType;

/// The libtorch scalar type of a core dtype, where tch has one (the one mapping).
pub fn kind_of(d: DType) -> Option<Kind> {
    Some(match d {
        DType::UInt8 => Kind::Uint8,
        DType::Int8 => Kind::Int8,
        DType::Int16 => Kind::Int16,
        DType::Int32 => Kind::Int,
        DType::Int64 => Kind::Int64,
        DType::Float16 => Kind::Half,
        DType::Float32 => Kind::Float,
        DType::Float64 => Kind::Double,
        DType::Complex32 => Kind::ComplexHalf,
        DType::Complex64 => Kind::ComplexFloat,
        DType::Complex128 => Kind::ComplexDouble,
        DType::Bool => Kind::Bool,
        DType::QInt8 => Kind::QInt8,
        DType::QUInt8 => Kind::QUInt8,
        DType::QInt32 => Kind::QInt32,
        DType::BFloat16 => Kind::BFloat16,
        DType::Float8E5M2 => Kind::Float8e5m2,
        DType::Float8E4M3Fn => Kind::Float8e4m3fn,
        DType::Float8E5M2Fnuz => Kind::Float8e5m2fnuz,
        DType::Float8E4M3Fnuz => Kind::Float8e4m3fnuz,
        _ => return None,
    })
}

/// The core dtype of a libtorch scalar type ([`kind_of`] read backwards).
pub fn dtype_of(kind: Kind) -> Option<DType> {
    DType::ALL
        .iter()
        .copied()
        .find(|d| kind_of(*d) == Some(kind))
}

/// The kind to compute in for a dtype name (the quantized kinds cannot be computed in).
pub fn kind(dtype: &str) -> Result<Kind> {
    DType::from_name(dtype)
        .filter(|d| !d.is_quantized())
        .and_then(kind_of)
        .ok_or_else(|| {
            errors::dtype(format!(
                "compute in dtype '{dtype}' is not supported by tch"
            ))
        })
}

pub fn name(kind: Kind) -> &'static str {
    // Every tch Kind has a core dtype (kind_of covers them all).
    dtype_of(kind).map_or("unknown", DType::name)
}

pub fn element_size(kind: Kind) -> usize {
    kind.elt_size_in_bytes()
}

/// `cpu`, `cuda`, `cuda:1` -> tch Device.
pub fn device(s: &str) -> Result<tch::Device> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_dtype_and_back() {
        for d in DType::ALL {
            if let Some(k) = kind_of(d) {
                assert_eq!(dtype_of(k), Some(d));
            }
        }
    }
}
