// The CPU dispatcher glue of the fused ops: checks, output allocation, weight preparation, the
// choice of instruction set, and the deterministic reduction of the weight-grad partials.
// The loops themselves are in kernels.h.
#include <torch/library.h>

#include <cstdlib>
#include <string>

#include "cpu_common.h"

namespace inception_dwconv {
namespace {

// AVX2 + FMA loops when the processor has them, unless INCEPTION_DWCONV_CPU_ISA=generic (read once;
// lets the tests and bug reports run the baseline loops on any machine).
bool use_avx2() {
  static const bool yes = [] {
    const char* isa = std::getenv("INCEPTION_DWCONV_CPU_ISA");
    if (isa != nullptr && std::string(isa) == "generic") return false;
    return cpu_has_avx2_kernels();
  }();
  return yes;
}

std::string cpu_isa() { return use_avx2() ? "avx2" : "generic"; }

// Whether the kernels were built with OpenMP ("openmp": at::parallel_for spreads work items over
// torch's threads) or without ("serial": the compiler had no OpenMP; one thread).
std::string cpu_parallel() {
#if defined(_OPENMP)
  return "openmp";
#else
  return "serial";
#endif
}

template <typename scalar_t>
void run_forward(const Geometry& g, Path path, const at::Tensor& x, const BranchWeights<at::opmath_type<scalar_t>>& bw,
                 at::Tensor& y) {
#if defined(INCEPTION_DWCONV_X86)
  if (use_avx2()) return avx2::forward<scalar_t>(g, path, x, bw, y);
#endif
  generic::forward<scalar_t>(g, path, x, bw, y);
}

template <typename scalar_t>
void run_backward(const Geometry& g, Path path, const at::Tensor& gy, const at::Tensor& x,
                  const BranchWeights<at::opmath_type<scalar_t>>& flipped, at::Tensor* gx,
                  at::opmath_type<scalar_t>* part, const PartialLayout& L) {
#if defined(INCEPTION_DWCONV_X86)
  if (use_avx2()) return avx2::backward<scalar_t>(g, path, gy, x, flipped, gx, part, L);
#endif
  generic::backward<scalar_t>(g, path, gy, x, flipped, gx, part, L);
}

// body(scalar_t{}) for x's dtype, or (autocast_bf16, fp32 x only) body(Bf16RoundedFloat{}): the one
// dtype dispatch of the forward (kForward) and the backward, with their names in the messages.
template <bool kForward, typename Body>
void dispatch_dtype(const at::Tensor& x, bool autocast_bf16, const Body& body) {
  if (autocast_bf16) {
    TORCH_CHECK(x.scalar_type() == at::kFloat,
                kForward ? "fused_forward_autocast_bf16" : "fused_backward_autocast_bf16", " needs an fp32 x, got ",
                x.scalar_type());
    body(Bf16RoundedFloat{});
  } else {
    constexpr const char* name = kForward ? "inception_dwconv_forward_cpu" : "inception_dwconv_backward_cpu";
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), name, [&] { body(scalar_t{}); });
  }
}

// The forward, for x's dtype, or (autocast_bf16) what the eager module under CPU autocast to bf16
// gives an fp32 x and fp32 parameters: conv channels computed from x and the weights rounded to
// bf16 and rounded to bf16 again on the way out, as fp32; identity channels copied exactly. One pass,
// where the eager composition (cast x and the six parameters, bf16 forward, cast back, copy the
// identity) makes four over x.
at::Tensor forward_cpu(const at::Tensor& x, const at::Tensor& w_hw, const std::optional<at::Tensor>& b_hw,
                       const at::Tensor& w_w, const std::optional<at::Tensor>& b_w, const at::Tensor& w_h,
                       const std::optional<at::Tensor>& b_h, int64_t dilation, bool autocast_bf16) {
  const Geometry g = make_geometry(x, w_hw, w_w, w_h, dilation);
  check_bias(x, b_hw, g.gc, "bias_hw");
  check_bias(x, b_w, g.gc, "bias_w");
  check_bias(x, b_h, g.gc, "bias_h");
  TORCH_CHECK(x.device().is_cpu(), "fused_forward (CPU kernel) got x on ", x.device());
  const bool cl = is_channels_last_like(x);
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(output_memory_format(x)));
  if (y.numel() == 0) return y;
  const at::Tensor* ws[3] = {&w_hw, &w_w, &w_h};
  const std::optional<at::Tensor>* bs[3] = {&b_hw, &b_w, &b_h};
  const Path path = choose_path(cl);
  const auto body = [&](auto tag) {
    using scalar_t = decltype(tag);
    BranchWeights<at::opmath_type<scalar_t>> bw(g, ws, bs, /*flip=*/false, /*row=*/path != Path::kPlanes);
    if constexpr (std::is_same_v<scalar_t, Bf16RoundedFloat>) bw.round_to_bf16();  // autocast's casts
    run_forward<scalar_t>(g, path, x, bw, y);
  };
  dispatch_dtype</*kForward=*/true>(x, autocast_bf16, body);
  return y;
}

