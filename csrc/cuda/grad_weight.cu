// Weight and bias grads of the fused Inception depthwise conv, deterministic (no float atomics):
//  1. wgrad_partial_kernel: each block (image n, spatial tile, channel block) stages x with its halo
//     and grad_out in shared memory; each warp takes (channel, tap) jobs, its lanes split the
//     tile's pixels, and a fixed xor-butterfly sums the lanes. The block writes its partial sums
//     (accumulation type: fp32, fp64 for double) to workspace[tile][slot].
//  2. wgrad_reduce_kernel: sums the workspace over tiles in a fixed order and writes the six
//     grads in the weights' dtype.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <type_traits>

#include "launch.cuh"
#include "tile_conv.cuh"

namespace idw {
namespace {

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename scalar_t, typename acc_t, int KS, int KB, bool SMEM>
__global__ void __launch_bounds__(kThreads) wgrad_partial_kernel(const ConvParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* smem = reinterpret_cast<acc_t*>(smem_raw);
  acc_t* gsm = smem + (int64_t)p.CB * p.cstride;
  const TileCoord t = tile_coord(p, blockIdx.x, blockIdx.y);
  if (SMEM) {
    load_tile<scalar_t, acc_t, KS, KB>(p, t, smem, threadIdx.x, blockDim.x);
    load_g_tile<scalar_t, acc_t>(p, t, gsm, threadIdx.x, blockDim.x);
    __syncthreads();
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int jobs = p.CB * wgrad_jobs_per_channel(p);
  acc_t* ws = static_cast<acc_t*>(p.ws) + (int64_t)blockIdx.x * p.S;
  for (int job = warp; job < jobs; job += nwarps) {
    acc_t r;
    int64_t slot;
    if (!wgrad_lane<scalar_t, acc_t, KS, KB, SMEM>(p, t, smem, gsm, job, lane, 32, &r, &slot)) continue;
    r = warp_sum(r);
    if (lane == 0) ws[slot] = r;
  }
}

struct GradOut {
  void* ptr[6];   // gw_hw, gb_hw, gw_w, gb_w, gw_h, gb_h
  int64_t end[6]; // exclusive end slot of each
};

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(256) wgrad_reduce_kernel(const acc_t* __restrict__ ws, int64_t T, int64_t S,
                                                            GradOut o) {
  __shared__ acc_t part[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t s = (int64_t)blockIdx.x * 32 + tx;
  acc_t acc = acc_t(0);
  if (s < S) {
    for (int64_t t = ty; t < T; t += 8) acc += ws[t * S + s];
  }
  part[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && s < S) {
    acc_t total = part[0][tx];
#pragma unroll
    for (int k = 1; k < 8; ++k) total += part[k][tx];
    void* dst = o.ptr[0];
    int64_t begin = 0;
#pragma unroll
    for (int k = 0; k < 5; ++k) {  // static indices: no local-memory copy of `o`
      if (s >= o.end[k]) { dst = o.ptr[k + 1]; begin = o.end[k]; }
    }
    static_cast<scalar_t*>(dst)[s - begin] = static_cast<scalar_t>(total);
  }
}

template <typename scalar_t, typename acc_t>
void launch_partial(const ConvParams& p, bool use_smem, int64_t smem_bytes, dim3 grid, cudaStream_t stream) {
  dispatch_tile_kernel<!std::is_same<scalar_t, double>::value>(p, use_smem, [&](auto ks, auto kb, auto smem) {
    wgrad_partial_kernel<scalar_t, acc_t, decltype(ks)::value, decltype(kb)::value, decltype(smem)::value>
        <<<grid, kThreads, smem ? smem_bytes : 0, stream>>>(p);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

std::vector<at::Tensor> grad_weight_cuda(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& w_hw,
                                         const at::Tensor& w_w, const at::Tensor& w_h, int64_t dilation, int round) {
  const int64_t gc = w_hw.size(0);
  const auto wopt = w_hw.options().memory_format(at::MemoryFormat::Contiguous);
  std::vector<at::Tensor> res;
  const bool empty = x.numel() == 0 || gc == 0;
  for (const at::Tensor* w : {&w_hw, &w_w, &w_h}) {
    if (empty) {
      res.push_back(at::zeros(w->sizes(), wopt));
      res.push_back(at::zeros({gc}, wopt));
    } else {
      res.push_back(at::empty(w->sizes(), wopt));
      res.push_back(at::empty({gc}, wopt));
    }
  }
  if (empty) return res;

  ConvParams p = base_params(x, w_hw, w_w, w_h, dilation);
  p.in = x.data_ptr();
  p.in_sn = x.stride(0); p.in_sc = x.stride(1); p.in_sh = x.stride(2); p.in_sw = x.stride(3);
  p.g = grad_out.data_ptr();
  p.g_sn = grad_out.stride(0); p.g_sc = grad_out.stride(1); p.g_sh = grad_out.stride(2); p.g_sw = grad_out.stride(3);
  p.c_begin = p.c_id;
  p.c_count = 3 * p.gc;
  p.cl = is_channels_last_like(x) ? 1 : 0;
  p.S = wgrad_slot_count(p);
  const bool wide = x.scalar_type() == at::kDouble;
  bool use_smem = false;
  const int64_t smem_bytes = configure_tiles(p, wide ? 8 : 4, /*with_g=*/true, &use_smem);
  int64_t gx, gy;
  tile_grid(p, &gx, &gy);
  const int64_t T = gx;
  at::Tensor ws = at::empty({T * p.S}, x.options().dtype(wide ? at::kDouble : at::kFloat));
  p.ws = ws.data_ptr();

  GradOut o;
  for (int i = 0; i < 6; ++i) o.ptr[i] = res[i].data_ptr();
  o.end[0] = gc * p.ks * p.ks;
  o.end[1] = o.end[0] + gc;
  o.end[2] = o.end[1] + gc * p.kw;
  o.end[3] = o.end[2] + gc;
  o.end[4] = o.end[3] + gc * p.kh;
  o.end[5] = o.end[4] + gc;

  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const auto run = [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
    launch_partial<scalar_t, acc_t>(p, use_smem, smem_bytes, dim3((unsigned)gx, (unsigned)gy, 1), stream);
    const dim3 rgrid((unsigned)((p.S + 31) / 32), 1, 1);
    wgrad_reduce_kernel<scalar_t, acc_t><<<rgrid, dim3(32, 8, 1), 0, stream>>>(
        static_cast<const acc_t*>(ws.data_ptr()), T, p.S, o);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (round == 1) {
    run(RoundedFloat<1>{});
  } else if (round == 2) {
    run(RoundedFloat<2>{});
  } else {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "inception_dwconv_grad_weight_cuda",
                                    [&] { run(scalar_t{}); });
  }
  return res;
}

}  // namespace idw
