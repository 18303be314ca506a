// Shared host-side pieces of the fused kernels: input checks that name the broken constraint, the
// branch geometry, and the output memory-format rule (kept identical to inception_dwconv/_layout.py).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <array>
#include <optional>

namespace inception_dwconv {

// The three conv branches in channel order after the identity part.
enum Branch : int { kSquare = 0, kBandW = 1, kBandH = 2 };

struct Geometry {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t gc = 0;    // channels per conv branch
  int64_t c_id = 0;  // identity channels, C - 3 * gc
  int64_t dilation = 1;
  std::array<int64_t, 3> kh{}, kw{};  // kernel height / width per branch
  // Channels from one branch's start to the next: gc, except in a channel block of the CPU row
  // loops (cpu_common.h, channel_block), which covers gc < this channels of each branch.
  int64_t branch_step = 0;

  int64_t pad_h(int b) const { return dilation * (kh[b] - 1) / 2; }
  int64_t pad_w(int b) const { return dilation * (kw[b] - 1) / 2; }
  int64_t taps(int b) const { return kh[b] * kw[b]; }
  int64_t max_taps() const { return std::max(taps(0), std::max(taps(1), taps(2))); }
  int64_t branch_start(int b) const { return c_id + b * branch_step; }
};

// Channels innermost: dense channels_last, or a view of one (e.g. a channel slice).
inline bool is_channels_last_like(const at::Tensor& x) {
  if (x.dim() != 4 || x.is_contiguous()) return false;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) return true;
  auto s = x.strides();
  return s[1] == 1 && x.size(1) > 1 && s[3] >= x.size(1) && s[2] >= s[3];
}

inline at::MemoryFormat output_memory_format(const at::Tensor& x) {
  return is_channels_last_like(x) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

inline void check_weight(const at::Tensor& x, const at::Tensor& w, const char* name) {
  TORCH_CHECK(w.defined(), name, " must be defined");
  TORCH_CHECK(w.scalar_type() == x.scalar_type(), name, " has dtype ", w.scalar_type(), " but x has dtype ",
              x.scalar_type(), "; they must match");
  TORCH_CHECK(w.device() == x.device(), name, " is on ", w.device(), " but x is on ", x.device(),
              "; they must be on the same device");
  TORCH_CHECK(w.dim() == 4 && w.size(1) == 1, name, " must have shape (gc, 1, kh, kw), got ", w.sizes());
  TORCH_CHECK(w.size(2) % 2 == 1 && w.size(3) % 2 == 1, name, " must have odd kernel sizes, got ",
              w.sizes());
}

inline void check_bias(const at::Tensor& x, const std::optional<at::Tensor>& b, int64_t gc, const char* name) {
  if (!b.has_value() || !b->defined()) return;
  TORCH_CHECK(b->scalar_type() == x.scalar_type(), name, " has dtype ", b->scalar_type(),
              " but x has dtype ", x.scalar_type());
  TORCH_CHECK(b->device() == x.device(), name, " is on ", b->device(), " but x is on ", x.device(),
              "; they must be on the same device");
  TORCH_CHECK(b->dim() == 1 && b->size(0) == gc, name, " must have shape (", gc, "), got ", b->sizes());
}

// Checks x and the weights and returns the geometry. Biases are checked by the caller (forward).
inline Geometry make_geometry(const at::Tensor& x, const at::Tensor& w_hw, const at::Tensor& w_w,
                              const at::Tensor& w_h, int64_t dilation) {
  TORCH_CHECK(x.dim() == 4, "x must be 4-D (N, C, H, W), got ", x.dim(), "-D");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "x has dtype ", x.scalar_type(), "; a floating-point dtype is needed");
  check_weight(x, w_hw, "weight_hw");
  check_weight(x, w_w, "weight_w");
  check_weight(x, w_h, "weight_h");
  TORCH_CHECK(w_hw.size(2) == w_hw.size(3), "weight_hw must be square, got ", w_hw.sizes());
  TORCH_CHECK(w_w.size(2) == 1, "weight_w must have shape (gc, 1, 1, K), got ", w_w.sizes());
  TORCH_CHECK(w_h.size(3) == 1, "weight_h must have shape (gc, 1, K, 1), got ", w_h.sizes());
  const int64_t gc = w_hw.size(0);
  TORCH_CHECK(gc >= 1, "the conv branches have 0 channels (gc = 0)");
  TORCH_CHECK(w_w.size(0) == gc && w_h.size(0) == gc, "the three branch weights must have the same channel count, got ",
              w_hw.size(0), ", ", w_w.size(0), ", ", w_h.size(0));
  TORCH_CHECK(3 * gc <= x.size(1), "x has ", x.size(1), " channels but the conv branches need 3 * ", gc, " = ",
              3 * gc, " (3 * gc <= C)");
  TORCH_CHECK(dilation >= 1, "dilation must be >= 1, got ", dilation);
  Geometry g;
  g.N = x.size(0);
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.gc = gc;
  g.branch_step = gc;
  g.c_id = g.C - 3 * gc;
  g.dilation = dilation;
  const at::Tensor* ws[3] = {&w_hw, &w_w, &w_h};
  for (int b = 0; b < 3; ++b) {
    g.kh[b] = ws[b]->size(2);
    g.kw[b] = ws[b]->size(3);
  }
  return g;
}

inline void check_grad_out(const at::Tensor& grad_out, const at::Tensor& x) {
  TORCH_CHECK(grad_out.sizes() == x.sizes(), "grad_out has shape ", grad_out.sizes(), " but x has shape ", x.sizes());
  TORCH_CHECK(grad_out.scalar_type() == x.scalar_type(), "grad_out has dtype ", grad_out.scalar_type(),
              " but x has dtype ", x.scalar_type());
  TORCH_CHECK(grad_out.device() == x.device(), "grad_out is on ", grad_out.device(), " but x is on ", x.device(),
              "; they must be on the same device");
}

}  // namespace inception_dwconv
