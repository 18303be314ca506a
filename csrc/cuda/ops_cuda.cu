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

// The checks every device shares (csrc/common.h), then what the CUDA kernels add; returns gc.
int64_t check_inputs(const at::Tensor& x, const at::Tensor& w_hw, const at::Tensor& w_w, const at::Tensor& w_h,
                     int64_t dilation) {
  const inception_dwconv::Geometry g = inception_dwconv::make_geometry(x, w_hw, w_w, w_h, dilation);
  TORCH_CHECK(x.is_cuda(), "inception_dwconv (CUDA): x must be a CUDA tensor");
  const auto st = x.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
              "inception_dwconv: unsupported dtype ", st, " (float32, float64, float16, bfloat16)");
  TORCH_CHECK(x.size(1) < (int64_t(1) << 30) && x.size(2) < (int64_t(1) << 30) && x.size(3) < (int64_t(1) << 30),
              "inception_dwconv (CUDA): C, H and W must each be < 2^30");
  return g.gc;
}

at::Tensor contiguous_or_undefined(const std::optional<at::Tensor>& b) {
  if (!b.has_value() || !b->defined()) return at::Tensor();
  return b->contiguous();
}

// round: 0, or 1 / 2 for the one-pass autocast kernels (bf16 / fp16; fp32 tensors only).
void check_round(const at::Tensor& x, int round, const char* name) {
  TORCH_CHECK(round == 0 || x.scalar_type() == at::kFloat, "inception_dwconv::", name, " needs an fp32 x, got ",
              x.scalar_type());
}

at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& weight_hw, const std::optional<at::Tensor>& bias_hw,
                        const at::Tensor& weight_w, const std::optional<at::Tensor>& bias_w, const at::Tensor& weight_h,
                        const std::optional<at::Tensor>& bias_h, int64_t dilation, int round, const char* name) {
  const int64_t gc = check_inputs(x, weight_hw, weight_w, weight_h, dilation);
  check_round(x, round, name);
  inception_dwconv::check_bias(x, bias_hw, gc, "bias_hw");
  inception_dwconv::check_bias(x, bias_w, gc, "bias_w");
  inception_dwconv::check_bias(x, bias_h, gc, "bias_h");
  const c10::cuda::CUDAGuard guard(x.device());
  const bool cl = is_channels_last_like(x);
  at::Tensor out = at::empty(x.sizes(), x.options(), output_memory_format(x));
  if (out.numel() == 0) return out;
  conv_cuda(x, out, weight_hw.contiguous(), contiguous_or_undefined(bias_hw), weight_w.contiguous(),
            contiguous_or_undefined(bias_w), weight_h.contiguous(), contiguous_or_undefined(bias_h), dilation,
            /*flip=*/false, cl, round);
  return out;
}

std::vector<at::Tensor> backward_cuda(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight_hw,
                                      const at::Tensor& weight_w, const at::Tensor& weight_h, int64_t dilation,
                                      bool compute_input, bool compute_weight, int round, const char* name) {
  check_inputs(x, weight_hw, weight_w, weight_h, dilation);
  inception_dwconv::check_grad_out(grad_out, x);
  check_round(x, round, name);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor w_hw = weight_hw.contiguous(), w_w = weight_w.contiguous(), w_h = weight_h.contiguous();
  std::vector<at::Tensor> res;
  if (compute_input) {
    const bool cl = is_channels_last_like(x);
    at::Tensor gx = at::empty(x.sizes(), x.options(), output_memory_format(x));
    if (gx.numel() > 0) {
      conv_cuda(grad_out, gx, w_hw, at::Tensor(), w_w, at::Tensor(), w_h, at::Tensor(), dilation, /*flip=*/true, cl,
                round);
    }
    res.push_back(gx);
  }
  if (compute_weight) {
    for (auto& g : grad_weight_cuda(grad_out, x, w_hw, w_w, w_h, dilation, round)) res.push_back(g);
  }
  return res;
}

// The registered kernels: the tensors' own dtype, or (ROUND 1 / 2) the one-pass autocast to bf16 / fp16.
template <int ROUND>
at::Tensor forward_op(const at::Tensor& x, const at::Tensor& weight_hw, const std::optional<at::Tensor>& bias_hw,
                      const at::Tensor& weight_w, const std::optional<at::Tensor>& bias_w, const at::Tensor& weight_h,
                      const std::optional<at::Tensor>& bias_h, int64_t dilation) {
  constexpr const char* name = ROUND == 0 ? "fused_forward" : ROUND == 1 ? "fused_forward_autocast_bf16"
                                                                         : "fused_forward_autocast_fp16";
  return forward_cuda(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, ROUND, name);
}

template <int ROUND>
std::vector<at::Tensor> backward_op(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight_hw,
                                    const at::Tensor& weight_w, const at::Tensor& weight_h, int64_t dilation,
                                    bool compute_input, bool compute_weight) {
  constexpr const char* name = ROUND == 0 ? "fused_backward" : ROUND == 1 ? "fused_backward_autocast_bf16"
                                                                          : "fused_backward_autocast_fp16";
  return backward_cuda(grad_out, x, weight_hw, weight_w, weight_h, dilation, compute_input, compute_weight, ROUND,
                       name);
}

}  // namespace
}  // namespace idw

TORCH_LIBRARY_IMPL(inception_dwconv, CUDA, m) {
  m.impl("fused_forward", &idw::forward_op<0>);
  m.impl("fused_backward", &idw::backward_op<0>);
  m.impl("fused_forward_autocast_bf16", &idw::forward_op<1>);
  m.impl("fused_backward_autocast_bf16", &idw::backward_op<1>);
  m.impl("fused_forward_autocast_fp16", &idw::forward_op<2>);
  m.impl("fused_backward_autocast_fp16", &idw::backward_op<2>);
}
