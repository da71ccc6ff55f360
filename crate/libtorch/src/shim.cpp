// The few libtorch calls tch does not expose, as C functions for Rust (src/shim.rs).
//
// * from_blob with a deleter: libtorch then keeps memory that JS owns alive until the last
//   tensor sharing it dies (tch's from_blob has no deleter).
// * storage facts (base pointer, byte size) so JS can view a result's whole storage.
// * setting or clearing `.grad`.
// * the optimizer updates, written op for op as torch/optim/*.py's `_single_tensor_*`
//   functions (torch 2.11), because tch drops the `value=` scalar of addcmul_/addcdiv_ and
//   numerics must match PyTorch's update bit for bit where the ops are the same.
// * a staged host-to-device copy: file bytes -> two pinned buffers -> async copies, so reading
//   and the transfer overlap without a full host copy of the checkpoint.
//
// Every function catches C++ exceptions and reports them through `err` (a malloc'd string the
// caller frees): an exception crossing into Rust would abort the Node process.
#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>

#define TS_TRY try {
#define TS_CATCH(ret)                                                                      \
  }                                                                                        \
  catch (const std::exception &e) {                                                        \
    *err = strdup(e.what());                                                               \
    return ret;                                                                            \
  }

static at::Tensor &T(void *p) { return *static_cast<at::Tensor *>(p); }

