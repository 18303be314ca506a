// Device code of the fused Inception depthwise conv: the params struct and the per-thread work of
// the tiled kernels, written as plain functions of (block, thread) indices so that the same code
// runs in the CUDA kernels (csrc/cuda/*.cu) and in a sequential host emulation
// (tests/emulation/cuda_tiles_host.cpp, run by tests/test_cuda_emulation.py on every machine).
//
// Channels of x, in order: identity [0, c_id), square k x k [c_id, c_id+gc), 1 x Kw [.., +gc),
// Kh x 1 [.., +gc). Each conv: stride 1, zero padding d*(k-1)/2, dilation (d,d) / (1,d) / (d,1).
//
// One thread block owns one output tile: image n, TH x TW pixels at (h0, w0), CB consecutive
// channels [c0, c0 + nc). The conv channels of the tile are staged in shared memory with their
// halo (each branch loads only the halo it needs), as the accumulation type, one slot of
// `cstride` elements per channel: slot[rr * RW + rc] holds input pixel (h0 - P_h + rr, w0 - P_w + rc),
// zero outside the image. P_h / P_w are the largest padding over the branches on each axis.
// Thread order inside a block: channels fastest when `cl` (channels_last tensors: coalesced),
// else pixels fastest (NCHW).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#define IDW_HD __host__ __device__ __forceinline__
#else
#define IDW_HD inline
#endif

namespace idw {

enum Branch : int { kIdentity = 0, kSquare = 1, kBandW = 2, kBandH = 3 };

// ------------------------------------------------------------------------------------------------
// fp32 values at bf16 / fp16 precision (the one-pass autocast kernels)

// The bits of an fp32 as a uint32 (To = uint32_t, From = float), or back (To = float).
template <typename To, typename From>
IDW_HD To bit_cast(From v) {
  static_assert(sizeof(To) == 4 && sizeof(From) == 4, "fp32 <-> uint32 only");
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same<To, uint32_t>::value) return __float_as_uint(v);
  else return __uint_as_float(v);
#else
  To out;
  std::memcpy(&out, &v, sizeof out);
  return out;
#endif
}

