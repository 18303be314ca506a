// Sequential host emulation of the CUDA kernels' device code (csrc/cuda/tile_conv.cuh), for tests
// on machines without a GPU (tests/test_cuda_emulation.py builds this file with the host C++
// compiler and calls it through ctypes).
//
// It runs the same device functions the kernels run, block by block and thread by thread, with the
// launchers' choices (configure_tiles, grid_size, dispatch_tile_kernel) and the kernels' phase order:
// every thread's shared-memory loads, then (the __syncthreads) every thread's outputs. Shared memory
// starts as NaN for each block, so a read of a slot no thread wrote shows up in the results. The
// weight-grad lanes are summed with the warp's xor butterfly and the workspace with the reduce
// kernel's order. What it cannot check: races, the CUDA-only wrappers' launch configuration, and
// anything the compiler does differently for the device.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../../csrc/cuda/tile_conv.cuh"

namespace {

using namespace idw;

constexpr int kThreads = 256;  // csrc/cuda/launch.cuh

ConvParams make_params(const int64_t* shape, const int* k) {
  ConvParams p{};
  set_sizes(p, shape[0], shape[1], shape[2], shape[3], k[0], k[1], k[2], k[3], k[4]);
  return p;
}

// The kernels' shifts and masks assume power-of-two tiles (configure_tiles).
bool pow2_tiles(const ConvParams& p) {
  return (1 << p.lTW) == p.TW && (1 << p.lPix) == p.TH * p.TW && (1 << p.lCB) == p.CB;
}

void set_in(ConvParams& p, const void* in, const int64_t* st) {
  p.in = in;
  p.in_sn = st[0]; p.in_sc = st[1]; p.in_sh = st[2]; p.in_sw = st[3];
}

template <typename T>
std::vector<T> nan_smem(int64_t bytes) {
  return std::vector<T>((size_t)(bytes / (int64_t)sizeof(T)) + 1, std::numeric_limits<T>::quiet_NaN());
}

// S: the tensors' element type (float, double, or RoundedFloat<R> over float storage); T: the
// accumulation type (the kernels' acc_t).
template <typename S, typename T, int KS, int KB, bool SMEM>
void conv_blocks(const ConvParams& p, int64_t smem_bytes, int64_t gx, int64_t gy) {
  for (int64_t by = 0; by < gy; ++by) {
    for (int64_t bx = 0; bx < gx; ++bx) {
      std::vector<T> smem = nan_smem<T>(smem_bytes);
      const TileCoord t = tile_coord(p, bx, by);
      if (SMEM && tile_has_conv(p, t)) {
        for (int tid = 0; tid < kThreads; ++tid) load_tile<S, T, KS, KB>(p, t, smem.data(), tid, kThreads);
      }
      for (int tid = 0; tid < kThreads; ++tid) conv_tile<S, T, KS, KB, SMEM>(p, t, smem.data(), tid, kThreads);
    }
  }
}

template <typename S, typename T, int KS, int KB, bool SMEM>
void wgrad_blocks(const ConvParams& p, int64_t smem_bytes, int64_t gx, int64_t gy, T* ws) {
  const int nwarps = kThreads / 32;
  for (int64_t by = 0; by < gy; ++by) {
    for (int64_t bx = 0; bx < gx; ++bx) {
      std::vector<T> smem = nan_smem<T>(smem_bytes);
      T* gsm = smem.data() + (int64_t)p.CB * p.cstride;
      const TileCoord t = tile_coord(p, bx, by);
      if (SMEM) {
        for (int tid = 0; tid < kThreads; ++tid) load_tile<S, T, KS, KB>(p, t, smem.data(), tid, kThreads);
        for (int tid = 0; tid < kThreads; ++tid) load_g_tile<S, T>(p, t, gsm, tid, kThreads);
      }
      const int jobs = p.CB * wgrad_jobs_per_channel(p);
      T* row = ws + bx * p.S;
      for (int warp = 0; warp < nwarps; ++warp) {
        for (int job = warp; job < jobs; job += nwarps) {
          T lanes[32];
          int64_t slot = -1;
          bool any = false;
          for (int lane = 0; lane < 32; ++lane) {
            T r = T(0);
            int64_t s = -1;
            const bool ok = wgrad_lane<S, T, KS, KB, SMEM>(p, t, smem.data(), gsm, job, lane, 32, &r, &s);
            if (lane == 0) any = ok;
            else if (ok != any) return;  // must be uniform over the warp; the caller sees the NaNs
            lanes[lane] = r;
            slot = s;
          }
          if (!any) continue;
          for (int off = 16; off > 0; off >>= 1) {  // __shfl_xor_sync butterfly
            T next[32];
            for (int lane = 0; lane < 32; ++lane) next[lane] = lanes[lane] + lanes[lane ^ off];
            for (int lane = 0; lane < 32; ++lane) lanes[lane] = next[lane];
          }
          row[slot] = lanes[0];
        }
      }
    }
  }
}

template <typename S, typename T = S>
int conv(const int64_t* shape, const int* k, const S* in, const int64_t* in_st, S* out, const int64_t* out_st,
         const S* const* w, int flip, int cl, int force_global) {
  ConvParams p = make_params(shape, k);
  set_in(p, in, in_st);
  p.out = out;
  p.out_sn = out_st[0]; p.out_sc = out_st[1]; p.out_sh = out_st[2]; p.out_sw = out_st[3];
  p.w_hw = w[0]; p.b_hw = w[1]; p.w_w = w[2]; p.b_w = w[3]; p.w_h = w[4]; p.b_h = w[5];
  p.flip = flip;
  p.c_begin = 0;
  p.c_count = (int)p.C;
  p.cl = cl;
  bool use_smem = false;
  int64_t smem_bytes = configure_tiles(p, (int)sizeof(T), /*with_g=*/false, &use_smem);
  if (!pow2_tiles(p)) return -1;
  if (force_global) use_smem = false;
  int64_t gx, gy;
  grid_size(p, &gx, &gy);
  dispatch_tile_kernel<std::is_same<T, float>::value>(p, use_smem, [&](auto ks, auto kb, auto smem) {
    conv_blocks<S, T, decltype(ks)::value, decltype(kb)::value, decltype(smem)::value>(p, smem ? smem_bytes : 0, gx,
                                                                                        gy);
  });
  return use_smem ? 1 : 0;
}

template <typename S, typename T = S>
int wgrad(const int64_t* shape, const int* k, const S* x, const int64_t* x_st, const S* g, const int64_t* g_st,
          S* out, int cl, int force_global) {
  ConvParams p = make_params(shape, k);
  set_in(p, x, x_st);
  p.g = g;
  p.g_sn = g_st[0]; p.g_sc = g_st[1]; p.g_sh = g_st[2]; p.g_sw = g_st[3];
  p.c_begin = p.c_id;
  p.c_count = 3 * p.gc;
  p.cl = cl;
  p.S = wgrad_slot_count(p);
  bool use_smem = false;
  int64_t smem_bytes = configure_tiles(p, (int)sizeof(T), /*with_g=*/true, &use_smem);
  if (!pow2_tiles(p)) return -1;
  if (force_global) use_smem = false;
  int64_t gx, gy;
  grid_size(p, &gx, &gy);
  std::vector<T> ws((size_t)(gx * p.S), std::numeric_limits<T>::quiet_NaN());
  dispatch_tile_kernel<std::is_same<T, float>::value>(p, use_smem, [&](auto ks, auto kb, auto smem) {
    wgrad_blocks<S, T, decltype(ks)::value, decltype(kb)::value, decltype(smem)::value>(p, smem ? smem_bytes : 0,
                                                                                         gx, gy, ws.data());
  });
  // wgrad_reduce_kernel: 8 row-threads per slot, strided over the tiles, then summed in order
  for (int64_t s = 0; s < p.S; ++s) {
    T part[8];
    for (int ty = 0; ty < 8; ++ty) {
      T acc = T(0);
      for (int64_t t = ty; t < gx; t += 8) acc += ws[(size_t)(t * p.S + s)];
      part[ty] = acc;
    }
    T total = part[0];
    for (int ty = 1; ty < 8; ++ty) total += part[ty];
    out[s] = S(total);  // the reduce kernel's static_cast<scalar_t>
  }
  return use_smem ? 1 : 0;
}

}  // namespace

