//! Tensor math, shape ops, casts and device moves: one napi method per libtorch op, named as
//! PyTorch names it. Each is `tch`'s fallible twin with the error turned into `E_COMPUTE`.
use crate::dtype;
use crate::errors::{self, OrCompute, Result};
use crate::native::NativeTensor;
use napi::bindgen_prelude::ClassInstance;
use napi_derive::napi;
use tch::Tensor;

fn ok(t: std::result::Result<Tensor, tch::TchError>) -> Result<NativeTensor> {
    t.or_compute().map(NativeTensor::wrap)
}

fn list<'a>(ts: &'a [ClassInstance<'_, NativeTensor>]) -> Result<Vec<&'a Tensor>> {
    ts.iter().map(|t| t.t()).collect()
}

fn opt_kind(dtype_name: Option<String>) -> Result<Option<tch::Kind>> {
    dtype_name.map(|d| dtype::kind(&d)).transpose()
}

macro_rules! unary {
    ($($js:literal $name:ident => $f:ident;)*) => {
        #[napi]
        impl NativeTensor {
            $(
                #[napi(js_name = $js)]
                pub fn $name(&self) -> Result<NativeTensor> { ok(self.t()?.$f()) }
            )*
        }
    };
}

unary! {
    "neg" neg => f_neg;
    "abs" abs => f_abs;
    "exp" exp => f_exp;
    "log" log => f_log;
    "sqrt" sqrt => f_sqrt;
    "rsqrt" rsqrt => f_rsqrt;
    "sin" sin => f_sin;
    "cos" cos => f_cos;
    "sign" sign => f_sign;
    "square" square => f_square;
    "relu" relu => f_relu;
    "sigmoid" sigmoid => f_sigmoid;
    "tanh" tanh => f_tanh;
    "silu" silu => f_silu;
    "logicalNot" logical_not => f_logical_not;
    "contiguous" contiguous => f_contiguous;
    "detach" detach => f_detach;
    "t" transpose2d => f_tr;
}

macro_rules! binary {
    ($($js:literal $name:ident => $f:ident;)*) => {
        #[napi]
        impl NativeTensor {
            $(
                #[napi(js_name = $js)]
                pub fn $name(&self, other: &NativeTensor) -> Result<NativeTensor> { ok(self.t()?.$f(other.t()?)) }
            )*
        }
    };
}

binary! {
    "mul" mul => f_mul;
    "div" div => f_div;
    "matmul" matmul => f_matmul;
    "maximum" maximum => f_maximum;
    "minimum" minimum => f_minimum;
    "pow" pow => f_pow;
    "eq" eq_t => f_eq_tensor;
    "ne" ne_t => f_ne_tensor;
    "lt" lt_t => f_lt_tensor;
    "le" le_t => f_le_tensor;
    "gt" gt_t => f_gt_tensor;
    "ge" ge_t => f_ge_tensor;
}

macro_rules! scalar {
    ($($js:literal $name:ident => $f:ident;)*) => {
        #[napi]
        impl NativeTensor {
            $(
                #[napi(js_name = $js)]
                pub fn $name(&self, s: f64) -> Result<NativeTensor> {
                    self.t().and_then(|t| errors::scalar_op(|| t.$f(s))).map(NativeTensor::wrap)
                }
            )*
        }
    };
}

scalar! {
    "addScalar" add_scalar => f_add_scalar;
    "subScalar" sub_scalar => f_sub_scalar;
    "mulScalar" mul_scalar => f_mul_scalar;
    "divScalar" div_scalar => f_div_scalar;
    "powScalar" pow_scalar => f_pow_tensor_scalar;
    "eqScalar" eq_scalar => f_eq;
    "ltScalar" lt_scalar => f_lt;
    "gtScalar" gt_scalar => f_gt;
    "leScalar" le_scalar => f_le;
    "geScalar" ge_scalar => f_ge;
    "clampMin" clamp_min => f_clamp_min;
    "clampMax" clamp_max => f_clamp_max;
}

#[napi]
impl NativeTensor {
    /// `self + alpha * other` (PyTorch's add with alpha; sub is alpha = -1 on the JS side).
    #[napi]
    pub fn add(&self, other: &NativeTensor, alpha: Option<f64>) -> Result<NativeTensor> {
        match alpha {
            None => ok(self.t()?.f_add(other.t()?)),
            Some(a) => ok(self.t()?.f_add(
                &other
                    .t()
                    .and_then(|t| errors::scalar_op(|| t.f_mul_scalar(a)))?,
            )),
        }
    }
    #[napi]
    pub fn sub(&self, other: &NativeTensor) -> Result<NativeTensor> {
        ok(self.t()?.f_sub(other.t()?))
    }
    /// `torch.rsub(self, s)`: `s - self`.
    #[napi]
    pub fn rsub_scalar(&self, s: f64) -> Result<NativeTensor> {
        let neg = self.t()?.f_neg().or_compute()?;
        errors::scalar_op(|| neg.f_add_scalar(s)).map(NativeTensor::wrap)
    }
    /// A differentiable copy with its own memory.
    #[napi(js_name = "clone")]
    pub fn clone_(&self) -> Result<NativeTensor> {
        ok(self.t()?.f_to_dtype(self.t()?.kind(), false, true))
    }
    #[napi]
    pub fn leaky_relu(&self, negative_slope: f64) -> Result<NativeTensor> {
        let neg = self
            .t()
            .and_then(|t| errors::scalar_op(|| t.f_mul_scalar(negative_slope)))?;
        let pos = self.t().and_then(|t| errors::scalar_op(|| t.f_gt(0.0)))?;
        ok(self.t()?.f_where_self(&pos, &neg))
    }
    #[napi]
    pub fn clamp(&self, min: f64, max: f64) -> Result<NativeTensor> {
        self.t()
            .and_then(|t| errors::scalar_op(|| t.f_clamp(min, max)))
            .map(NativeTensor::wrap)
    }
    #[napi]
    pub fn gelu(&self, approximate: Option<String>) -> Result<NativeTensor> {
        ok(self.t()?.f_gelu(approximate.as_deref().unwrap_or("none")))
    }
    #[napi]
    pub fn where_(&self, condition: &NativeTensor, other: &NativeTensor) -> Result<NativeTensor> {
        ok(self.t()?.f_where_self(condition.t()?, other.t()?))
    }

    // ---- reductions ----

    #[napi]
    pub fn sum(
        &self,
        dims: Option<Vec<i64>>,
        keepdim: Option<bool>,
        dtype_name: Option<String>,
    ) -> Result<NativeTensor> {
        let kind = opt_kind(dtype_name)?;
        match dims {
            None => ok(self.t()?.f_sum(kind)),
            Some(d) => {
                ok(self
                    .t()?
                    .f_sum_dim_intlist(d.as_slice(), keepdim.unwrap_or(false), kind))
            }
        }
    }
    #[napi]
    pub fn mean(
        &self,
        dims: Option<Vec<i64>>,
        keepdim: Option<bool>,
        dtype_name: Option<String>,
    ) -> Result<NativeTensor> {
        let kind = opt_kind(dtype_name)?;
        match dims {
            None => ok(self.t()?.f_mean(kind)),
            Some(d) => ok(self
                .t()?
                .f_mean_dim(d.as_slice(), keepdim.unwrap_or(false), kind)),
        }
    }
    #[napi]
    pub fn amax(&self, dims: Vec<i64>, keepdim: Option<bool>) -> Result<NativeTensor> {
        ok(self.t()?.f_amax(dims.as_slice(), keepdim.unwrap_or(false)))
    }
    #[napi]
    pub fn amin(&self, dims: Vec<i64>, keepdim: Option<bool>) -> Result<NativeTensor> {
        ok(self.t()?.f_amin(dims.as_slice(), keepdim.unwrap_or(false)))
    }
    /// `max()` over all elements.
    #[napi]
    pub fn max_all(&self) -> Result<NativeTensor> {
        ok(self.t()?.f_max())
    }
    #[napi]
    pub fn min_all(&self) -> Result<NativeTensor> {
        ok(self.t()?.f_min())
    }
    /// `max(dim)`: values and indices.
    #[napi]
    pub fn max_dim(&self, dim: i64, keepdim: Option<bool>) -> Result<Vec<NativeTensor>> {
        let (v, i) = self
            .t()?
            .f_max_dim(dim, keepdim.unwrap_or(false))
            .or_compute()?;
        Ok(vec![NativeTensor::wrap(v), NativeTensor::wrap(i)])
    }
    #[napi]
    pub fn argmax(&self, dim: Option<i64>, keepdim: Option<bool>) -> Result<NativeTensor> {
        ok(self.t()?.f_argmax(dim, keepdim.unwrap_or(false)))
    }
    #[napi]
    pub fn var(
        &self,
        dims: Option<Vec<i64>>,
        correction: Option<f64>,
        keepdim: Option<bool>,
    ) -> Result<NativeTensor> {
        let c = correction.unwrap_or(1.0);
        let t = self.t()?;
        errors::scalar_op(|| t.f_var_correction(dims.as_deref(), c, keepdim.unwrap_or(false)))
            .map(NativeTensor::wrap)
    }

    // ---- shape ----

    #[napi]
    pub fn view(&self, shape: Vec<i64>) -> Result<NativeTensor> {
        ok(self.t()?.f_view_(shape.as_slice()))
    }
    #[napi]
    pub fn reshape(&self, shape: Vec<i64>) -> Result<NativeTensor> {
        ok(self.t()?.f_reshape(shape.as_slice()))
    }
    #[napi]
    pub fn flatten(&self, start_dim: i64, end_dim: i64) -> Result<NativeTensor> {
        ok(self.t()?.f_flatten(start_dim, end_dim))
    }
    #[napi]
    pub fn permute(&self, dims: Vec<i64>) -> Result<NativeTensor> {
        ok(self.t()?.f_permute(dims.as_slice()))
    }
    #[napi]
    pub fn transpose(&self, dim0: i64, dim1: i64) -> Result<NativeTensor> {
        ok(self.t()?.f_transpose(dim0, dim1))
    }
    #[napi]
    pub fn unsqueeze(&self, dim: i64) -> Result<NativeTensor> {
        ok(self.t()?.f_unsqueeze(dim))
    }
    #[napi]
    pub fn squeeze(&self, dim: Option<i64>) -> Result<NativeTensor> {
        match dim {
            None => ok(self.t()?.f_squeeze()),
            Some(d) => ok(self.t()?.f_squeeze_dim(d)),
        }
    }
    #[napi]
    pub fn narrow(&self, dim: i64, start: i64, length: i64) -> Result<NativeTensor> {
        ok(self.t()?.f_narrow(dim, start, length))
    }
    #[napi]
    pub fn select(&self, dim: i64, index: i64) -> Result<NativeTensor> {
        ok(self.t()?.f_select(dim, index))
    }
    #[napi]
    pub fn index_select(&self, dim: i64, index: &NativeTensor) -> Result<NativeTensor> {
        ok(self.t()?.f_index_select(dim, index.t()?))
    }
    #[napi]
    pub fn gather(&self, dim: i64, index: &NativeTensor) -> Result<NativeTensor> {
        ok(self.t()?.f_gather(dim, index.t()?, false))
    }
    #[napi]
    pub fn expand(&self, shape: Vec<i64>) -> Result<NativeTensor> {
        ok(self.t()?.f_expand(shape.as_slice(), false))
    }
    #[napi]
    pub fn chunk(&self, chunks: i64, dim: i64) -> Result<Vec<NativeTensor>> {
        Ok(self
            .t()?
            .f_chunk(chunks, dim)
            .or_compute()?
            .into_iter()
            .map(NativeTensor::wrap)
            .collect())
    }
    #[napi]
    pub fn cat(tensors: Vec<ClassInstance<NativeTensor>>, dim: i64) -> Result<NativeTensor> {
        ok(Tensor::f_cat(&list(&tensors)?, dim))
    }
    #[napi]
    pub fn stack(tensors: Vec<ClassInstance<NativeTensor>>, dim: i64) -> Result<NativeTensor> {
        ok(Tensor::f_stack(&list(&tensors)?, dim))
    }

    // ---- casts, devices, copies ----

    /// `tensor.to(dtype?, device?, non_blocking, copy)`.
    #[napi]
    pub fn to(
        &self,
        dtype_name: Option<String>,
        device: Option<String>,
        non_blocking: Option<bool>,
        copy: Option<bool>,
    ) -> Result<NativeTensor> {
        let kind = match dtype_name {
            Some(d) => dtype::kind(&d)?,
            None => self.t()?.kind(),
        };
        let dev = match device {
            Some(d) => dtype::device(&d)?,
            None => self.t()?.device(),
        };
        ok(self.t()?.f_to_dtype_layout(
            (kind, dev),
            non_blocking.unwrap_or(false),
            copy.unwrap_or(false),
        ))
    }
    /// Pinned (page-locked) host copy, for fast async uploads.
    #[napi]
    pub fn pin_memory(&self) -> Result<NativeTensor> {
        ok(self.t()?.f_pin_memory(tch::Device::Cuda(0)))
    }
    #[napi]
    pub fn is_pinned(&self) -> Result<bool> {
        Ok(self.t()?.f_is_pinned(tch::Device::Cuda(0)).unwrap_or(false))
    }

    // ---- in place (the JS side returns `this`) ----

    #[napi(js_name = "copy_")]
    pub fn copy_(&mut self, src: &NativeTensor) -> Result<()> {
        self.t_mut()?.f_copy_(src.t()?).or_compute()
    }
    #[napi(js_name = "fill_")]
    pub fn fill_(&mut self, value: f64) -> Result<()> {
        self.t_mut()
            .and_then(|t| errors::scalar_op(|| t.f_fill_(value)))
            .map(drop)
    }
    #[napi(js_name = "zero_")]
    pub fn zero_(&mut self) -> Result<()> {
        self.t_mut()?.f_zero_().or_compute().map(drop)
    }
    #[napi(js_name = "add_")]
    pub fn add_(&mut self, other: &NativeTensor, alpha: Option<f64>) -> Result<()> {
        match alpha {
            None => self.t_mut()?.f_add_(other.t()?).or_compute().map(drop),
            Some(a) => {
                let scaled = other
                    .t()
                    .and_then(|t| errors::scalar_op(|| t.f_mul_scalar(a)))?;
                self.t_mut()?.f_add_(&scaled).or_compute().map(drop)
            }
        }
    }
    /// In place `self += s`; an integral `s` stays an integer (PyTorch refuses to add a float
    /// into an integer tensor in place, e.g. BatchNorm's `num_batches_tracked += 1`).
    #[napi(js_name = "addScalar_")]
    pub fn add_scalar_(&mut self, s: f64) -> Result<()> {
        let integral =
            !self.t()?.is_floating_point() && !self.t()?.is_complex() && s.fract() == 0.0;
        if integral {
            self.t_mut()
                .and_then(|t| errors::scalar_op(|| t.f_add_scalar_(s as i64)))
                .map(drop)
        } else {
            self.t_mut()
                .and_then(|t| errors::scalar_op(|| t.f_add_scalar_(s)))
                .map(drop)
        }
    }
    #[napi(js_name = "mulScalar_")]
    pub fn mul_scalar_(&mut self, s: f64) -> Result<()> {
        self.t_mut()
            .and_then(|t| errors::scalar_op(|| t.f_mul_scalar_(s)))
            .map(drop)
    }
    #[napi(js_name = "uniform_")]
    pub fn uniform_(&mut self, from: f64, to: f64) -> Result<()> {
        self.t_mut()?.f_uniform_(from, to).or_compute().map(drop)
    }
    #[napi(js_name = "normal_")]
    pub fn normal_(&mut self, mean: f64, std: f64) -> Result<()> {
        self.t_mut()?.f_normal_(mean, std).or_compute().map(drop)
    }

    /// Elementwise equality of shape, dtype and values (`torch.equal`).
    #[napi]
    pub fn equal(&self, other: &NativeTensor) -> Result<bool> {
        self.t()?.f_equal(other.t()?).or_compute()
    }
    #[napi]
    pub fn allclose(&self, other: &NativeTensor, rtol: f64, atol: f64) -> Result<bool> {
        self.t()?
            .f_allclose(other.t()?, rtol, atol, false)
            .or_compute()
    }
    /// The value of a one-element tensor as a double.
    #[napi]
    pub fn item(&self) -> Result<f64> {
        if self.t()?.numel() != 1 {
            return Err(errors::invalid(format!(
                "a Tensor with {} elements cannot be converted to Scalar",
                self.t()?.numel()
            )));
        }
        self.t()?.f_double_value(&[]).or_compute()
    }

    // ---- factories ----

    #[napi]
    pub fn zeros(shape: Vec<i64>, dtype_name: String, device: String) -> Result<NativeTensor> {
        ok(Tensor::f_zeros(
            shape.as_slice(),
            (dtype::kind(&dtype_name)?, dtype::device(&device)?),
        ))
    }
    #[napi]
    pub fn ones(shape: Vec<i64>, dtype_name: String, device: String) -> Result<NativeTensor> {
        ok(Tensor::f_ones(
            shape.as_slice(),
            (dtype::kind(&dtype_name)?, dtype::device(&device)?),
        ))
    }
    #[napi]
    pub fn full(
        shape: Vec<i64>,
        value: f64,
        dtype_name: String,
        device: String,
    ) -> Result<NativeTensor> {
        let kind = (dtype::kind(&dtype_name)?, dtype::device(&device)?);
        errors::scalar_op(|| Tensor::f_full(shape.as_slice(), value, kind)).map(NativeTensor::wrap)
    }
    #[napi]
    pub fn randn(shape: Vec<i64>, dtype_name: String, device: String) -> Result<NativeTensor> {
        ok(Tensor::f_randn(
            shape.as_slice(),
            (dtype::kind(&dtype_name)?, dtype::device(&device)?),
        ))
    }
    #[napi]
    pub fn rand(shape: Vec<i64>, dtype_name: String, device: String) -> Result<NativeTensor> {
        ok(Tensor::f_rand(
            shape.as_slice(),
            (dtype::kind(&dtype_name)?, dtype::device(&device)?),
        ))
    }
    #[napi]
    pub fn zeros_like(&self) -> Result<NativeTensor> {
        ok(self.t()?.f_zeros_like())
    }
}
