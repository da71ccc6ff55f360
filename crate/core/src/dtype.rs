//! PyTorch dtypes and the storage classes that carry them in pickles.
//!
//! Names follow PyTorch (`str(torch.float32)` without `torch.`). The legacy storage classes
//! (`torch.FloatStorage`, ...) map one-to-one onto the "old" dtypes; the "new" dtypes
//! (float8 variants, unsigned 16/32/64, complex32, bits*) are pickled with
//! `torch.storage.UntypedStorage` and an explicit dtype argument to `_rebuild_tensor_v3`
//! (FORMAT.md 3.1). Keep `ALL`, `name`, `element_size` and `storage_class` in step.

use crate::error::{ErrorCode, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Float64,
    Float32,
    Float16,
    BFloat16,
    Complex32,
    Complex64,
    Complex128,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Bool,
    QInt8,
    QUInt8,
    QInt32,
    QUInt4x2,
    QUInt2x4,
    Float8E5M2,
    Float8E4M3Fn,
    Float8E5M2Fnuz,
    Float8E4M3Fnuz,
    Float8E8M0Fnu,
    Float4E2M1FnX2,
    Bits8,
    Bits16,
    Bits1x8,
    Bits2x4,
    Bits4x2,
}

impl DType {
    pub const ALL: [DType; 32] = [
        DType::Float64,
        DType::Float32,
        DType::Float16,
        DType::BFloat16,
        DType::Complex32,
        DType::Complex64,
        DType::Complex128,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::UInt8,
        DType::UInt16,
        DType::UInt32,
        DType::UInt64,
        DType::Bool,
        DType::QInt8,
        DType::QUInt8,
        DType::QInt32,
        DType::QUInt4x2,
        DType::QUInt2x4,
        DType::Float8E5M2,
        DType::Float8E4M3Fn,
        DType::Float8E5M2Fnuz,
        DType::Float8E4M3Fnuz,
        DType::Float8E8M0Fnu,
        DType::Float4E2M1FnX2,
        DType::Bits8,
        DType::Bits16,
        DType::Bits1x8,
        DType::Bits2x4,
        DType::Bits4x2,
    ];

