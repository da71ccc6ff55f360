//! `torch.nn.functional`: the layers' forward passes and the losses, on libtorch's kernels so
//! that outputs match PyTorch's on the same device.
use crate::dtype;
use crate::errors::{self, OrCompute, Result};
use crate::native::NativeTensor;
use napi::bindgen_prelude::ClassInstance;
use napi_derive::napi;
use tch::{Reduction, Tensor};

fn ok(t: std::result::Result<Tensor, tch::TchError>) -> Result<NativeTensor> {
    t.or_compute().map(NativeTensor::wrap)
}

fn reduction(r: &Option<String>) -> Result<Reduction> {
    Ok(match r.as_deref().unwrap_or("mean") {
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        "none" => Reduction::None,
        other => {
            return Err(errors::invalid(format!(
                "{other} is not a valid value for reduction"
            )))
        }
    })
}

fn opt(t: Option<&NativeTensor>) -> Result<Option<&Tensor>> {
    t.map(|t| t.t()).transpose()
}

#[napi]
impl NativeTensor {
    #[napi]
    pub fn linear(
        &self,
        weight: &NativeTensor,
        bias: Option<&NativeTensor>,
    ) -> Result<NativeTensor> {
        ok(self.t()?.f_linear(weight.t()?, opt(bias)?))
    }
    #[napi]
    pub fn bilinear(
        &self,
        input2: &NativeTensor,
        weight: &NativeTensor,
        bias: Option<&NativeTensor>,
    ) -> Result<NativeTensor> {
        ok(Tensor::f_bilinear(
            self.t()?,
            input2.t()?,
            weight.t()?,
            opt(bias)?,
        ))
    }
    /// conv1d/2d/3d by the weight's rank; `padding` as numbers (string modes are resolved in JS).
    #[napi]
    pub fn conv(
        &self,
        weight: &NativeTensor,
        bias: Option<&NativeTensor>,
        stride: Vec<i64>,
        padding: Vec<i64>,
        dilation: Vec<i64>,
        groups: i64,
    ) -> Result<NativeTensor> {
        let b = opt(bias)?;
        match weight.t()?.dim() {
            3 => ok(self.t()?.f_conv1d(
                weight.t()?,
                b,
                stride.as_slice(),
                padding.as_slice(),
                dilation.as_slice(),
                groups,
            )),
            4 => ok(self.t()?.f_conv2d(
                weight.t()?,
                b,
                stride.as_slice(),
                padding.as_slice(),
                dilation.as_slice(),
                groups,
            )),
            5 => ok(self.t()?.f_conv3d(
                weight.t()?,
                b,
                stride.as_slice(),
                padding.as_slice(),
                dilation.as_slice(),
                groups,
            )),
            d => Err(errors::invalid(format!(
                "conv weight must have 3, 4 or 5 dims, got {d}"
            ))),
        }
    }
    /// conv_transpose1d/2d/3d by the weight's rank.
    #[napi]
    pub fn conv_transpose(
        &self,
        weight: &NativeTensor,
        bias: Option<&NativeTensor>,
        stride: Vec<i64>,
        padding: Vec<i64>,
        output_padding: Vec<i64>,
        groups: i64,
        dilation: Vec<i64>,
    ) -> Result<NativeTensor> {
        let b = opt(bias)?;
        let (s, p, o, d) = (
            stride.as_slice(),
            padding.as_slice(),
            output_padding.as_slice(),
            dilation.as_slice(),
        );
        match weight.t()?.dim() {
            3 => ok(self
                .t()?
                .f_conv_transpose1d(weight.t()?, b, s, p, o, groups, d)),
            4 => ok(self
                .t()?
                .f_conv_transpose2d(weight.t()?, b, s, p, o, groups, d)),
            5 => ok(self
                .t()?
                .f_conv_transpose3d(weight.t()?, b, s, p, o, groups, d)),
            n => Err(errors::invalid(format!(
                "conv_transpose weight must have 3, 4 or 5 dims, got {n}"
            ))),
        }
    }
    /// `F.pad(input, pad, mode, value)`: constant, reflect, replicate or circular.
    #[napi]
    pub fn pad(&self, pad: Vec<i64>, mode: String, value: Option<f64>) -> Result<NativeTensor> {
        ok(self.t()?.f_pad(pad.as_slice(), &mode, value))
    }
    /// `F.max_pool2d(..., return_indices=True)`: `[values, indices]`.
    #[napi(js_name = "maxPool2dWithIndices")]
    pub fn max_pool2d_with_indices(
        &self,
        kernel: Vec<i64>,
        stride: Vec<i64>,
        padding: Vec<i64>,
        dilation: Vec<i64>,
        ceil_mode: bool,
    ) -> Result<Vec<NativeTensor>> {
        let (v, i) = self
            .t()?
            .f_max_pool2d_with_indices(
                kernel.as_slice(),
                stride.as_slice(),
                padding.as_slice(),
                dilation.as_slice(),
                ceil_mode,
            )
            .or_compute()?;
        Ok(vec![NativeTensor::wrap(v), NativeTensor::wrap(i)])
    }
    /// max_pool1d/2d/3d by the kernel's length.
    #[napi]
    pub fn max_pool(
        &self,
        kernel: Vec<i64>,
        stride: Vec<i64>,
        padding: Vec<i64>,
        dilation: Vec<i64>,
        ceil_mode: bool,
    ) -> Result<NativeTensor> {
        match kernel.len() {
            1 => ok(self.t()?.f_max_pool1d(
                kernel.as_slice(),
                stride.as_slice(),
                padding.as_slice(),
                dilation.as_slice(),
                ceil_mode,
            )),
            2 => ok(self.t()?.f_max_pool2d(
                kernel.as_slice(),
                stride.as_slice(),
                padding.as_slice(),
                dilation.as_slice(),
                ceil_mode,
            )),
            3 => ok(self.t()?.f_max_pool3d(
                kernel.as_slice(),
                stride.as_slice(),
                padding.as_slice(),
                dilation.as_slice(),
                ceil_mode,
            )),
            n => Err(errors::invalid(format!("max_pool kernel of {n} dims"))),
        }
    }
    #[napi]
    pub fn avg_pool(
        &self,
        kernel: Vec<i64>,
        stride: Vec<i64>,
        padding: Vec<i64>,
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: Option<i64>,
    ) -> Result<NativeTensor> {
        match kernel.len() {
            1 => ok(self.t()?.f_avg_pool1d(
                kernel.as_slice(),
                stride.as_slice(),
                padding.as_slice(),
                ceil_mode,
                count_include_pad,
            )),
            2 => ok(self.t()?.f_avg_pool2d(
                kernel.as_slice(),
                stride.as_slice(),
                padding.as_slice(),
                ceil_mode,
                count_include_pad,
                divisor_override,
            )),
            3 => ok(self.t()?.f_avg_pool3d(
                kernel.as_slice(),
                stride.as_slice(),
                padding.as_slice(),
                ceil_mode,
                count_include_pad,
                divisor_override,
            )),
            n => Err(errors::invalid(format!("avg_pool kernel of {n} dims"))),
        }
    }
    #[napi]
    pub fn adaptive_avg_pool(&self, output_size: Vec<i64>) -> Result<NativeTensor> {
        match output_size.len() {
            1 => ok(self.t()?.f_adaptive_avg_pool1d(output_size.as_slice())),
            2 => ok(self.t()?.f_adaptive_avg_pool2d(output_size.as_slice())),
            3 => ok(self.t()?.f_adaptive_avg_pool3d(output_size.as_slice())),
            n => Err(errors::invalid(format!("adaptive_avg_pool of {n} dims"))),
        }
    }
    /// `F.batch_norm`; in training mode libtorch updates running_mean/var in place.
    #[napi]
    pub fn batch_norm(
        &self,
        running_mean: Option<&NativeTensor>,
        running_var: Option<&NativeTensor>,
        weight: Option<&NativeTensor>,
        bias: Option<&NativeTensor>,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> Result<NativeTensor> {
        ok(self.t()?.f_batch_norm(
            opt(weight)?,
            opt(bias)?,
            opt(running_mean)?,
            opt(running_var)?,
            training,
            momentum,
            eps,
            true,
        ))
    }
    #[napi]
    pub fn layer_norm(
        &self,
        normalized_shape: Vec<i64>,
        weight: Option<&NativeTensor>,
        bias: Option<&NativeTensor>,
        eps: f64,
    ) -> Result<NativeTensor> {
        ok(self.t()?.f_layer_norm(
            normalized_shape.as_slice(),
            opt(weight)?,
            opt(bias)?,
            eps,
            true,
        ))
    }
    #[napi]
    pub fn group_norm(
        &self,
        num_groups: i64,
        weight: Option<&NativeTensor>,
        bias: Option<&NativeTensor>,
        eps: f64,
    ) -> Result<NativeTensor> {
        ok(self
            .t()?
            .f_group_norm(num_groups, opt(weight)?, opt(bias)?, eps, true))
    }
    /// `F.embedding(self=indices, weight)`.
    #[napi]
    pub fn embedding(
        &self,
        weight: &NativeTensor,
        padding_idx: Option<i64>,
        scale_grad_by_freq: Option<bool>,
        sparse: Option<bool>,
    ) -> Result<NativeTensor> {
        ok(Tensor::f_embedding(
            weight.t()?,
            self.t()?,
            padding_idx.unwrap_or(-1),
            scale_grad_by_freq.unwrap_or(false),
            sparse.unwrap_or(false),
        ))
    }
    #[napi]
    pub fn dropout(&self, p: f64, train: bool) -> Result<NativeTensor> {
        ok(self.t()?.f_dropout(p, train))
    }
    #[napi]
    pub fn softmax(&self, dim: i64, dtype_name: Option<String>) -> Result<NativeTensor> {
        let kind = dtype_name.map(|d| dtype::kind(&d)).transpose()?;
        ok(self.t()?.f_softmax(dim, kind))
    }
    #[napi]
    pub fn log_softmax(&self, dim: i64, dtype_name: Option<String>) -> Result<NativeTensor> {
        let kind = dtype_name.map(|d| dtype::kind(&d)).transpose()?;
        ok(self.t()?.f_log_softmax(dim, kind))
    }
    #[napi]
    pub fn cross_entropy(
        &self,
        target: &NativeTensor,
        weight: Option<&NativeTensor>,
        reduction_: Option<String>,
        ignore_index: Option<i64>,
        label_smoothing: Option<f64>,
    ) -> Result<NativeTensor> {
        ok(self.t()?.f_cross_entropy_loss(
            target.t()?,
            opt(weight)?,
            reduction(&reduction_)?,
            ignore_index.unwrap_or(-100),
            label_smoothing.unwrap_or(0.0),
        ))
    }
    #[napi]
    pub fn nll_loss(
        &self,
        target: &NativeTensor,
        weight: Option<&NativeTensor>,
        reduction_: Option<String>,
        ignore_index: Option<i64>,
    ) -> Result<NativeTensor> {
        ok(self.t()?.f_nll_loss(
            target.t()?,
            opt(weight)?,
            reduction(&reduction_)?,
            ignore_index.unwrap_or(-100),
        ))
    }
    #[napi]
    pub fn mse_loss(
        &self,
        target: &NativeTensor,
        reduction_: Option<String>,
    ) -> Result<NativeTensor> {
        ok(self.t()?.f_mse_loss(target.t()?, reduction(&reduction_)?))
    }
    #[napi]
    pub fn l1_loss(
        &self,
        target: &NativeTensor,
        reduction_: Option<String>,
    ) -> Result<NativeTensor> {
        ok(self.t()?.f_l1_loss(target.t()?, reduction(&reduction_)?))
    }
    #[napi]
    pub fn binary_cross_entropy_with_logits(
        &self,
        target: &NativeTensor,
        weight: Option<&NativeTensor>,
        pos_weight: Option<&NativeTensor>,
        reduction_: Option<String>,
    ) -> Result<NativeTensor> {
        ok(self.t()?.f_binary_cross_entropy_with_logits(
            target.t()?,
            opt(weight)?,
            opt(pos_weight)?,
            reduction(&reduction_)?,
        ))
    }

    /// LSTM/GRU/RNN over the whole sequence (libtorch's fused implementation, as nn.LSTM
    /// calls it). `hx` is `[h0, c0]` for LSTM, `[h0]` otherwise; `params` in PyTorch's
    /// `_flat_weights` order. Returns `[output, h_n(, c_n)]`.
    #[napi]
    pub fn rnn(
        &self,
        mode: String,
        hx: Vec<ClassInstance<NativeTensor>>,
        params: Vec<ClassInstance<NativeTensor>>,
        has_biases: bool,
        num_layers: i64,
        dropout: f64,
        train: bool,
        bidirectional: bool,
        batch_first: bool,
    ) -> Result<Vec<NativeTensor>> {
        let ps: Vec<&Tensor> = params.iter().map(|p| p.t()).collect::<Result<_>>()?;
        let h: Vec<&Tensor> = hx.iter().map(|p| p.t()).collect::<Result<_>>()?;
        let first = h
            .first()
            .copied()
            .ok_or_else(|| errors::invalid("rnn needs an initial hidden state"))?;
        match mode.as_str() {
            "LSTM" => {
                let (o, hn, cn) = self
                    .t()?
                    .f_lstm(
                        &h,
                        &ps,
                        has_biases,
                        num_layers,
                        dropout,
                        train,
                        bidirectional,
                        batch_first,
                    )
                    .or_compute()?;
                Ok(vec![
                    NativeTensor::wrap(o),
                    NativeTensor::wrap(hn),
                    NativeTensor::wrap(cn),
                ])
            }
            "GRU" | "RNN_TANH" | "RNN_RELU" => {
                // The three take the same arguments: input, h0, flat weights, then the flags.
                macro_rules! run {
                    ($f:ident) => {
                        self.t()?.$f(
                            first,
                            &ps,
                            has_biases,
                            num_layers,
                            dropout,
                            train,
                            bidirectional,
                            batch_first,
                        )
                    };
                }
                let (o, hn) = match mode.as_str() {
                    "GRU" => run!(f_gru),
                    "RNN_TANH" => run!(f_rnn_tanh),
                    _ => run!(f_rnn_relu),
                }
                .or_compute()?;
                Ok(vec![NativeTensor::wrap(o), NativeTensor::wrap(hn)])
            }
            other => Err(errors::invalid(format!("unknown RNN mode {other}"))),
        }
    }
}
