// The dispatcher schema of the fused ops. Device kernels register themselves with
// TORCH_LIBRARY_IMPL(inception_dwconv, CPU|CUDA, m) in their own files; the Python package wraps
// these in the public torch.library ops (inception_dwconv/ops.py), which add the backend choice,
// fake kernels and the autograd formula.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(inception_dwconv, m) {
  // y = cat(x_id, conv_sq(x_hw), conv_1xK(x_w), conv_Kx1(x_h)); gc and kernel sizes from the
  // weight shapes; output keeps x's memory format (channels_last or contiguous NCHW).
  m.def("fused_forward(Tensor x, Tensor weight_hw, Tensor? bias_hw, Tensor weight_w, Tensor? bias_w, "
        "Tensor weight_h, Tensor? bias_h, int dilation) -> Tensor");
  // Returns [grad_x] if compute_input, then [grad_weight_hw, grad_bias_hw, grad_weight_w,
  // grad_bias_w, grad_weight_h, grad_bias_h] if compute_weight.
  m.def("fused_backward(Tensor grad_out, Tensor x, Tensor weight_hw, Tensor weight_w, "
        "Tensor weight_h, int dilation, bool compute_input, bool compute_weight) -> Tensor[]");
  // The one-pass autocast kernels: fp32 x and parameters read at bf16 / fp16 precision, conv
  // results rounded to it, identity channels copied exactly, fp32 outputs (what the eager module
  // gives under autocast to that dtype). CPU: bf16; CUDA: bf16 and fp16.
#define INCEPTION_DWCONV_AUTOCAST_OPS(LOW)                                                                  \
  m.def("fused_forward_autocast_" LOW "(Tensor x, Tensor weight_hw, Tensor? bias_hw, Tensor weight_w, "     \
        "Tensor? bias_w, Tensor weight_h, Tensor? bias_h, int dilation) -> Tensor");                          \
  m.def("fused_backward_autocast_" LOW "(Tensor grad_out, Tensor x, Tensor weight_hw, Tensor weight_w, "    \
        "Tensor weight_h, int dilation, bool compute_input, bool compute_weight) -> Tensor[]");
  INCEPTION_DWCONV_AUTOCAST_OPS("bf16")
  INCEPTION_DWCONV_AUTOCAST_OPS("fp16")
#undef INCEPTION_DWCONV_AUTOCAST_OPS
}

// An importable module with no Python functions: `import inception_dwconv._C` loads the shared
// library, and the static registrations above run.
extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