    /// PyTorch's canonical name, as in `str(dtype)` minus `torch.`.
    pub fn name(self) -> &'static str {
        match self {
            DType::Float64 => "float64",
            DType::Float32 => "float32",
            DType::Float16 => "float16",
            DType::BFloat16 => "bfloat16",
            DType::Complex32 => "complex32",
            DType::Complex64 => "complex64",
            DType::Complex128 => "complex128",
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::UInt8 => "uint8",
            DType::UInt16 => "uint16",
            DType::UInt32 => "uint32",
            DType::UInt64 => "uint64",
            DType::Bool => "bool",
            DType::QInt8 => "qint8",
            DType::QUInt8 => "quint8",
            DType::QInt32 => "qint32",
            DType::QUInt4x2 => "quint4x2",
            DType::QUInt2x4 => "quint2x4",
            DType::Float8E5M2 => "float8_e5m2",
            DType::Float8E4M3Fn => "float8_e4m3fn",
            DType::Float8E5M2Fnuz => "float8_e5m2fnuz",
            DType::Float8E4M3Fnuz => "float8_e4m3fnuz",
            DType::Float8E8M0Fnu => "float8_e8m0fnu",
            DType::Float4E2M1FnX2 => "float4_e2m1fn_x2",
            DType::Bits8 => "bits8",
            DType::Bits16 => "bits16",
            DType::Bits1x8 => "bits1x8",
            DType::Bits2x4 => "bits2x4",
            DType::Bits4x2 => "bits4x2",
        }
    }

    /// Parses a canonical name or one of PyTorch's aliases (`float`, `half`, `long`, ...).
    pub fn from_name(name: &str) -> Option<DType> {
        let canonical = match name {
            "float" => "float32",
            "double" => "float64",
            "half" => "float16",
            "cfloat" => "complex64",
            "cdouble" => "complex128",
            "chalf" => "complex32",
            "short" => "int16",
            "int" => "int32",
            "long" => "int64",
            other => other,
        };
        DType::ALL.iter().copied().find(|d| d.name() == canonical)
    }

    /// Bytes per element.
    pub fn element_size(self) -> usize {
        match self {
            DType::Float64 | DType::Int64 | DType::UInt64 | DType::Complex64 => 8,
            DType::Complex128 => 16,
            DType::Float32 | DType::Int32 | DType::UInt32 | DType::QInt32 | DType::Complex32 => 4,
            DType::Float16 | DType::BFloat16 | DType::Int16 | DType::UInt16 | DType::Bits16 => 2,
            _ => 1,
        }
    }

    /// Size of one scalar component for byte swapping (complex swaps each half).
    pub fn swap_unit(self) -> usize {
        match self {
            DType::Complex32 | DType::Complex64 | DType::Complex128 => self.element_size() / 2,
            _ => self.element_size(),
        }
    }

    pub fn is_floating_point(self) -> bool {
        matches!(
            self,
            DType::Float64
                | DType::Float32
                | DType::Float16
                | DType::BFloat16
                | DType::Float8E5M2
                | DType::Float8E4M3Fn
                | DType::Float8E5M2Fnuz
                | DType::Float8E4M3Fnuz
                | DType::Float8E8M0Fnu
        )
    }

    pub fn is_complex(self) -> bool {
        matches!(
            self,
            DType::Complex32 | DType::Complex64 | DType::Complex128
        )
    }

    pub fn is_quantized(self) -> bool {
        matches!(
            self,
            DType::QInt8 | DType::QUInt8 | DType::QInt32 | DType::QUInt4x2 | DType::QUInt2x4
        )
    }

    /// The legacy storage class PyTorch pickles for this dtype (`torch.<Name>`), or `None`
    /// for the "new" dtypes, which are pickled as `torch.storage.UntypedStorage`.
    pub fn storage_class(self) -> Option<&'static str> {
        Some(match self {
            DType::Float64 => "DoubleStorage",
            DType::Float32 => "FloatStorage",
            DType::Float16 => "HalfStorage",
            DType::BFloat16 => "BFloat16Storage",
            DType::Int64 => "LongStorage",
            DType::Int32 => "IntStorage",
            DType::Int16 => "ShortStorage",
            DType::Int8 => "CharStorage",
            DType::UInt8 => "ByteStorage",
            DType::Bool => "BoolStorage",
            DType::Complex128 => "ComplexDoubleStorage",
            DType::Complex64 => "ComplexFloatStorage",
            DType::QInt8 => "QInt8Storage",
            DType::QUInt8 => "QUInt8Storage",
            DType::QInt32 => "QInt32Storage",
            DType::QUInt4x2 => "QUInt4x2Storage",
            DType::QUInt2x4 => "QUInt2x4Storage",
            _ => return None,
        })
    }

    /// The dtype of a legacy storage class name (`FloatStorage`, also `cuda` and `Typed`
    /// spellings are accepted by the caller stripping their module).
    pub fn from_storage_class(name: &str) -> Option<DType> {
        DType::ALL
            .iter()
            .copied()
            .find(|d| d.storage_class() == Some(name))
    }

    /// The dtype of a legacy tensor class name (`FloatTensor`, `BoolTensor`): the storage
    /// class with `Tensor` for `Storage`, for the dtypes torch has tensor classes for (no
    /// complex and no quantized ones; `torch._tensor_classes`).
    pub fn from_tensor_class(name: &str) -> Option<DType> {
        let stem = name.strip_suffix("Tensor")?;
        DType::ALL
            .iter()
            .copied()
            .find(|d| d.storage_class().and_then(|c| c.strip_suffix("Storage")) == Some(stem))
            .filter(|d| !d.is_complex() && !d.is_quantized())
    }

    pub fn from_name_checked(name: &str) -> Result<DType> {
        DType::from_name(name).ok_or_else(|| {
            crate::error::Error::new(
                ErrorCode::UnsupportedDtype,
                format!("unknown dtype '{name}'"),
            )
        })
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
            if let Some(c) = d.storage_class() {
                assert_eq!(DType::from_storage_class(c), Some(d));
            }
        }
        assert_eq!(DType::from_name("half"), Some(DType::Float16));
        // torch._tensor_classes (dense): ten, derived from the storage-class table.
        let dense = DType::ALL
            .iter()
            .filter_map(|d| d.storage_class())
            .filter(|c| DType::from_tensor_class(&c.replace("Storage", "Tensor")).is_some())
            .count();
        assert_eq!(dense, 10);
        assert_eq!(DType::from_tensor_class("LongTensor"), Some(DType::Int64));
        assert_eq!(DType::from_tensor_class("ComplexFloatTensor"), None);
        assert_eq!(DType::from_tensor_class("QInt8Tensor"), None);
        assert_eq!(DType::from_name("nope"), None);
    }
}