extern "C" {

typedef void (*ts_release_fn)(void *ctx);

void *ts_from_blob(void *data, const int64_t *sizes, size_t ndim, const int64_t *strides,
                   int scalar_type, ts_release_fn release, void *ctx, char **err) {
  TS_TRY
  auto opts = at::TensorOptions().dtype(static_cast<at::ScalarType>(scalar_type));
  at::Tensor t = at::from_blob(
      data, at::IntArrayRef(sizes, ndim), at::IntArrayRef(strides, ndim),
      [release, ctx](void *) { release(ctx); }, opts);
  return new at::Tensor(std::move(t));
  TS_CATCH(nullptr)
}

// Base address and byte size of the tensor's storage (0/0 when it has none).
int ts_storage_info(void *t, uint64_t *base, uint64_t *nbytes, char **err) {
  TS_TRY
  const at::Tensor &x = T(t);
  if (!x.defined() || !x.has_storage()) {
    *base = 0;
    *nbytes = 0;
    return 0;
  }
  auto s = x.storage();
  *base = reinterpret_cast<uint64_t>(s.data());
  *nbytes = s.nbytes();
  return 0;
  TS_CATCH(-1)
}

// storage_offset() and is_leaf().
int ts_tensor_meta(void *t, int64_t *storage_offset, int *is_leaf, char **err) {
  TS_TRY
  *storage_offset = T(t).storage_offset();
  *is_leaf = T(t).is_leaf() ? 1 : 0;
  return 0;
  TS_CATCH(-1)
}

// `t.backward(gradient, retain_graph, create_graph)`; g may be null.
int ts_backward(void *t, void *g, int retain_graph, int create_graph, char **err) {
  TS_TRY
  T(t).backward(g ? T(g) : at::Tensor(), retain_graph ? std::optional<bool>(true) : std::optional<bool>(),
                create_graph != 0);
  return 0;
  TS_CATCH(-1)
}

// A 1-D uint8 tensor over the whole of t's storage (shares it; any device).
void *ts_storage_tensor(void *t, char **err) {
  TS_TRY
  const at::Tensor &x = T(t);
  auto s = x.storage();
  at::Tensor out = at::empty({0}, x.options().dtype(at::kByte));
  out.set_(s, 0, {(int64_t)s.nbytes()}, {1});
  return new at::Tensor(std::move(out));
  TS_CATCH(nullptr)
}

// `t.grad = g` (g may be null: `t.grad = None`).
int ts_set_grad(void *t, void *g, char **err) {
  TS_TRY
  if (g == nullptr) {
    T(t).mutable_grad().reset();
  } else {
    T(t).mutable_grad() = T(g);
  }
  return 0;
  TS_CATCH(-1)
}

// ---- optimizers: torch/optim/*.py `_single_tensor_*` (torch 2.11), one parameter each ----

// SGD. `buf` is the momentum buffer or null; returns the (possibly new) buffer through
// *buf_out (null when momentum == 0).
int ts_sgd_step(void *param_p, void *grad_p, void *buf_p, double lr, double momentum,
                double dampening, double weight_decay, int nesterov, int maximize,
                void **buf_out, char **err) {
  TS_TRY
  c10::AutoGradMode no_grad(false);
  at::Tensor &param = T(param_p);
  at::Tensor grad = maximize ? T(grad_p).neg() : T(grad_p);
  if (weight_decay != 0) grad = grad.add(param, weight_decay);
  *buf_out = nullptr;
  if (momentum != 0) {
    at::Tensor buf;
    if (buf_p == nullptr) {
      buf = grad.detach().clone();
    } else {
      buf = T(buf_p);
      buf.mul_(momentum).add_(grad, 1 - dampening);
    }
    *buf_out = new at::Tensor(buf);
    if (nesterov) {
      grad = grad.add(buf, momentum);
    } else {
      grad = buf;
    }
  }
  param.add_(grad, -lr);
  return 0;
  TS_CATCH(-1)
}

// Adam / AdamW (decoupled_weight_decay), capturable=False, differentiable=False.
int ts_adam_step(void *param_p, void *grad_p, void *exp_avg_p, void *exp_avg_sq_p,
                 void *max_exp_avg_sq_p, void *step_p, double lr, double beta1, double beta2,
                 double weight_decay, double eps, int amsgrad, int maximize, int decoupled,
                 char **err) {
  TS_TRY
  c10::AutoGradMode no_grad(false);
  at::Tensor param = T(param_p);
  at::Tensor grad = maximize ? T(grad_p).neg() : T(grad_p);
  at::Tensor exp_avg = T(exp_avg_p);
  at::Tensor exp_avg_sq = T(exp_avg_sq_p);
  at::Tensor &step_t = T(step_p);
  step_t.add_(1);
  if (weight_decay != 0) {
    if (decoupled) {
      param.mul_(1 - lr * weight_decay);
    } else {
      grad = grad.add(param, weight_decay);
    }
  }
  std::optional<at::Tensor> max_sq;
  if (amsgrad) max_sq = T(max_exp_avg_sq_p);
  if (param.is_complex()) {
    grad = at::view_as_real(grad);
    exp_avg = at::view_as_real(exp_avg);
    exp_avg_sq = at::view_as_real(exp_avg_sq);
    if (amsgrad) max_sq = at::view_as_real(*max_sq);
    param = at::view_as_real(param);
  }
  exp_avg.lerp_(grad, 1 - beta1);
  exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
  double step = step_t.item<double>();
  double bias_correction1 = 1 - std::pow(beta1, step);
  double bias_correction2 = 1 - std::pow(beta2, step);
  double step_size = lr / bias_correction1;
  double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
  at::Tensor denom;
  if (amsgrad) {
    at::maximum_out(*max_sq, *max_sq, exp_avg_sq);
    denom = (max_sq->sqrt() / bias_correction2_sqrt).add_(eps);
  } else {
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps);
  }
  param.addcdiv_(exp_avg, denom, -step_size);
  return 0;
  TS_CATCH(-1)
}

// RMSprop; grad_avg (centered) and buf (momentum > 0) may be null.
int ts_rmsprop_step(void *param_p, void *grad_p, void *square_avg_p, void *grad_avg_p,
                    void *buf_p, void *step_p, double lr, double alpha, double eps,
                    double weight_decay, double momentum, int centered, int maximize,
                    char **err) {
  TS_TRY
  c10::AutoGradMode no_grad(false);
  at::Tensor param = T(param_p);
  at::Tensor grad = maximize ? T(grad_p).neg() : T(grad_p);
  at::Tensor square_avg = T(square_avg_p);
  T(step_p).add_(1);
  if (weight_decay != 0) grad = grad.add(param, weight_decay);
  bool cplx = param.is_complex();
  if (cplx) {
    param = at::view_as_real(param);
    grad = at::view_as_real(grad);
    square_avg = at::view_as_real(square_avg);
  }
  square_avg.mul_(alpha).addcmul_(grad, grad, 1 - alpha);
  at::Tensor avg;
  if (centered) {
    at::Tensor grad_avg = T(grad_avg_p);
    if (cplx) grad_avg = at::view_as_real(grad_avg);
    grad_avg.lerp_(grad, 1 - alpha);
    avg = square_avg.addcmul(grad_avg, grad_avg, -1).sqrt_();
  } else {
    avg = square_avg.sqrt();
  }
  avg = avg.add_(eps);
  if (momentum > 0) {
    at::Tensor buf = T(buf_p);
    if (cplx) buf = at::view_as_real(buf);
    buf.mul_(momentum).addcdiv_(grad, avg);
    param.add_(buf, -lr);
  } else {
    param.addcdiv_(grad, avg, -lr);
  }
  return 0;
  TS_CATCH(-1)
}

