// The CPU kernels compiled for AVX2 + FMA + F16C (x86-64), picked at run time when the processor has
// them (every AVX2 processor has F16C; it is checked all the same).
// Every library header is included before the target pragma, so only our loops take it.
#include "cpu_common.h"

#if defined(INCEPTION_DWCONV_X86)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define KERNEL_BLOCK_BYTES 256  // 8 x 256-bit vector registers
#define KERNEL_AVX2 1           // AVX2 intrinsics where the vector extensions fall short (kernels.h)
#define KERNEL_F16C 1           // fp16 <-> fp32 conversions with the F16C instructions (kernels.h)
#define KERNEL_NS avx2
#include "kernels.h"

namespace inception_dwconv {
namespace avx2 {
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(float)
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(double)
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(c10::BFloat16)
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(c10::Half)
INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(Bf16RoundedFloat)
}  // namespace avx2
}  // namespace inception_dwconv
#pragma GCC pop_options
#endif

namespace inception_dwconv {
bool cpu_has_avx2_kernels() {
#if defined(INCEPTION_DWCONV_X86)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}
}  // namespace inception_dwconv
