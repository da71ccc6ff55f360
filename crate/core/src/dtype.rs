//! PyTorch dtypes and the storage classes that carry them in pickles.
//!
//! Names follow PyTorch (`str(torch.float32)` without `torch.`). The legacy storage classes
//! (`torch.FloatStorage`, ...) map one-to-one onto the "old" dtypes; the "new" dtypes
//! (float8 variants, unsigned 16/32/64, complex32, bits*) are pickled with
//! `torch.storage.UntypedStorage` and an explicit dtype argument to `_rebuild_tensor_v3`
//! (FORMAT.md 3.1). The `dtypes!` table is the one list of dtypes; `storage_class` maps
//! the old ones to their classes.

use crate::error::{ErrorCode, Result};

/// What kind of number a dtype holds (PyTorch's `is_floating_point`/`is_complex` and the
/// quantized/bits families). `float4_e2m1fn_x2` packs two values per byte and is `Bits` here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DTypeClass {
    Float,
    Complex,
    /// Signed and unsigned integers.
    Int,
    Bool,
    Quantized,
    Bits,
}

impl DTypeClass {
    pub fn name(self) -> &'static str {
        match self {
            DTypeClass::Float => "float",
            DTypeClass::Complex => "complex",
            DTypeClass::Int => "int",
            DTypeClass::Bool => "bool",
            DTypeClass::Quantized => "quantized",
            DTypeClass::Bits => "bits",
        }
    }
}

/// Declares [`DType`], [`DType::ALL`], names, sizes and classes from one table, so a new dtype
/// is one line here (plus its storage class below if it has one); the node binding exports
/// the table and `npm run build` regenerates the TS types from it.
macro_rules! dtypes {
    ($($variant:ident => $name:literal, $size:literal, $class:ident;)+) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DType {
            $($variant,)+
        }

        impl DType {
            /// Every dtype, in the table's order.
            pub const ALL: [DType; [$(DType::$variant),+].len()] = [$(DType::$variant),+];

            /// PyTorch's canonical name, as in `str(dtype)` minus `torch.`.
            pub fn name(self) -> &'static str {
                match self {
                    $(DType::$variant => $name,)+
                }
            }

            /// Bytes per element (PyTorch's `itemsize`).
            pub fn element_size(self) -> usize {
                match self {
                    $(DType::$variant => $size,)+
                }
            }

            pub fn class(self) -> DTypeClass {
                match self {
                    $(DType::$variant => DTypeClass::$class,)+
                }
            }
        }
    };
}

dtypes! {
    Float64 => "float64", 8, Float;
    Float32 => "float32", 4, Float;
    Float16 => "float16", 2, Float;
    BFloat16 => "bfloat16", 2, Float;
    Complex32 => "complex32", 4, Complex;
    Complex64 => "complex64", 8, Complex;
    Complex128 => "complex128", 16, Complex;
    Int8 => "int8", 1, Int;
    Int16 => "int16", 2, Int;
    Int32 => "int32", 4, Int;
    Int64 => "int64", 8, Int;
    UInt8 => "uint8", 1, Int;
    UInt16 => "uint16", 2, Int;
    UInt32 => "uint32", 4, Int;
    UInt64 => "uint64", 8, Int;
    Bool => "bool", 1, Bool;
    QInt8 => "qint8", 1, Quantized;
    QUInt8 => "quint8", 1, Quantized;
    QInt32 => "qint32", 4, Quantized;
    QUInt4x2 => "quint4x2", 1, Quantized;
    QUInt2x4 => "quint2x4", 1, Quantized;
    Float8E5M2 => "float8_e5m2", 1, Float;
    Float8E4M3Fn => "float8_e4m3fn", 1, Float;
    Float8E5M2Fnuz => "float8_e5m2fnuz", 1, Float;
    Float8E4M3Fnuz => "float8_e4m3fnuz", 1, Float;
    Float8E8M0Fnu => "float8_e8m0fnu", 1, Float;
    Float4E2M1FnX2 => "float4_e2m1fn_x2", 1, Bits;
    Bits8 => "bits8", 1, Bits;
    Bits16 => "bits16", 2, Bits;
    Bits1x8 => "bits1x8", 1, Bits;
    Bits2x4 => "bits2x4", 1, Bits;
    Bits4x2 => "bits4x2", 1, Bits;
}

impl DType {
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

    /// Size of one scalar component for byte swapping (complex swaps each half).
    pub fn swap_unit(self) -> usize {
        match self {
            DType::Complex32 | DType::Complex64 | DType::Complex128 => self.element_size() / 2,
            _ => self.element_size(),
        }
    }

    pub fn is_floating_point(self) -> bool {
        self.class() == DTypeClass::Float
    }

    pub fn is_complex(self) -> bool {
        self.class() == DTypeClass::Complex
    }

    pub fn is_quantized(self) -> bool {
        self.class() == DTypeClass::Quantized
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

    /// The table gives what the hand-written matches gave (sizes, floating-point set).
    #[test]
    fn table_facts() {
        assert_eq!(DType::Complex128.element_size(), 16);
        assert_eq!(DType::QInt32.element_size(), 4);
        assert_eq!(DType::Bits16.element_size(), 2);
        // The floating-point set the hand-written match had (a new dtype adds to it freely).
        for name in [
            "float64",
            "float32",
            "float16",
            "bfloat16",
            "float8_e5m2",
            "float8_e4m3fn",
            "float8_e5m2fnuz",
            "float8_e4m3fnuz",
            "float8_e8m0fnu",
        ] {
            assert!(
                DType::from_name(name).is_some_and(DType::is_floating_point),
                "{name}"
            );
        }
        for d in [
            DType::Float4E2M1FnX2,
            DType::Complex64,
            DType::Int64,
            DType::Bool,
            DType::QInt8,
        ] {
            assert!(!d.is_floating_point(), "{d}");
        }
    }

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