// f rounded to the nearest bf16 (R = 1) or fp16 (R = 2) value, ties to even, as an fp32: what
// c10's float -> BFloat16 / Half -> float conversions give (overflow to inf; NaN stays NaN, its
// payload aside). Integer steps, the same on the device and in the host emulation.
template <int R>
IDW_HD float round_low(float f) {
  const uint32_t u = bit_cast<uint32_t>(f), a = u & 0x7FFFFFFFu, sign = u & 0x80000000u;
  if (a >= 0x7F800000u) return f;  // inf, NaN
  if (R == 1) return bit_cast<float>((u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u);
  if (a >= 0x477FF000u) return bit_cast<float>(sign | 0x7F800000u);  // >= 65520: past the largest fp16
  if (a >= 0x38800000u)  // fp16 normals (>= 2^-14): 10 mantissa bits of the 23 kept
    return bit_cast<float>(sign | ((a + 0xFFFu + ((a >> 13) & 1u)) & 0xFFFFE000u));
  // fp16 subnormals: multiples of 2^-24 (the scalings by powers of two are exact)
  return bit_cast<float>(sign | bit_cast<uint32_t>(rintf(bit_cast<float>(a) * 16777216.0f) * 5.9604644775390625e-8f));
}

// An fp32 tensor element read and written at bf16 (R = 1) or fp16 (R = 2) precision: the kernels
// templated on it compute, from fp32 tensors, what their bf16 / fp16 instances compute from the
// same tensors cast to bf16 / fp16, cast back to fp32; raw copies (the identity channels) stay exact.
template <int R>
struct RoundedFloat {
  float v;
  RoundedFloat() = default;
  IDW_HD RoundedFloat(float f) : v(round_low<R>(f)) {}  // NOLINT: converts like the low types do
  IDW_HD operator float() const { return round_low<R>(v); }
};

struct ConvParams {
  int64_t N, C, H, W;
  int gc, c_id;             // channels per conv branch; identity channels (C - 3*gc)
  int ks, kw, kh, dil;      // square kernel size, 1 x Kw size, Kh x 1 size, dilation
  int pad_s, pad_w, pad_h;  // dil * (k - 1) / 2 for square, 1 x Kw (along W), Kh x 1 (along H)
  int P_h, P_w;             // tile halo per axis: max(pad_s, pad_h), max(pad_s, pad_w)
  // `in`: x (forward, weight grads) or grad_out (grad_x); `out`: y or grad_x.
  const void* in;
  int64_t in_sn, in_sc, in_sh, in_sw;
  void* out;
  int64_t out_sn, out_sc, out_sh, out_sw;
  // weight grads: grad_out, read at the tile's pixels (no halo)
  const void* g;
  int64_t g_sn, g_sc, g_sh, g_sw;
  const void *w_hw, *w_w, *w_h;  // contiguous weights, taps flattened (k*k, Kw, Kh per channel)
  const void *b_hw, *b_w, *b_h;  // contiguous biases or nullptr
  int flip;                      // 1: correlate with the flipped kernels (grad_x)
  // tiling (TH, TW, CB are powers of two: the per-element index math uses shifts and masks)
  int TH, TW, CB;           // tile rows, tile cols, channels per block
  int lTW, lPix, lCB;       // log2 of TW, TH * TW, CB
  float rRW, rRegion;       // 1 / (TW + 2 P_w) and 1 / ((TH + 2 P_h) (TW + 2 P_w)), for small_div
  int64_t tiles_h, tiles_w;
  int c_begin, c_count;     // channels covered by the grid: [c_begin, c_begin + c_count)
  int cl;                   // 1: channels-fastest thread order
  int cstride;              // shared-memory elements per channel slot (>= RH * RW, odd)
  // weight grads: workspace [tile][slot] of S accumulation-type partial sums
  void* ws;
  int64_t S;
};

// Branch of channel c and its index inside the branch (comparisons: no division).
IDW_HD int branch_of(const ConvParams& p, int c, int* lc) {
  int b = kIdentity, start = 0;
  if (c >= p.c_id) {
    b = kSquare;
    start = p.c_id;
    if (c >= start + p.gc) { b = kBandW; start += p.gc; }
    if (c >= start + p.gc) { b = kBandH; start += p.gc; }
  }
  *lc = c - start;
  return b;
}

// a / d for 0 <= a < 2^22 through d's float reciprocal r: exact there ((a + 0.5) * r stays within
// 0.5 / d of a / d + 0.5 / d), and a few instructions where an integer division by a run-time d
// takes dozens.
IDW_HD int small_div(int a, float r) { return (int)(((float)a + 0.5f) * r); }

// Block-local element idx -> (local channel, pixel of the tile): channels fastest when p.cl.
IDW_HD void split_tile_index(const ConvParams& p, int idx, int* cl_, int* pp) {
  if (p.cl) { *cl_ = idx & (p.CB - 1); *pp = idx >> p.lCB; }
  else { *cl_ = idx >> p.lPix; *pp = idx & ((1 << p.lPix) - 1); }
}

// Slots of the weight-grad workspace per tile: the six grads, flat.
IDW_HD int64_t wgrad_slot_count(const ConvParams& p) {
  return (int64_t)p.gc * (p.ks * p.ks + 1) + (int64_t)p.gc * (p.kw + 1) + (int64_t)p.gc * (p.kh + 1);
}

// Slot of (branch, local channel, tap j) in the weight-grad workspace; j == taps is the bias.
// Layout: [gw_hw gc*ks*ks][gb_hw gc][gw_w gc*kw][gb_w gc][gw_h gc*kh][gb_h gc].
IDW_HD int64_t wgrad_slot(const ConvParams& p, int br, int lc, int j) {
  const int64_t gc = p.gc;
  const int64_t off_w = gc * (p.ks * p.ks + 1);
  const int64_t off_h = off_w + gc * (p.kw + 1);
  if (br == kSquare) {
    const int taps = p.ks * p.ks;
    return j == taps ? gc * taps + lc : (int64_t)lc * taps + j;
  }
  if (br == kBandW) return j == p.kw ? off_w + gc * p.kw + lc : off_w + (int64_t)lc * p.kw + j;
  return j == p.kh ? off_h + gc * p.kh + lc : off_h + (int64_t)lc * p.kh + j;
}

// Block coordinates from the (x: n * tile, y: channel block) grid.
struct TileCoord {
  int64_t n;
  int h0, w0, c0, nc;
};

IDW_HD TileCoord tile_coord(const ConvParams& p, int64_t bx, int64_t by) {
  TileCoord t;
  const int64_t tiles = p.tiles_h * p.tiles_w;
  t.n = bx / tiles;
  const int64_t r = bx % tiles;
  t.h0 = (int)((r / p.tiles_w) * p.TH);
  t.w0 = (int)((r % p.tiles_w) * p.TW);
  t.c0 = p.c_begin + (int)by * p.CB;
  const int left = p.c_begin + p.c_count - t.c0;
  t.nc = left < p.CB ? left : p.CB;
  return t;
}

// True when the block has at least one conv channel (identity-only blocks skip shared memory).
IDW_HD bool tile_has_conv(const ConvParams& p, const TileCoord& t) { return t.c0 + t.nc > p.c_id; }

// Whether shared-memory slot position (rr, rc) is read by a channel of branch br.
IDW_HD bool halo_needed(const ConvParams& p, int br, int rr, int rc, int pad_s, int pad_w, int pad_h,
                        int P_h, int P_w) {
  int r_lo, r_hi, c_lo, c_hi;  // half-open
  if (br == kSquare) {
    r_lo = P_h - pad_s; r_hi = P_h + p.TH + pad_s;
    c_lo = P_w - pad_s; c_hi = P_w + p.TW + pad_s;
  } else if (br == kBandW) {
    r_lo = P_h; r_hi = P_h + p.TH;
    c_lo = P_w - pad_w; c_hi = P_w + p.TW + pad_w;
  } else if (br == kBandH) {
    r_lo = P_h - pad_h; r_hi = P_h + p.TH + pad_h;
    c_lo = P_w; c_hi = P_w + p.TW;
  } else {
    return false;
  }
  return rr >= r_lo && rr < r_hi && rc >= c_lo && rc < c_hi;
}

template <typename scalar_t, typename acc_t>
IDW_HD acc_t load_in(const ConvParams& p, int64_t n, int c, int64_t h, int64_t w) {
  if (h < 0 || h >= p.H || w < 0 || w >= p.W) return acc_t(0);
  const scalar_t* in = static_cast<const scalar_t*>(p.in);
  return static_cast<acc_t>(in[n * p.in_sn + c * p.in_sc + h * p.in_sh + w * p.in_sw]);
}

template <typename scalar_t, typename acc_t>
IDW_HD acc_t load_g(const ConvParams& p, int64_t n, int c, int64_t h, int64_t w) {
  if (h < 0 || h >= p.H || w < 0 || w >= p.W) return acc_t(0);
  const scalar_t* g = static_cast<const scalar_t*>(p.g);
  return static_cast<acc_t>(g[n * p.g_sn + c * p.g_sc + h * p.g_sh + w * p.g_sw]);
}

// Compile-time or runtime sizes: KS/KB > 0 fix the square and band kernel sizes and dilation 1.
template <int KS, int KB>
struct Sizes {
  int d, ks, kw, kh, pad_s, pad_w, pad_h, P_h, P_w;
  IDW_HD explicit Sizes(const ConvParams& p) {
    if (KS > 0) {
      d = 1; ks = KS; kw = KB; kh = KB;
      pad_s = (KS - 1) / 2; pad_w = (KB - 1) / 2; pad_h = (KB - 1) / 2;
      P_h = pad_s > pad_h ? pad_s : pad_h;
      P_w = pad_s > pad_w ? pad_s : pad_w;
    } else {
      d = p.dil; ks = p.ks; kw = p.kw; kh = p.kh;
      pad_s = p.pad_s; pad_w = p.pad_w; pad_h = p.pad_h; P_h = p.P_h; P_w = p.P_w;
    }
  }
};

// Phase 1: stage the halo'd input tile of the block's conv channels in shared memory.
template <typename scalar_t, typename acc_t, int KS, int KB>
IDW_HD void load_tile(const ConvParams& p, const TileCoord& t, acc_t* smem, int tid, int nthreads) {
  const Sizes<KS, KB> z(p);
  const int RH = p.TH + 2 * z.P_h, RW = p.TW + 2 * z.P_w;
  const int region = RH * RW;
  const int total = p.CB * region;
  for (int idx = tid; idx < total; idx += nthreads) {
    int cl_, r;
    if (p.cl) { cl_ = idx & (p.CB - 1); r = idx >> p.lCB; }
    else { cl_ = small_div(idx, p.rRegion); r = idx - cl_ * region; }
    if (cl_ >= t.nc) continue;
    const int c = t.c0 + cl_;
    int lc;
    const int br = branch_of(p, c, &lc);
    const int rr = small_div(r, p.rRW), rc = r - rr * RW;
    if (!halo_needed(p, br, rr, rc, z.pad_s, z.pad_w, z.pad_h, z.P_h, z.P_w)) continue;
    smem[cl_ * p.cstride + r] =
        load_in<scalar_t, acc_t>(p, t.n, c, (int64_t)t.h0 - z.P_h + rr, (int64_t)t.w0 - z.P_w + rc);
  }
}

// Input value at slot position (rr, rc) of local channel cl_: from shared memory (SMEM) or global.
template <typename scalar_t, typename acc_t, bool SMEM>
IDW_HD acc_t tile_in(const ConvParams& p, const TileCoord& t, const acc_t* smem, int cl_, int rr, int rc,
                     int RW, int P_h, int P_w) {
  if (SMEM) return smem[cl_ * p.cstride + rr * RW + rc];
  return load_in<scalar_t, acc_t>(p, t.n, t.c0 + cl_, (int64_t)t.h0 - P_h + rr, (int64_t)t.w0 - P_w + rc);
}

template <typename scalar_t>
IDW_HD scalar_t load_raw(const void* ptr, int64_t off) { return static_cast<const scalar_t*>(ptr)[off]; }

// Bias plus the taps of a band kernel of k taps (1 x k along W when ALONG_W, else k x 1 along H),
// flipped for grad_x, around slot position (rr0, rc0); KB > 0 fixes k at compile time.
template <typename scalar_t, typename acc_t, int KB, bool SMEM, bool ALONG_W>
IDW_HD acc_t band_taps(const ConvParams& p, const TileCoord& t, const acc_t* smem, int cl_, const void* weights,
                       const void* bias, int lc, int k, int pad, int d, int rr0, int rc0, int RW, int P_h, int P_w) {
  const scalar_t* wt = static_cast<const scalar_t*>(weights) + (int64_t)lc * k;
  acc_t acc = bias ? static_cast<acc_t>(static_cast<const scalar_t*>(bias)[lc]) : acc_t(0);
#pragma unroll
  for (int i = 0; i < (KB > 0 ? KB : k); ++i) {
    const acc_t wv = static_cast<acc_t>(wt[p.flip ? k - 1 - i : i]);
    const int s = i * d - pad;
    acc += wv * tile_in<scalar_t, acc_t, SMEM>(p, t, smem, cl_, ALONG_W ? rr0 : rr0 + s, ALONG_W ? rc0 + s : rc0,
                                               RW, P_h, P_w);
  }
  return acc;
}

// Phase 2 (forward and grad_x): every output of the tile. Identity channels copy `in` to `out`;
// conv channels accumulate taps (flipped for grad_x) plus the bias.
template <typename scalar_t, typename acc_t, int KS, int KB, bool SMEM>
IDW_HD void conv_tile(const ConvParams& p, const TileCoord& t, const acc_t* smem, int tid, int nthreads) {
  const Sizes<KS, KB> z(p);
  const int RW = p.TW + 2 * z.P_w;
  const int pix = p.TH * p.TW;
  const int total = p.CB * pix;
  scalar_t* out = static_cast<scalar_t*>(p.out);
  for (int idx = tid; idx < total; idx += nthreads) {
    int cl_, pp;
    split_tile_index(p, idx, &cl_, &pp);
    const int th = pp >> p.lTW, tw = pp & (p.TW - 1);
    const int64_t h = t.h0 + th, w = t.w0 + tw;
    if (cl_ >= t.nc || h >= p.H || w >= p.W) continue;
    const int c = t.c0 + cl_;
    const int64_t o = t.n * p.out_sn + c * p.out_sc + h * p.out_sh + w * p.out_sw;
    int lc;
    const int br = branch_of(p, c, &lc);
    if (br == kIdentity) {
      out[o] = load_raw<scalar_t>(p.in, t.n * p.in_sn + c * p.in_sc + h * p.in_sh + w * p.in_sw);
      continue;
    }
    acc_t acc = acc_t(0);
    if (br == kSquare) {
      const scalar_t* wt = static_cast<const scalar_t*>(p.w_hw) + (int64_t)lc * z.ks * z.ks;
      if (p.b_hw) acc = static_cast<acc_t>(static_cast<const scalar_t*>(p.b_hw)[lc]);
      const int kk = z.ks * z.ks;
#pragma unroll
      for (int i = 0; i < (KS > 0 ? KS : z.ks); ++i) {
        const int rr = th + z.P_h - z.pad_s + i * z.d;
#pragma unroll
        for (int j = 0; j < (KS > 0 ? KS : z.ks); ++j) {
          const int tap = i * z.ks + j;
          const acc_t wv = static_cast<acc_t>(wt[p.flip ? kk - 1 - tap : tap]);
          const int rc = tw + z.P_w - z.pad_s + j * z.d;
          acc += wv * tile_in<scalar_t, acc_t, SMEM>(p, t, smem, cl_, rr, rc, RW, z.P_h, z.P_w);
        }
      }
    } else if (br == kBandW) {
      acc = band_taps<scalar_t, acc_t, KB, SMEM, true>(p, t, smem, cl_, p.w_w, p.b_w, lc, z.kw, z.pad_w, z.d,
                                                       th + z.P_h, tw + z.P_w, RW, z.P_h, z.P_w);
    } else {
      acc = band_taps<scalar_t, acc_t, KB, SMEM, false>(p, t, smem, cl_, p.w_h, p.b_h, lc, z.kh, z.pad_h, z.d,
                                                        th + z.P_h, tw + z.P_w, RW, z.P_h, z.P_w);
    }
    out[o] = static_cast<scalar_t>(acc);
  }
}

// Weight grads, phase 1b: the grad_out tile (no halo) of the block's channels, zero outside the
// image; stored after the CB input slots, TH*TW elements per channel.
template <typename scalar_t, typename acc_t>
IDW_HD void load_g_tile(const ConvParams& p, const TileCoord& t, acc_t* gsm, int tid, int nthreads) {
  const int pix = p.TH * p.TW;
  const int total = p.CB * pix;
  for (int idx = tid; idx < total; idx += nthreads) {
    int cl_, pp;
    split_tile_index(p, idx, &cl_, &pp);
    if (cl_ >= t.nc) continue;
    const int th = pp >> p.lTW, tw = pp & (p.TW - 1);
    gsm[cl_ * pix + pp] = load_g<scalar_t, acc_t>(p, t.n, t.c0 + cl_, (int64_t)t.h0 + th, (int64_t)t.w0 + tw);
  }
}

// Weight grads: taps + 1 (bias) jobs per channel, JM = max over branches; job -> (local channel, j).
IDW_HD int wgrad_jobs_per_channel(const ConvParams& p) {
  int m = p.ks * p.ks;
  if (p.kw > m) m = p.kw;
  if (p.kh > m) m = p.kh;
  return m + 1;
}

// Weight grads, phase 2: one lane's share of job `job` (a warp's 32 lanes split the tile's pixels;
// the caller reduces the 32 partials in a fixed order). Returns false when the job is empty
// (beyond the block's channels or the branch's taps), identically for all lanes.
template <typename scalar_t, typename acc_t, int KS, int KB, bool SMEM>
IDW_HD bool wgrad_lane(const ConvParams& p, const TileCoord& t, const acc_t* smem, const acc_t* gsm, int job,
                       int lane, int nlanes, acc_t* result, int64_t* slot) {
  const Sizes<KS, KB> z(p);
  const int JM = wgrad_jobs_per_channel(p);
  const int cl_ = job / JM, j = job % JM;
  if (cl_ >= t.nc) return false;
  const int c = t.c0 + cl_;
  int lc;
  const int br = branch_of(p, c, &lc);
  if (br == kIdentity) return false;
  const int taps = br == kSquare ? z.ks * z.ks : (br == kBandW ? z.kw : z.kh);
  if (j > taps) return false;
  *slot = wgrad_slot(p, br, lc, j);
  const int RW = p.TW + 2 * z.P_w;
  // slot offset of tap j relative to the output pixel's slot position (P_h + th, P_w + tw)
  int dr = 0, dc = 0;
  if (j < taps) {
    if (br == kSquare) {
      dr = (j / z.ks) * z.d - z.pad_s;
      dc = (j % z.ks) * z.d - z.pad_s;
    } else if (br == kBandW) {
      dc = j * z.d - z.pad_w;
    } else {
      dr = j * z.d - z.pad_h;
    }
  }
  const int pix = p.TH * p.TW;
  acc_t acc = acc_t(0);
  for (int pp = lane; pp < pix; pp += nlanes) {
    const int th = pp >> p.lTW, tw = pp & (p.TW - 1);
    if (t.h0 + th >= p.H || t.w0 + tw >= p.W) continue;
    const acc_t gv = SMEM ? gsm[cl_ * pix + pp]
                          : load_g<scalar_t, acc_t>(p, t.n, c, (int64_t)t.h0 + th, (int64_t)t.w0 + tw);
    if (j == taps) {
      acc += gv;
    } else {
      acc += gv * tile_in<scalar_t, acc_t, SMEM>(p, t, smem, cl_, z.P_h + th + dr, z.P_w + tw + dc, RW, z.P_h,
                                                 z.P_w);
    }
  }
  *result = acc;
  return true;
}

// ---- host side (also used by the emulation): kernel choice, tile choice ----

// Which instantiation of a tiled kernel runs: calls launch(KS, KB, SMEM) with std::integral_constant
// arguments. Shared-memory tiles of InceptionNeXt's sizes (dilation 1, a 3x3 square kernel, bands of
// 11 or 9) get kernels specialised for them (KS = 3, KB = 11 or 9) unless kSpecialise is false (the
// launchers pass false for double, to compile fewer kernels); everything else the general kernel
// (KS = KB = 0) on shared memory or, when the halo'd tile does not fit, on global memory. Used by
// conv.cu, grad_weight.cu and the host emulation alike.
template <int V>
using IntC = std::integral_constant<int, V>;

template <bool kSpecialise, typename Launch>
void dispatch_tile_kernel(const ConvParams& p, bool use_smem, Launch&& launch) {
  if (!use_smem) return launch(IntC<0>{}, IntC<0>{}, std::false_type{});
  if constexpr (kSpecialise) {
    if (p.dil == 1 && p.ks == 3 && p.kw == p.kh) {
      if (p.kw == 11) return launch(IntC<3>{}, IntC<11>{}, std::true_type{});
      if (p.kw == 9) return launch(IntC<3>{}, IntC<9>{}, std::true_type{});
    }
  }
  launch(IntC<0>{}, IntC<0>{}, std::true_type{});
}

// Grid of the tiled kernels: x = N * tiles, y = channel blocks.
inline void grid_size(const ConvParams& p, int64_t* gx, int64_t* gy) {
  *gx = p.N * p.tiles_h * p.tiles_w;
  *gy = (p.c_count + p.CB - 1) / p.CB;
}

constexpr int64_t kSmemLimit = 48 * 1024;  // dynamic shared memory without opt-in

inline int64_t next_pow2(int64_t v) {
  int64_t r = 1;
  while (r < v) r <<= 1;
  return r;
}

// Shape, kernel sizes, paddings and halo of the params.
inline void set_sizes(ConvParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int gc, int ks, int kw, int kh,
                      int dil) {
  p.N = N; p.C = C; p.H = H; p.W = W;
  p.gc = gc;
  p.c_id = (int)(C - 3 * (int64_t)gc);
  p.ks = ks; p.kw = kw; p.kh = kh; p.dil = dil;
  p.pad_s = dil * (ks - 1) / 2; p.pad_w = dil * (kw - 1) / 2; p.pad_h = dil * (kh - 1) / 2;
  p.P_h = std::max(p.pad_s, p.pad_h);
  p.P_w = std::max(p.pad_s, p.pad_w);
}

// Picks TH x TW x CB and whether the halo'd tile fits in shared memory (else the kernels read
// global memory directly through the same index math). Returns the dynamic shared memory bytes
// (0 when not using shared memory). `with_g`: the weight-grad kernel also stages a grad_out tile.
inline int64_t configure_tiles(ConvParams& p, int acc_bytes, bool with_g, bool* use_smem) {
  int TH, TW, CB;
  const int64_t H = std::max<int64_t>(p.H, 1), W = std::max<int64_t>(p.W, 1);
  if (p.cl) {
    TH = (int)std::min<int64_t>(8, next_pow2(H));
    TW = (int)std::min<int64_t>(8, next_pow2(W));
    CB = (int)std::min<int64_t>(acc_bytes > 4 ? 16 : 32, 512 / (TH * TW));
  } else {
    TW = W <= 8 ? 8 : (W <= 16 ? 16 : 32);
    TH = (int)std::min<int64_t>(512 / TW, next_pow2(H));
    CB = std::max(1, 512 / (TH * TW));
  }
  CB = (int)std::max<int64_t>(1, std::min<int64_t>(CB, next_pow2(std::max(p.c_count, 1))));
  auto bytes = [&](int th, int tw, int cb) -> int64_t {
    int64_t region = (int64_t)(th + 2 * p.P_h) * (tw + 2 * p.P_w);
    int64_t cstride = region | 1;  // odd: channel slots spread over the banks
    return (int64_t)cb * (cstride + (with_g ? (int64_t)th * tw : 0)) * acc_bytes;
  };
  const int TH0 = TH, TW0 = TW, CB0 = CB;
  while (bytes(TH, TW, CB) > kSmemLimit) {
    if (CB > 1) CB /= 2;
    else if (TH >= TW && TH > 1) TH /= 2;
    else if (TW > 1) TW /= 2;
    else break;
  }
  *use_smem = bytes(TH, TW, CB) <= kSmemLimit;
  if (!*use_smem) { TH = TH0; TW = TW0; CB = CB0; }
  p.TH = TH; p.TW = TW; p.CB = CB;
  auto log2i = [](int v) { int l = 0; while ((1 << l) < v) ++l; return l; };
  p.lTW = log2i(TW); p.lPix = log2i(TH * TW); p.lCB = log2i(CB);
  p.rRW = 1.0f / (float)(TW + 2 * p.P_w);
  p.rRegion = 1.0f / (float)((int64_t)(TH + 2 * p.P_h) * (TW + 2 * p.P_w));
  p.tiles_h = (p.H + TH - 1) / TH;
  p.tiles_w = (p.W + TW - 1) / TW;
  const int64_t region = (int64_t)(TH + 2 * p.P_h) * (TW + 2 * p.P_w);
  p.cstride = *use_smem ? (int)(region | 1) : 0;
  return *use_smem ? bytes(TH, TW, CB) : 0;
}

}  // namespace idw
