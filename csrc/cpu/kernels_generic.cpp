// The CPU kernels for any processor (the compiler's baseline instruction set).
#include "cpu_common.h"

#define KERNEL_BLOCK_BYTES 128  // 8 x 128-bit vector registers
#define KERNEL_NS generic
#include "kernels.h"

namespace inception_dwconv {
namespace generic {
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(float)
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(double)
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(c10::BFloat16)
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(c10::Half)
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(Bf16RoundedFloat)
}  // namespace generic
}  // namespace inception_dwconv