extern "C" {
// shape: N, C, H, W; k: gc, ks, kw, kh, dilation; strides in elements; w: w_hw, b_hw, w_w, b_w,
// w_h, b_h (contiguous; biases may be null). Returns 1 when the shared-memory path ran, 0 when the
// global-memory one did, -1 when the tile plan broke the kernels' power-of-two assumption.
int idw_emu_conv_f32(const int64_t* shape, const int* k, const float* in, const int64_t* in_st, float* out,
                     const int64_t* out_st, const float* const* w, int flip, int cl, int force_global) {
  return conv<float>(shape, k, in, in_st, out, out_st, w, flip, cl, force_global);
}
int idw_emu_conv_f64(const int64_t* shape, const int* k, const double* in, const int64_t* in_st, double* out,
                     const int64_t* out_st, const double* const* w, int flip, int cl, int force_global) {
  return conv<double>(shape, k, in, in_st, out, out_st, w, flip, cl, force_global);
}
// out: the S weight/bias grads, flat: w_hw (gc*ks*ks), b_hw (gc), w_w (gc*kw), b_w, w_h (gc*kh), b_h.
int idw_emu_wgrad_f32(const int64_t* shape, const int* k, const float* x, const int64_t* x_st, const float* g,
                      const int64_t* g_st, float* out, int cl, int force_global) {
  return wgrad<float>(shape, k, x, x_st, g, g_st, out, cl, force_global);
}
int idw_emu_wgrad_f64(const int64_t* shape, const int* k, const double* x, const int64_t* x_st, const double* g,
                      const int64_t* g_st, double* out, int cl, int force_global) {
  return wgrad<double>(shape, k, x, x_st, g, g_st, out, cl, force_global);
}
// The one-pass autocast instances (RoundedFloat<r>: fp32 tensors read and written at bf16 (r = 1)
// or fp16 (r = 2) precision), on fp32 buffers.
int idw_emu_conv_round(int r, const int64_t* shape, const int* k, const float* in, const int64_t* in_st, float* out,
                       const int64_t* out_st, const float* const* w, int flip, int cl, int force_global) {
  const auto run = [&](auto tag) {
    using S = decltype(tag);
    return conv<S, float>(shape, k, reinterpret_cast<const S*>(in), in_st, reinterpret_cast<S*>(out), out_st,
                          reinterpret_cast<const S* const*>(w), flip, cl, force_global);
  };
  return r == 1 ? run(RoundedFloat<1>{}) : run(RoundedFloat<2>{});
}
int idw_emu_wgrad_round(int r, const int64_t* shape, const int* k, const float* x, const int64_t* x_st, const float* g,
                        const int64_t* g_st, float* out, int cl, int force_global) {
  const auto run = [&](auto tag) {
    using S = decltype(tag);
    return wgrad<S, float>(shape, k, reinterpret_cast<const S*>(x), x_st, reinterpret_cast<const S*>(g), g_st,
                           reinterpret_cast<S*>(out), cl, force_global);
  };
  return r == 1 ? run(RoundedFloat<1>{}) : run(RoundedFloat<2>{});
}
// v[i] = round_low<r>(v[i]): the kernels' rounding, to check against torch's casts.
void idw_emu_round(int r, float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = r == 1 ? round_low<1>(v[i]) : round_low<2>(v[i]);
}
}
