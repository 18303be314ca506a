// Host-side glue shared by the CUDA launchers: params from tensors, tile choice, declarations.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/MemoryFormat.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common.h"
#include "tile_conv.cuh"

namespace idw {

constexpr int kThreads = 256;                  // threads per block of the tiled kernels
constexpr int64_t kMaxIndex = (int64_t(1) << 31) - 1;

// The output / grad_x memory format rule, shared with the CPU kernels and _layout.py.
using inception_dwconv::is_channels_last_like;
using inception_dwconv::output_memory_format;

// Shape and kernel-size fields of the params (weights already validated).
inline ConvParams base_params(const at::Tensor& x, const at::Tensor& w_hw, const at::Tensor& w_w,
                              const at::Tensor& w_h, int64_t dilation) {
  const int64_t kmax = std::max({w_hw.size(3), w_w.size(3), w_h.size(2)});
  TORCH_CHECK(dilation * (kmax - 1) / 2 < (1 << 28), "inception_dwconv: dilation * (kernel_size - 1) / 2 is too large");
  ConvParams p{};
  set_sizes(p, x.size(0), x.size(1), x.size(2), x.size(3), (int)w_hw.size(0), (int)w_hw.size(3), (int)w_w.size(3),
            (int)w_h.size(2), (int)dilation);
  return p;
}

// Grid of the tiled kernels: x = N * tiles, y = channel blocks.
inline void tile_grid(const ConvParams& p, int64_t* gx, int64_t* gy) {
  grid_size(p, gx, gy);
  TORCH_CHECK(*gx <= kMaxIndex, "inception_dwconv (CUDA): too many tiles (N * tiles = ", *gx, ")");
  TORCH_CHECK(*gy <= 65535, "inception_dwconv (CUDA): too many channel blocks (", *gy, ")");
}

// y = cat(identity(in), conv_sq, conv_1xK, conv_Kx1) of `in` (forward: in = x, with biases), or
// grad_x from grad_out (flip = true, no biases). `out` is preallocated, same shape as `in`.
void conv_cuda(const at::Tensor& in, const at::Tensor& out, const at::Tensor& w_hw, const at::Tensor& b_hw,
               const at::Tensor& w_w, const at::Tensor& b_w, const at::Tensor& w_h, const at::Tensor& b_h,
               int64_t dilation, bool flip, bool channels_last_order, int round = 0);

// [gw_hw, gb_hw, gw_w, gb_w, gw_h, gb_h] from fp32 (fp64 for double) per-tile partial sums
// reduced in a fixed order.
std::vector<at::Tensor> grad_weight_cuda(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& w_hw,
                                         const at::Tensor& w_w, const at::Tensor& w_h, int64_t dilation,
                                         int round = 0);
// round (conv_cuda, grad_weight_cuda): 1 / 2 for fp32 tensors read and written at bf16 / fp16
// precision (RoundedFloat, tile_conv.cuh: the one-pass autocast kernels); 0: the tensors' dtype.

}  // namespace idw
