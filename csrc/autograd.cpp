// inception_dwconv::fused_autograd: fused_forward with its backward recorded by a C++ autograd node.
//
// The Python package calls this op for eager calls on plain tensors that need a gradient and run on
// the compiled backends (cpu, cuda). The same two kernels run as through the Python
// autograd.Function (inception_dwconv/ops.py), so the numbers are the same bits; what goes is the
// Python on the backward's path (the engine calls the node below directly: no interpreter, no GIL,
// no ctx object). Measured on the 2-core CPU VM, module forward + autograd.grad, interleaved in one
// process: 1x64x4x4 109 -> 92 us, 8x768x7x7 411 -> 381 us, 8x192x28x28 984 -> 928 us (medians).
// torch.compile, torch.func transforms, tensor subclasses, function modes and the Python-only
// backends keep the Python route.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/functions/basic_ops.h>
#include <torch/library.h>

#include <optional>

namespace inception_dwconv {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor call_fused_forward(const at::Tensor& x, const at::Tensor& w_hw, const std::optional<at::Tensor>& b_hw,
                              const at::Tensor& w_w, const std::optional<at::Tensor>& b_w, const at::Tensor& w_h,
                              const std::optional<at::Tensor>& b_h, int64_t dilation) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("inception_dwconv::fused_forward", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                               const at::Tensor&, const std::optional<at::Tensor>&, const at::Tensor&,
                                               const std::optional<at::Tensor>&, int64_t)>();
  return op.call(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation);
}

std::vector<at::Tensor> call_fused_backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& w_hw,
                                            const at::Tensor& w_w, const at::Tensor& w_h, int64_t dilation,
                                            bool compute_input, bool compute_weight) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("inception_dwconv::fused_backward", "")
                             .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                            const at::Tensor&, const at::Tensor&, int64_t, bool, bool)>();
  return op.call(gy, x, w_hw, w_w, w_h, dilation, compute_input, compute_weight);
}

// The Python package's differentiable backward op (inception_dwconv/ops.py: the custom op
// "inception_dwconv::backward", whose autograd formula gives the second derivative), when it is
// registered (the package imported); else nullopt.
std::optional<std::vector<at::Tensor>> call_differentiable_backward(const at::Tensor& gy, const at::Tensor& x,
                                                                    const at::Tensor& w_hw, const at::Tensor& w_w,
                                                                    const at::Tensor& w_h, int64_t dilation,
                                                                    bool compute_input, bool compute_weight) {
  const auto op = c10::Dispatcher::singleton().findSchema({"inception_dwconv::backward", ""});
  if (!op.has_value()) return std::nullopt;
  torch::jit::Stack stack{gy, x, w_hw, w_w, w_h, dilation, std::string(x.is_cuda() ? "cuda" : "cpu"), compute_input,
                          compute_weight};
  op->callBoxed(&stack);
  return stack.at(0).toTensorVector();
}

// Argument order of the op: x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation.
constexpr int kArgs = 8;

}  // namespace