// Adagrad (dense gradients).
int ts_adagrad_step(void *param_p, void *grad_p, void *sum_p, void *step_p, double lr,
                    double lr_decay, double weight_decay, double eps, int maximize,
                    char **err) {
  TS_TRY
  c10::AutoGradMode no_grad(false);
  at::Tensor param = T(param_p);
  at::Tensor &step_t = T(step_p);
  step_t.add_(1);
  double step = step_t.item<double>();
  at::Tensor grad = maximize ? T(grad_p).neg() : T(grad_p);
  at::Tensor state_sum = T(sum_p);
  if (weight_decay != 0) grad = grad.add(param, weight_decay);
  double clr = lr / (1 + (step - 1) * lr_decay);
  if (param.is_complex()) {
    grad = at::view_as_real(grad);
    state_sum = at::view_as_real(state_sum);
    param = at::view_as_real(param);
  }
  state_sum.addcmul_(grad, grad, 1);
  at::Tensor std_ = state_sum.sqrt().add_(eps);
  param.addcdiv_(grad, std_, -clr);
  return 0;
  TS_CATCH(-1)
}

// ---- host -> device ----

// Copies n host byte ranges into n new uint8 tensors on `device` (e.g. "cuda:0"), through two
// pinned staging buffers of `chunk` bytes: while buffer A's async copy runs, the next chunk is
// read (page faults on the mmapped file included) into buffer B. An event per buffer says when
// it may be refilled. Non-CUDA devices (or chunk == 0) fall back to one plain copy each.
int ts_copy_to_device(const void *const *srcs, const uint64_t *sizes, size_t n,
                      const char *device, uint64_t chunk, void **out, char **err) {
  TS_TRY
  at::Device dev(device);
  auto u8 = at::TensorOptions().dtype(at::kByte);
  for (size_t i = 0; i < n; i++) out[i] = nullptr;
  if (!dev.is_cuda() || chunk == 0) {
    for (size_t i = 0; i < n; i++) {
      at::Tensor host = at::from_blob(const_cast<void *>(srcs[i]), {(int64_t)sizes[i]}, u8);
      out[i] = new at::Tensor(host.to(dev, /*non_blocking=*/false, /*copy=*/true));
    }
    return 0;
  }
  c10::impl::VirtualGuardImpl impl(c10::DeviceType::CUDA);
  c10::Device cuda_dev(c10::DeviceType::CUDA, dev.has_index() ? dev.index() : 0);
  c10::Stream stream = impl.getStream(cuda_dev);
  at::Tensor pinned[2] = {at::empty({(int64_t)chunk}, u8.pinned_memory(true)),
                          at::empty({(int64_t)chunk}, u8.pinned_memory(true))};
  std::optional<c10::Event> done[2];
  int k = 0;
  for (size_t i = 0; i < n; i++) {
    at::Tensor dst = at::empty({(int64_t)sizes[i]}, u8.device(cuda_dev));
    const uint8_t *src = static_cast<const uint8_t *>(srcs[i]);
    for (uint64_t off = 0; off < sizes[i]; off += chunk) {
      uint64_t len = std::min<uint64_t>(chunk, sizes[i] - off);
      if (done[k]) done[k]->synchronize();
      std::memcpy(pinned[k].data_ptr(), src + off, len);
      dst.narrow(0, (int64_t)off, (int64_t)len)
          .copy_(pinned[k].narrow(0, 0, (int64_t)len), /*non_blocking=*/true);
      done[k].emplace(c10::DeviceType::CUDA);
      done[k]->record(stream);
      k ^= 1;
    }
    out[i] = new at::Tensor(dst);
  }
  for (auto &e : done)
    if (e) e->synchronize();
  return 0;
  TS_CATCH(-1)
}

}