at::Tensor fused_forward_cpu(const at::Tensor& x, const at::Tensor& w_hw, const std::optional<at::Tensor>& b_hw,
                             const at::Tensor& w_w, const std::optional<at::Tensor>& b_w, const at::Tensor& w_h,
                             const std::optional<at::Tensor>& b_h, int64_t dilation) {
  return forward_cpu(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation, false);
}

at::Tensor fused_forward_autocast_bf16_cpu(const at::Tensor& x, const at::Tensor& w_hw,
                                           const std::optional<at::Tensor>& b_hw, const at::Tensor& w_w,
                                           const std::optional<at::Tensor>& b_w, const at::Tensor& w_h,
                                           const std::optional<at::Tensor>& b_h, int64_t dilation) {
  return forward_cpu(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation, true);
}

// Sums the per-item partials in item order; returns (grad_w, grad_b) per branch in the weights' dtype.
// round_bf16: the sums rounded to bf16 (the autocast backward's bf16 weight grads, cast back).
template <typename acc_t>
std::vector<at::Tensor> reduce_weight_partials(const Geometry& g, const PartialLayout& L, const acc_t* part,
                                               int64_t items, const at::TensorOptions& opts, bool round_bf16 = false) {
  std::vector<acc_t> total(L.item_size(), acc_t(0));
  for (int64_t it = 0; it < items; ++it) {
    const acc_t* p = part + it * L.item_size();
    for (int64_t e = 0; e < L.item_size(); ++e) total[e] += p[e];
  }
  if constexpr (std::is_same_v<acc_t, float>) {
    if (round_bf16)
      for (acc_t& e : total) e = Bf16RoundedFloat::round(e);
  }
  const auto acc_scalar = c10::CppTypeToScalarType<acc_t>::value;
  std::vector<at::Tensor> out;
  for (int b = 0; b < 3; ++b) {
    at::Tensor gw = at::empty({g.gc, 1, g.kh[b], g.kw[b]}, opts.dtype(acc_scalar));
    at::Tensor gb = at::empty({g.gc}, opts.dtype(acc_scalar));
    acc_t* gwp = gw.data_ptr<acc_t>();
    acc_t* gbp = gb.data_ptr<acc_t>();
    for (int64_t k = 0; k < g.gc; ++k) {
      for (int64_t t = 0; t < g.taps(b); ++t) gwp[k * g.taps(b) + t] = total[L.at(b, t, k)];
      gbp[k] = total[L.at(b, L.slots - 1, k)];
    }
    out.push_back(gw.to(opts.dtype()));
    out.push_back(gb.to(opts.dtype()));
  }
  return out;
}

