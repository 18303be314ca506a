// Forward and grad_x of the fused Inception depthwise conv: one pass over the input.
// Forward: y = cat(x_id, conv_sq(x), conv_1xK(x), conv_Kx1(x)) + biases.
// grad_x: identity channels pass grad_out through; conv channels correlate grad_out with the
// flipped kernels (same zero padding), i.e. the same tiled kernel with flip = 1 and no bias.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <type_traits>

#include "launch.cuh"
#include "tile_conv.cuh"

namespace idw {
namespace {

template <typename scalar_t, typename acc_t, int KS, int KB, bool SMEM>
__global__ void __launch_bounds__(kThreads) conv_kernel(const ConvParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* smem = reinterpret_cast<acc_t*>(smem_raw);
  const TileCoord t = tile_coord(p, blockIdx.x, blockIdx.y);
  if (SMEM && tile_has_conv(p, t)) {  // uniform over the block
    load_tile<scalar_t, acc_t, KS, KB>(p, t, smem, threadIdx.x, blockDim.x);
    __syncthreads();
  }
  conv_tile<scalar_t, acc_t, KS, KB, SMEM>(p, t, smem, threadIdx.x, blockDim.x);
}

template <typename scalar_t, typename acc_t>
void launch_conv(const ConvParams& p, bool use_smem, int64_t smem_bytes, dim3 grid, cudaStream_t stream) {
  dispatch_tile_kernel<!std::is_same<scalar_t, double>::value>(p, use_smem, [&](auto ks, auto kb, auto smem) {
    conv_kernel<scalar_t, acc_t, decltype(ks)::value, decltype(kb)::value, decltype(smem)::value>
        <<<grid, kThreads, smem ? smem_bytes : 0, stream>>>(p);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

const void* ptr_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

}  // namespace

void conv_cuda(const at::Tensor& in, const at::Tensor& out, const at::Tensor& w_hw, const at::Tensor& b_hw,
               const at::Tensor& w_w, const at::Tensor& b_w, const at::Tensor& w_h, const at::Tensor& b_h,
               int64_t dilation, bool flip, bool channels_last_order, int round) {
  if (out.numel() == 0) return;
  ConvParams p = base_params(in, w_hw, w_w, w_h, dilation);
  p.in = in.data_ptr();
  p.in_sn = in.stride(0); p.in_sc = in.stride(1); p.in_sh = in.stride(2); p.in_sw = in.stride(3);
  p.out = out.data_ptr();
  p.out_sn = out.stride(0); p.out_sc = out.stride(1); p.out_sh = out.stride(2); p.out_sw = out.stride(3);
  p.w_hw = w_hw.data_ptr(); p.w_w = w_w.data_ptr(); p.w_h = w_h.data_ptr();
  p.b_hw = ptr_or_null(b_hw); p.b_w = ptr_or_null(b_w); p.b_h = ptr_or_null(b_h);
  p.flip = flip ? 1 : 0;
  p.c_begin = 0;
  p.c_count = (int)p.C;
  p.cl = channels_last_order ? 1 : 0;
  const bool wide = in.scalar_type() == at::kDouble;
  bool use_smem = false;
  const int64_t smem_bytes = configure_tiles(p, wide ? 8 : 4, /*with_g=*/false, &use_smem);
  int64_t gx, gy;
  tile_grid(p, &gx, &gy);
  const dim3 grid((unsigned)gx, (unsigned)gy, 1);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (round == 1) return launch_conv<RoundedFloat<1>, float>(p, use_smem, smem_bytes, grid, stream);
  if (round == 2) return launch_conv<RoundedFloat<2>, float>(p, use_smem, smem_bytes, grid, stream);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "inception_dwconv_conv_cuda", [&] {
    using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
    launch_conv<scalar_t, acc_t>(p, use_smem, smem_bytes, grid, stream);
  });
}

}  // namespace idw