// Outside the anonymous namespace: the node's name (grad_fn.name(), autograd error messages) comes
// from this type's: "torch::autograd::CppNode<inception_dwconv::FusedInceptionDWConv>".
struct FusedInceptionDWConv : public torch::autograd::Function<FusedInceptionDWConv> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w_hw,
                            const std::optional<at::Tensor>& b_hw, const at::Tensor& w_w,
                            const std::optional<at::Tensor>& b_w, const at::Tensor& w_h,
                            const std::optional<at::Tensor>& b_h, int64_t dilation) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, w_hw, w_w, w_h});
    ctx->saved_data["dilation"] = dilation;
    // Which biases are tensors: the node's input edges count only those (needs_input_grad below).
    int64_t has_bias = 0;
    const std::optional<at::Tensor>* biases[3] = {&b_hw, &b_w, &b_h};
    for (int b = 0; b < 3; ++b) {
      if (biases[b]->has_value() && (*biases[b])->defined()) has_bias |= int64_t(1) << b;
    }
    ctx->saved_data["has_bias"] = has_bias;
    return call_fused_forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const int64_t has_bias = ctx->saved_data["has_bias"].toInt();
    // needs[a] for each argument a; needs_input_grad takes the index among tensor arguments.
    bool needs[kArgs] = {};
    int edge = 0;
    for (int a = 0; a < 7; ++a) {
      const bool is_bias = a == 2 || a == 4 || a == 6;
      if (is_bias && !(has_bias & (int64_t(1) << (a / 2 - 1)))) continue;
      needs[a] = ctx->needs_input_grad(edge++);
    }
    const bool compute_input = needs[0];
    bool compute_weight = false;
    for (int a = 1; a < 7; ++a) compute_weight = compute_weight || needs[a];
    variable_list out(kArgs);
    if (!(compute_input || compute_weight)) return out;

    const auto saved = ctx->get_saved_variables();
    const at::Tensor& gy = grads[0];
    const int64_t dilation = ctx->saved_data["dilation"].toInt();
    std::vector<at::Tensor> result;
    if (at::GradMode::is_enabled()) {  // create_graph=True: a backward that is differentiable in turn
      auto differentiable = call_differentiable_backward(gy, saved[0], saved[1], saved[2], saved[3], dilation,
                                                         compute_input, compute_weight);
      if (differentiable.has_value()) {
        size_t r = 0;
        if (compute_input) out[0] = (*differentiable)[r++];
        if (compute_weight) {
          for (int a = 1; a < 7; ++a, ++r) {
            if (needs[a]) out[a] = (*differentiable)[r];
          }
        }
        return out;
      }
    }
    {
      // Without the Python package's op (libtorch alone): as Python's once_differentiable, the
      // kernels run without recording, and a graph built on the gradients gets an error node below
      // instead of a wrong second derivative.
      at::NoGradGuard no_grad;
      result = call_fused_backward(gy, saved[0], saved[1], saved[2], saved[3], dilation, compute_input,
                                   compute_weight);
    }
    size_t r = 0;
    if (compute_input) out[0] = result[r++];
    if (compute_weight) {
      for (int a = 1; a < 7; ++a, ++r) {
        if (needs[a]) out[a] = result[r];
      }
    }
    if (at::GradMode::is_enabled() && gy.requires_grad()) {
      variable_list fake(kArgs);
      for (int a = 0; a < kArgs; ++a) {
        if (out[a].defined()) fake[a] = out[a].detach().requires_grad_(true);
      }
      out = std::make_shared<torch::autograd::DelayedError>(
                "trying to differentiate twice inception_dwconv's fused op: its second derivative is "
                "the Python package's (import inception_dwconv)",
                kArgs)
                ->apply(std::move(fake));
    }
    return out;
  }
};

namespace {

at::Tensor fused_autograd(const at::Tensor& x, const at::Tensor& w_hw, const std::optional<at::Tensor>& b_hw,
                          const at::Tensor& w_w, const std::optional<at::Tensor>& b_w, const at::Tensor& w_h,
                          const std::optional<at::Tensor>& b_h, int64_t dilation) {
  return FusedInceptionDWConv::apply(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(inception_dwconv, m) {
  m.def("fused_autograd(Tensor x, Tensor weight_hw, Tensor? bias_hw, Tensor weight_w, Tensor? bias_w, "
        "Tensor weight_h, Tensor? bias_h, int dilation) -> Tensor");
}

TORCH_LIBRARY_IMPL(inception_dwconv, Autograd, m) {
  m.impl("fused_autograd", &fused_autograd);
}

// Below autograd (inference mode, or no tensor needing a gradient under a dispatch that skips the
// Autograd key) it is the plain forward.
TORCH_LIBRARY_IMPL(inception_dwconv, CompositeExplicitAutograd, m) {
  m.impl("fused_autograd", &call_fused_forward);
}

}  // namespace inception_dwconv