// The backward, for x's dtype, or (autocast_bf16) for an fp32 x read at bf16 precision: grad_out's
// conv channels and x rounded to bf16 on load, the conv grads and weight grads rounded to bf16 as
// fp32, the identity channels of grad_out passed through exactly (what the eager module under CPU
// autocast to bf16 gives fp32 tensors).
std::vector<at::Tensor> backward_cpu(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& w_hw,
                                     const at::Tensor& w_w, const at::Tensor& w_h, int64_t dilation, bool compute_input,
                                     bool compute_weight, bool autocast_bf16) {
  const Geometry g = make_geometry(x, w_hw, w_w, w_h, dilation);
  TORCH_CHECK(x.device().is_cpu(), "fused_backward (CPU kernel) got x on ", x.device());
  check_grad_out(grad_out, x);
  const bool cl = is_channels_last_like(x);
  // The channels_last loops need channels innermost in grad_out too; one that is not (e.g. the
  // stride-0 expanded gradient of a .sum()) is made dense once. The plane loops take any strides.
  const at::Tensor gy = (cl && grad_out.stride(1) != 1) ? grad_out.contiguous(at::MemoryFormat::ChannelsLast) : grad_out;
  at::Tensor gx;
  if (compute_input) gx = at::empty(x.sizes(), x.options().memory_format(output_memory_format(x)));
  const PartialLayout L{g.gc, g.max_taps() + 1};
  const Path path = choose_path(cl);
  const int64_t items = gy.numel() == 0 ? 0 : (path == Path::kPlanes ? g.N : RowChunks(g).items(g));
  std::vector<at::Tensor> out;
  const auto body = [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = at::opmath_type<scalar_t>;
    constexpr bool rounded = std::is_same_v<scalar_t, Bf16RoundedFloat>;
    const at::Tensor* ws[3] = {&w_hw, &w_w, &w_h};
    BranchWeights<acc_t> flipped(g, ws, nullptr, /*flip=*/true, /*row=*/path != Path::kPlanes && compute_input);
    if constexpr (rounded) flipped.round_to_bf16();
    // Zeroed, and 64-byte aligned (torch's CPU allocator): the channel blocks of the row loops
    // (kernels.h, backward_rows) write disjoint channels of one item's partials from different
    // threads, which then share no cache line where the block widths are whole lines.
    const at::Tensor part = at::zeros({compute_weight ? items * L.item_size() : 0},
                                      x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    acc_t* partp = part.data_ptr<acc_t>();
    if (items > 0 && (compute_input || compute_weight)) {
      run_backward<scalar_t>(g, path, gy, x, flipped, compute_input ? &gx : nullptr,
                             compute_weight ? partp : nullptr, L);
    }
    if (compute_input) out.push_back(gx);
    if (compute_weight) {
      auto wg = reduce_weight_partials<acc_t>(g, L, partp, items, x.options(), rounded);
      out.insert(out.end(), wg.begin(), wg.end());
    }
  };
  dispatch_dtype</*kForward=*/false>(x, autocast_bf16, body);
  return out;
}

std::vector<at::Tensor> fused_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& w_hw,
                                           const at::Tensor& w_w, const at::Tensor& w_h, int64_t dilation,
                                           bool compute_input, bool compute_weight) {
  return backward_cpu(grad_out, x, w_hw, w_w, w_h, dilation, compute_input, compute_weight, false);
}

std::vector<at::Tensor> fused_backward_autocast_bf16_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                                         const at::Tensor& w_hw, const at::Tensor& w_w,
                                                         const at::Tensor& w_h, int64_t dilation, bool compute_input,
                                                         bool compute_weight) {
  return backward_cpu(grad_out, x, w_hw, w_w, w_h, dilation, compute_input, compute_weight, true);
}

}  // namespace

// Introspection for tests and bug reports: which CPU loops run here ("avx2" or "generic"), and
// whether they were built with OpenMP ("openmp" or "serial").
TORCH_LIBRARY_FRAGMENT(inception_dwconv, m) {
  m.def("cpu_isa() -> str", &cpu_isa);
  m.def("cpu_parallel() -> str", &cpu_parallel);
}

TORCH_LIBRARY_IMPL(inception_dwconv, CPU, m) {
  m.impl("fused_forward", &fused_forward_cpu);
  m.impl("fused_backward", &fused_backward_cpu);
  m.impl("fused_forward_autocast_bf16", &fused_forward_autocast_bf16_cpu);
  m.impl("fused_backward_autocast_bf16", &fused_backward_autocast_bf16_cpu);
}

}  // namespace inception_dwconv
