// CUDA implementations of inception_dwconv::fused_forward / fused_backward (schema: csrc/ops.cpp):
// argument checks, device guard, output allocation; the kernels live in conv.cu and grad_weight.cu.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "launch.cuh"

namespace idw {
namespace {

void check_same(const at::Tensor& t, const char* name, const at::Tensor& x) {
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), "inception_dwconv: ", name, " has dtype ", t.scalar_type(),
              " but x has dtype ", x.scalar_type(), "; they must match");
  TORCH_CHECK(t.device() == x.device(), "inception_dwconv: ", name, " is on ", t.device(), " but x is on ",
              x.device(), "; they must be on the same device");
}

// Validates x and the three weights; returns gc.
int64_t check_weights(const at::Tensor& x, const at::Tensor& w_hw, const at::Tensor& w_w, const at::Tensor& w_h,
                      int64_t dilation) {
  TORCH_CHECK(x.dim() == 4, "inception_dwconv: x must be 4-D (N, C, H, W), got ", x.dim(), "-D");
  TORCH_CHECK(x.is_cuda(), "inception_dwconv (CUDA): x must be a CUDA tensor");
  const auto st = x.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
              "inception_dwconv: unsupported dtype ", st, " (float32, float64, float16, bfloat16)");
  const char* names[3] = {"weight_hw", "weight_w", "weight_h"};
  const at::Tensor* ws[3] = {&w_hw, &w_w, &w_h};
  for (int i = 0; i < 3; ++i) {
    const at::Tensor& w = *ws[i];
    check_same(w, names[i], x);
    TORCH_CHECK(w.dim() == 4 && w.size(1) == 1, "inception_dwconv: ", names[i],
                " must have shape (gc, 1, kh, kw) (a depthwise Conv2d weight), got ", w.sizes());
  }
  const int64_t gc = w_hw.size(0);
  TORCH_CHECK(w_w.size(0) == gc && w_h.size(0) == gc,
              "inception_dwconv: the three branch weights must have the same channel count, got ", gc, ", ",
              w_w.size(0), ", ", w_h.size(0));
  TORCH_CHECK(w_hw.size(2) == w_hw.size(3), "inception_dwconv: weight_hw must be square (gc, 1, k, k), got ",
              w_hw.sizes());
  TORCH_CHECK(w_w.size(2) == 1, "inception_dwconv: weight_w must have shape (gc, 1, 1, K), got ", w_w.sizes());
  TORCH_CHECK(w_h.size(3) == 1, "inception_dwconv: weight_h must have shape (gc, 1, K, 1), got ", w_h.sizes());
  TORCH_CHECK(w_hw.size(3) % 2 == 1, "inception_dwconv: weight_hw kernel size must be odd, got ", w_hw.size(3));
  TORCH_CHECK(w_w.size(3) % 2 == 1, "inception_dwconv: weight_w kernel size must be odd, got ", w_w.size(3));
  TORCH_CHECK(w_h.size(2) % 2 == 1, "inception_dwconv: weight_h kernel size must be odd, got ", w_h.size(2));
  TORCH_CHECK(3 * gc <= x.size(1), "inception_dwconv: x has ", x.size(1), " channels but the conv branches need 3 * ",
              gc, " = ", 3 * gc, " (3 * gc <= C)");
  TORCH_CHECK(dilation >= 1, "inception_dwconv: dilation must be >= 1, got ", dilation);
  TORCH_CHECK(x.size(1) < (int64_t(1) << 30) && x.size(2) < (int64_t(1) << 30) && x.size(3) < (int64_t(1) << 30),
              "inception_dwconv (CUDA): C, H and W must each be < 2^30");
  return gc;
}

void check_bias(const std::optional<at::Tensor>& b, const char* name, const at::Tensor& x, int64_t gc) {
  if (!b.has_value() || !b->defined()) return;
  check_same(*b, name, x);
  TORCH_CHECK(b->dim() == 1 && b->size(0) == gc, "inception_dwconv: ", name, " must have shape (", gc, ",), got ",
              b->sizes());
}

at::Tensor contiguous_or_undefined(const std::optional<at::Tensor>& b) {
  if (!b.has_value() || !b->defined()) return at::Tensor();
  return b->contiguous();
}

at::Tensor fused_forward_cuda(const at::Tensor& x, const at::Tensor& weight_hw, const std::optional<at::Tensor>& bias_hw,
                              const at::Tensor& weight_w, const std::optional<at::Tensor>& bias_w,
                              const at::Tensor& weight_h, const std::optional<at::Tensor>& bias_h, int64_t dilation) {
  const int64_t gc = check_weights(x, weight_hw, weight_w, weight_h, dilation);
  check_bias(bias_hw, "bias_hw", x, gc);
  check_bias(bias_w, "bias_w", x, gc);
  check_bias(bias_h, "bias_h", x, gc);
  const c10::cuda::CUDAGuard guard(x.device());
  const bool cl = is_channels_last_like(x);
  at::Tensor out = at::empty(x.sizes(), x.options(), cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  if (out.numel() == 0) return out;
  conv_cuda(x, out, weight_hw.contiguous(), contiguous_or_undefined(bias_hw), weight_w.contiguous(),
            contiguous_or_undefined(bias_w), weight_h.contiguous(), contiguous_or_undefined(bias_h), dilation,
            /*flip=*/false, cl);
  return out;
}

std::vector<at::Tensor> fused_backward_cuda(const at::Tensor& grad_out, const at::Tensor& x,
                                            const at::Tensor& weight_hw, const at::Tensor& weight_w,
                                            const at::Tensor& weight_h, int64_t dilation, bool compute_input,
                                            bool compute_weight) {
  const int64_t gc = check_weights(x, weight_hw, weight_w, weight_h, dilation);
  (void)gc;
  check_same(grad_out, "grad_out", x);
  TORCH_CHECK(grad_out.sizes() == x.sizes(), "inception_dwconv: grad_out has shape ", grad_out.sizes(),
              " but x has shape ", x.sizes(), "; they must match");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor w_hw = weight_hw.contiguous(), w_w = weight_w.contiguous(), w_h = weight_h.contiguous();
  std::vector<at::Tensor> res;
  if (compute_input) {
    const bool cl = is_channels_last_like(x);
    at::Tensor gx =
        at::empty(x.sizes(), x.options(), cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    if (gx.numel() > 0) {
      conv_cuda(grad_out, gx, w_hw, at::Tensor(), w_w, at::Tensor(), w_h, at::Tensor(), dilation, /*flip=*/true, cl);
    }
    res.push_back(gx);
  }
  if (compute_weight) {
    for (auto& g : grad_weight_cuda(grad_out, x, w_hw, w_w, w_h, dilation)) res.push_back(g);
  }
  return res;
}

}  // namespace
}  // namespace idw

TORCH_LIBRARY_IMPL(inception_dwconv, CUDA, m) {
  m.impl("fused_forward", &idw::fused_forward_cuda);
  m.impl("fused_backward", &idw::fused_backward_cuda);
}
