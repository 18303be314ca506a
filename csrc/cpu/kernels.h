// Fused CPU kernels of the Inception depthwise convolution: the loops themselves.
//
// This header is compiled twice (kernels_generic.cpp, kernels_avx2.cpp), each time inside its own
// namespace KERNEL_NS and, for AVX2, under `#pragma GCC target("avx2,fma")`; inception_dwconv_cpu.cpp
// picks one at run time by what the processor supports. Include every library header before this
// one, so that only the functions below take the target options.
//
// Forward reads x once and writes y once: identity channels are copied, conv channels computed and
// written straight into the output. Backward reads grad_out once: grad_x (identity channels pass
// through, conv channels correlate grad_out with the flipped kernel) and the weight / bias partials
// come from the same sweep. Partials are per image (planes) or per row chunk (rows), which depend on
// the shape only, so the reduced weight grads have the same bits for any thread count (the rows'
// channel blocks, which follow the thread count, split a chunk's channels, not any channel's sum).
//
// Both conv schemes convert what a work item needs once into a zero-padded buffer in the
// accumulation type; a tap is then a multiply-add over a shifted stretch of the buffer with no bounds
// checks (the padding is the convolution's zero padding). Outputs are produced a register tile at a
// time (conv_tile), all taps accumulated in registers before one store.
//  * planes (any layout but channels innermost): one (n, c) conv plane per item, stored flat with
//    rows W + pw apart (cpu_common.h, flat_stride), so a tap is one loop over the whole plane with a
//    scalar weight, as long for a 7x7 map as the map allows; identity planes are copied by items of
//    the same pass;
//  * rows (channels innermost): one (n, row chunk) per item, a branch at a time; a buffer row holds
//    W pixels x gc channels interleaved and the tap weight is a vector of the channel weights in
//    that repeating order (BranchWeights::row), so even a 7-pixel row is a long loop.

namespace inception_dwconv {
namespace KERNEL_NS {

template <typename scalar_t>
using acc_type = at::opmath_type<scalar_t>;

// Explicit vectors (GCC / Clang vector extensions) of the including file's width, KERNEL_BLOCK_BYTES
// / 8: the register tiles below are arrays of them, which the compiler keeps in registers (arrays
// of scalars it vectorized itself stayed on the stack in the reduction loops). The typedefs have the
// element's alignment, so loads and stores may be unaligned, and may alias the element type.
constexpr int kVecBytes = KERNEL_BLOCK_BYTES / 8;
template <typename T>
struct SimdOf;
template <>
struct SimdOf<float> {
  typedef float type __attribute__((vector_size(kVecBytes), aligned(alignof(float)), may_alias));
};
template <>
struct SimdOf<double> {
  typedef double type __attribute__((vector_size(kVecBytes), aligned(alignof(double)), may_alias));
};
template <>
struct SimdOf<int32_t> {  // lane masks of float vectors
  typedef int32_t type __attribute__((vector_size(kVecBytes), aligned(alignof(int32_t)), may_alias));
};
template <>
struct SimdOf<int64_t> {  // lane masks of double vectors
  typedef int64_t type __attribute__((vector_size(kVecBytes), aligned(alignof(int64_t)), may_alias));
};
template <>
struct SimdOf<uint16_t> {  // 2-byte values (bf16, fp16) moved as bits, never computed on
  typedef uint16_t type __attribute__((vector_size(kVecBytes), aligned(alignof(uint16_t)), may_alias));
};
template <typename T>
using simd = typename SimdOf<T>::type;
template <typename T>
constexpr int64_t simd_lanes() {
  return kVecBytes / static_cast<int64_t>(sizeof(T));
}
template <typename T>
inline simd<T> vload(const T* p) {
  return *reinterpret_cast<const simd<T>*>(p);
}
template <typename T>
inline void vstore(T* p, const simd<T>& v) {
  *reinterpret_cast<simd<T>*>(p) = v;
}
// The lower and the upper half of v's lanes stored apart (the halves built lane by lane, which GCC
// and Clang of any version turn into one extract: __builtin_shufflevector needs GCC 12).
template <typename T, typename Half, std::size_t... I>
inline Half half_of(const simd<T>& v, std::index_sequence<I...>, std::size_t first) {
  return Half{v[first + I]...};
}
template <typename T>
inline void vstore_halves(T* lo, T* hi, const simd<T>& v) {
  constexpr std::size_t H = simd_lanes<T>() / 2;
  typedef T half_t __attribute__((vector_size(H * sizeof(T)), aligned(alignof(T)), may_alias));
  *reinterpret_cast<half_t*>(lo) = half_of<T, half_t>(v, std::make_index_sequence<H>{}, 0);
  *reinterpret_cast<half_t*>(hi) = half_of<T, half_t>(v, std::make_index_sequence<H>{}, H);
}

template <typename T>
inline T hsum(const simd<T>& v) {  // lanes in order
  T s = v[0];
  for (int64_t l = 1; l < simd_lanes<T>(); ++l) s += v[l];
  return s;
}

// out[i] = the sum of v[i]'s lanes, i < n. The AVX2 build sums fp32 vectors eight at a time as a
// tree of pairwise adds ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), a transposition by
// horizontal adds; other types and builds add lanes in order (hsum). Both orders are fixed, so the
// sums have the same bits every run.
template <typename T>
inline void hsum_each(const simd<T>* v, int64_t n, T* out) {
#if defined(KERNEL_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t i = 0; i < n; i += 8) {
      __m256 g[8];
      for (int64_t k = 0; k < 8; ++k) g[k] = i + k < n ? (__m256)v[i + k] : _mm256_setzero_ps();
      // Lane t of q0, t < 4: lanes 0-3 of g[t] summed; lane 4 + t: lanes 4-7 of g[t]. q1: g[4..7].
      const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(g[0], g[1]), _mm256_hadd_ps(g[2], g[3]));
      const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(g[4], g[5]), _mm256_hadd_ps(g[6], g[7]));
      const __m256 s = _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
      if (i + 8 <= n) {
        _mm256_storeu_ps(out + i, s);
      } else {
        alignas(32) float last[8];
        _mm256_store_ps(last, s);
        for (int64_t k = 0; i + k < n; ++k) out[i + k] = last[k];
      }
    }
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = hsum<T>(v[i]);
}

// 16-byte vectors (any x86-64 or AArch64 build has them) for short copies.
template <typename T>
struct Simd16Of {
  typedef T type __attribute__((vector_size(16), aligned(alignof(T)), may_alias));
};

// dst[0:n] = src[0:n] for float or double without overlap between dst and src: whole vectors,
// then one last vector ending at n (overlapping the previous one), so that no element outside
// [0, n) is touched (the gaps of the flat plane buffers must stay zero). Returns false for n below
// a 16-byte vector.
template <typename T>
__attribute__((always_inline)) inline bool copy_short_vectors(T* dst, const T* src, int64_t n) {
  constexpr int64_t L = simd_lanes<T>(), L16 = 16 / static_cast<int64_t>(sizeof(T));
  using V16 = typename Simd16Of<T>::type;
  if (n >= L) {
    int64_t v = 0;
    for (; v + L <= n; v += L) vstore(dst + v, vload(src + v));
    if (v < n) vstore(dst + n - L, vload(src + n - L));
    return true;
  }
  if (n >= L16) {  // below one vector of the build's width: 16-byte ones, the last one ending at n
    for (int64_t v = 0; v + L16 < n; v += L16)
      *reinterpret_cast<V16*>(dst + v) = *reinterpret_cast<const V16*>(src + v);
    *reinterpret_cast<V16*>(dst + n - L16) = *reinterpret_cast<const V16*>(src + n - L16);
    return true;
  }
  return false;
}

// bf16 <-> float, 8 values a vector, with the bits of c10::BFloat16's own conversions (widening is
// exact; narrowing rounds to nearest even, NaN gives 0x7FC0): GCC does not vectorize those scalar
// conversions in runs as short as these (a pixel's 12 channels, a 14-value plane row).
typedef uint16_t U16x8 __attribute__((vector_size(16), aligned(2), may_alias));
typedef uint32_t U32x8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef float F32x8 __attribute__((vector_size(32), aligned(4), may_alias));

// f rounded to bf16 precision (the bf16 value's bits in the upper half), NaN to 0x7FC00000.
inline F32x8 round_bf16x8(F32x8 f) {
  const U32x8 u = (U32x8)f, nan = (U32x8)(f != f);
  const U32x8 rounded = (u + (((u >> 16) & 1) + 0x7FFF)) & 0xFFFF0000u;
  return (F32x8)((rounded & ~nan) | (nan & 0x7FC00000u));
}
inline F32x8 widen_bf16x8(const c10::BFloat16* p) {
  return (F32x8)(__builtin_convertvector(*reinterpret_cast<const U16x8*>(p), U32x8) << 16);
}
inline void narrow_bf16x8(c10::BFloat16* p, F32x8 f) {
  *reinterpret_cast<U16x8*>(p) = __builtin_convertvector((U32x8)round_bf16x8(f) >> 16, U16x8);
}

// Calls eight(v) for v = 0, 8, 16, ... while v + 8 <= n, then once for the last 8 values (v = n - 8)
// when n is not a multiple of 8: the conversions below cover [0, n) in vectors of 8, converting a
// few values twice, to the same bits. Needs n >= 8.
template <typename F>
inline void for_vectors_of_8(int64_t n, F&& eight) {
  int64_t v = 0;
  for (; v + 8 <= n; v += 8) eight(v);
  if (v < n) eight(n - 8);
}

// dst[0:n] = src[0:n] for bf16 -> float or float -> bf16 and 8 <= n < 16. Longer runs are left to
// the compiler's own vectorized loop (16 values a step, measured 2% - 6% faster than vectors of 8
// there); shorter ones stay scalar. Returns whether it converted.
template <typename dst_t, typename src_t>
inline bool convert_bf16_short(dst_t* dst, const src_t* src, int64_t n) {
  if (n < 8 || n >= 16) return false;
  for_vectors_of_8(n, [&](int64_t v) {
    if constexpr (std::is_same_v<src_t, c10::BFloat16>) *reinterpret_cast<F32x8*>(dst + v) = widen_bf16x8(src + v);
    else narrow_bf16x8(dst + v, *reinterpret_cast<const F32x8*>(src + v));
  });
  return true;
}

template <typename dst_t, typename src_t>
constexpr bool kBf16Float = (std::is_same_v<dst_t, float> && std::is_same_v<src_t, c10::BFloat16>) ||
                            (std::is_same_v<dst_t, c10::BFloat16> && std::is_same_v<src_t, float>);

#if defined(KERNEL_F16C)
// fp16 <-> float with the F16C instructions, 8 values a vector: widening exact, narrowing rounding to
// nearest even, as c10::Half's scalar conversion does (only NaN payloads may differ). c10 converts in
// software here (the library headers come before the target pragma), 3x - 4x slower than fp32.
template <typename dst_t, typename src_t>
constexpr bool kHalfFloat = (std::is_same_v<dst_t, float> && std::is_same_v<src_t, c10::Half>) ||
                            (std::is_same_v<dst_t, c10::Half> && std::is_same_v<src_t, float>);

// dst[0:n] = src[0:n] for fp16 -> float or float -> fp16, n >= 8. Returns false for n below 8.
template <typename dst_t, typename src_t>
inline bool convert_half_vectors(dst_t* dst, const src_t* src, int64_t n) {
  if (n < 8) return false;
  for_vectors_of_8(n, [&](int64_t v) {
    if constexpr (std::is_same_v<src_t, c10::Half>) {
      _mm256_storeu_ps(dst + v, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + v))));
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + v), _mm256_cvtps_ph(_mm256_loadu_ps(src + v), _MM_FROUND_TO_NEAREST_INT));
    }
  });
  return true;
}
#else
template <typename dst_t, typename src_t>
constexpr bool kHalfFloat = false;
#endif

// Bf16RoundedFloat <-> float (the autocast forward): fp32 values rounded to bf16 precision, 8 a
// vector, as Bf16RoundedFloat::round does.
template <typename dst_t, typename src_t>
constexpr bool kRoundedFloat = (std::is_same_v<dst_t, float> && std::is_same_v<src_t, Bf16RoundedFloat>) ||
                               (std::is_same_v<dst_t, Bf16RoundedFloat> && std::is_same_v<src_t, float>);

// dst[0:n] = src[0:n] rounded (round_bf16x8), n >= 8. Returns false for n below 8.
template <typename dst_t, typename src_t>
inline bool convert_rounded_vectors(dst_t* dst, const src_t* src, int64_t n) {
  if (n < 8) return false;
  float* d = reinterpret_cast<float*>(dst);
  const float* s = reinterpret_cast<const float*>(src);
  for_vectors_of_8(n, [&](int64_t v) {
    *reinterpret_cast<F32x8*>(d + v) = round_bf16x8(*reinterpret_cast<const F32x8*>(s + v));
  });
  return true;
}

// Conversions that this build vectorizes itself (above): short plane rows are converted as whole
// planes (load_plane, conv_plane) so that they take vectors too.
template <typename dst_t, typename src_t>
constexpr bool kVectorConversion = kBf16Float<dst_t, src_t> || kHalfFloat<dst_t, src_t> || kRoundedFloat<dst_t, src_t>;

// Same-type runs of at least this many values are copied by memcpy (copy_run, copy_rows).
constexpr int64_t kMemcpyMin = 256;

// dst[v * stride] = src[v] for v < n, converting. Runs here are often short (a pixel's 12 channels,
// a 7-pixel row): same-type float / double runs take copy_short_vectors, long ones memcpy, the rest
// an inline loop (the build passes -fno-tree-loop-distribute-patterns so the compiler keeps it).
template <typename dst_t, typename src_t>
inline void copy_run(dst_t* dst, int64_t dst_stride, const src_t* src, int64_t src_stride, int64_t n) {
  if (dst_stride == 1 && src_stride == 1) {
    if constexpr (std::is_same_v<dst_t, src_t>) {
      if (n >= kMemcpyMin) {
        std::memcpy(dst, src, sizeof(src_t) * n);
        return;
      }
      if constexpr (std::is_same_v<src_t, float> || std::is_same_v<src_t, double>) {
        if (copy_short_vectors(dst, src, n)) return;
      } else if constexpr (sizeof(src_t) == 2) {
        if (copy_short_vectors(reinterpret_cast<uint16_t*>(dst), reinterpret_cast<const uint16_t*>(src), n)) return;
      } else if constexpr (std::is_same_v<src_t, Bf16RoundedFloat>) {  // fp32 bits
        if (copy_short_vectors(reinterpret_cast<float*>(dst), reinterpret_cast<const float*>(src), n)) return;
      }
    }
    if constexpr (kBf16Float<dst_t, src_t>) {
      if (convert_bf16_short(dst, src, n)) return;
    }
    if constexpr (kRoundedFloat<dst_t, src_t>) {
      if (convert_rounded_vectors(dst, src, n)) return;
    }
#if defined(KERNEL_F16C)
    if constexpr (kHalfFloat<dst_t, src_t>) {
      if (convert_half_vectors(dst, src, n)) return;
    }
#endif
    for (int64_t v = 0; v < n; ++v) dst[v] = static_cast<dst_t>(src[v]);
  } else {
    for (int64_t v = 0; v < n; ++v) dst[v * dst_stride] = static_cast<dst_t>(src[v * src_stride]);
  }
}

// dst[0:n] = src[0:n] as K vectors, the last one ending at n: (K - 1) L < n <= K L.
template <int K, typename T>
inline void copy_vectors(T* dst, const T* src, int64_t n) {
  constexpr int64_t L = simd_lanes<T>();
  for (int i = 0; i + 1 < K; ++i) vstore(dst + i * L, vload(src + i * L));
  vstore(dst + n - L, vload(src + n - L));
}

// rows x n values from rows src_step apart to rows dst_step apart (both dense within a row), the
// choice of copy made once for all rows: same-type float / double rows of more than one and at most
// eight vectors take that many vector copies each, the last one overlapping (copy_vectors, no loop),
// other rows of at least a 16-byte vector inlined vector copies (copy_short_vectors), the rest
// copy_run. No value outside a row's n is written.
template <typename dst_t, typename src_t>
inline void copy_rows(dst_t* dst, int64_t dst_step, const src_t* src, int64_t src_step, int64_t rows, int64_t n) {
  if constexpr (std::is_same_v<dst_t, src_t> && (std::is_same_v<src_t, float> || std::is_same_v<src_t, double>)) {
    constexpr int64_t L = simd_lanes<src_t>();
    const auto rows_of = [&](auto k) {
      for (int64_t r = 0; r < rows; ++r) copy_vectors<decltype(k)::value>(dst + r * dst_step, src + r * src_step, n);
    };
    if (n > L && n <= 8 * L) {  // 2 - 8 vectors a row (a pixel's 12 - 64 fp32 channels, plane rows)
      switch ((n + L - 1) / L) {
        case 2: return rows_of(std::integral_constant<int, 2>{});
        case 3: return rows_of(std::integral_constant<int, 3>{});
        case 4: return rows_of(std::integral_constant<int, 4>{});
        case 5: return rows_of(std::integral_constant<int, 5>{});
        case 6: return rows_of(std::integral_constant<int, 6>{});
        case 7: return rows_of(std::integral_constant<int, 7>{});
        default: return rows_of(std::integral_constant<int, 8>{});
      }
    }
    if (n >= 16 / static_cast<int64_t>(sizeof(src_t)) && n < kMemcpyMin) {
      for (int64_t r = 0; r < rows; ++r) copy_short_vectors(dst + r * dst_step, src + r * src_step, n);
      return;
    }
  }
  for (int64_t r = 0; r < rows; ++r) copy_run(dst + r * dst_step, 1, src + r * src_step, 1, n);
}

// Values per row of a channels_last register tile: 64 bytes of lanes.
template <typename acc_t>
constexpr int64_t lanes_of() {
  return 64 / static_cast<int64_t>(sizeof(acc_t));
}

// Buffer offset of each tap (i, j) of branch b: i * d * row_step + j * d * col_step.
inline std::vector<int64_t> tap_offsets(const Geometry& g, int b, int64_t row_step, int64_t col_step) {
  std::vector<int64_t> off(g.taps(b));
  for (int64_t t = 0; t < g.taps(b); ++t) off[t] = g.dilation * ((t / g.kw[b]) * row_step + (t % g.kw[b]) * col_step);
  return off;
}

// A register tile of R output rows x NV vectors:
// out[r * out_step + 0:NV vectors] = bias + sum over taps t of wt(t) * in[r * row_step + off[t] + ...],
// where wt(t) is a scalar wt[t] (planes) or NV vectors at wt + t * wt_step (rows), loaded once per
// tap and used for every row of the tile. half_off, when given, places each half vector instead:
// vector v's lower half at out + r * out_step + half_off[2v], its upper half at half_off[2v + 1].
template <bool kVectorWeights, typename acc_t, int64_t R, int64_t NV>
inline void conv_tile(const acc_t* in, int64_t row_step, const int64_t* off, int64_t taps, const acc_t* wt,
                      int64_t wt_step, const acc_t* bias, acc_t* out, int64_t out_step, int64_t last_row_len = -1,
                      const int64_t* half_off = nullptr) {
  using V = simd<acc_t>;
  constexpr int64_t L = simd_lanes<acc_t>();
  V a[R][NV];
  for (int64_t v = 0; v < NV; ++v) {
    const V b0 = kVectorWeights ? vload(bias + v * L) : V{} + bias[0];
    for (int64_t r = 0; r < R; ++r) a[r][v] = b0;
  }
  for (int64_t t = 0; t < taps; ++t) {
    const acc_t* s = in + off[t];
    if constexpr (kVectorWeights) {
      V w[NV];
      for (int64_t v = 0; v < NV; ++v) w[v] = vload(wt + t * wt_step + v * L);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t v = 0; v < NV; ++v) a[r][v] += w[v] * vload(s + r * row_step + v * L);
    } else {
      const acc_t w = wt[t];
      for (int64_t r = 0; r < R; ++r)
        for (int64_t v = 0; v < NV; ++v) a[r][v] += w * vload(s + r * row_step + v * L);
    }
  }
  // last_row_len >= 0: the last row stores only that many values (its vectors would spill past the
  // output); through a local buffer, so the copy is one short run.
  const int64_t full_rows = last_row_len >= 0 ? R - 1 : R;
  for (int64_t r = 0; r < full_rows; ++r) {
    for (int64_t v = 0; v < NV; ++v) {
      if (half_off == nullptr) {
        vstore(out + r * out_step + v * L, a[r][v]);
      } else if (half_off[2 * v + 1] == half_off[2 * v] + L / 2) {
        vstore(out + r * out_step + half_off[2 * v], a[r][v]);
      } else {
        vstore_halves(out + r * out_step + half_off[2 * v], out + r * out_step + half_off[2 * v + 1], a[r][v]);
      }
    }
  }
  if (last_row_len >= 0) {
    alignas(64) acc_t last[NV * L];
    for (int64_t v = 0; v < NV; ++v) vstore(last + v * L, a[R - 1][v]);
    copy_run(out + (R - 1) * out_step, 1, last, 1, last_row_len);
  }
}

// For NT taps at once (gy loaded once for all of them), over rows r < rows of step `step` and NV
// vectors per row: acc_t sums[t][v] = sum_r gy[r * step + v] * x[off[t] + r * step + v], lane-wise.
template <int64_t NT, int64_t NV, typename acc_t>
inline void dot_taps_tile(const acc_t* gy, const acc_t* x, const int64_t* off, int64_t rows, int64_t step,
                          simd<acc_t> (&a)[NT][NV]) {
  using V = simd<acc_t>;
  constexpr int64_t L = simd_lanes<acc_t>();
  for (int64_t t = 0; t < NT; ++t)
    for (int64_t v = 0; v < NV; ++v) a[t][v] = V{};
  for (int64_t r = 0; r < rows; ++r) {
    V gv[NV];
    for (int64_t v = 0; v < NV; ++v) gv[v] = vload(gy + r * step + v * L);
    for (int64_t t = 0; t < NT; ++t) {
      const acc_t* xs = x + off[t] + r * step;
      for (int64_t v = 0; v < NV; ++v) a[t][v] += gv[v] * vload(xs + v * L);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Planes
// ------------------------------------------------------------------------------------------------

// Pointers and strides of the backward's tensors; gx is null when grad_x is not wanted.
template <typename scalar_t>
struct BackwardTensors {
  Strides4 gys, xs, gxs;
  const scalar_t* gyp;
  const scalar_t* xp;
  scalar_t* gxp;
  BackwardTensors(const at::Tensor& gy, const at::Tensor& x, at::Tensor* gx)
      : gys(gy), xs(x), gxs(gx ? *gx : gy), gyp(static_cast<const scalar_t*>(gy.data_ptr())),
        xp(static_cast<const scalar_t*>(x.data_ptr())), gxp(gx ? static_cast<scalar_t*>(gx->data_ptr()) : nullptr) {}
};

// One zeroed flat buffer per branch (cpu_common.h, flat_stride): loading a plane writes only its
// H x W values, so the padding and the gaps between rows stay zero for every plane of the branch.
template <typename acc_t>
struct FlatBuffers {
  std::vector<acc_t> buf[3];
  FlatBuffers(const Geometry& g, bool wanted) {
    for (int b = 0; b < 3 && wanted; ++b) buf[b].assign(flat_buffer(g, b), acc_t(0));
  }
  acc_t* operator[](int b) { return buf[b].data(); }
};

// Loads plane t(n, c) of branch b into its flat buffer, and, for planes of at most
// kPrefetchPlaneBytes, asks for the rows of the next channel's plane (the next work item's, mostly)
// to be fetched into L2 meanwhile: small plane loads otherwise wait on L3 / memory one row at a
// time. At 56x56 (12.5 KB planes, fp32) the prefetch made the forward 11% and the backward 5%
// slower; the hardware prefetchers follow planes that long. Prefetches never fault, so past the
// tensor's end is harmless.
constexpr int64_t kPrefetchPlaneBytes = 4096;
// scratch: H x W values, used by bf16 / fp16 planes with rows shorter than a vector (widened as one run
// there, then copied row by row: 7x7 forward 31% faster than converting 7-value rows one by one).
template <typename scalar_t, typename acc_t>
void load_plane(const Geometry& g, int b, const scalar_t* plane, const Strides4& s, acc_t* buf, acc_t* scratch) {
  const int64_t S = flat_stride(g, b), row_bytes = g.W * static_cast<int64_t>(sizeof(scalar_t));
  acc_t* dst = buf + flat_origin(g, b);
  if (s.w == 1 && s.h == g.W) {  // a dense plane: prefetch the next one as one range
    const char* next = reinterpret_cast<const char*>(plane + s.c);
    if (g.H * row_bytes <= kPrefetchPlaneBytes)
      for (int64_t off = 0; off < g.H * row_bytes; off += 64) __builtin_prefetch(next + off, 0, 2);
    if (S == g.W) return copy_run(dst, 1, plane, 1, g.H * g.W);  // no gaps (pw = 0): one copy
    if constexpr (kVectorConversion<acc_t, scalar_t>) {
      if (g.W < 8) {  // rows shorter than a vector: the plane widened in one run first
        copy_run(scratch, 1, plane, 1, g.H * g.W);
        return copy_rows(dst, S, scratch, g.W, g.H, g.W);
      }
    }
  } else if (s.w == 1) {
    for (int64_t h = 0; h < g.H; ++h) {
      const char* next = reinterpret_cast<const char*>(plane + s.c + h * s.h);
      for (int64_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(next + off, 0, 2);
    }
  }
  if (s.w == 1) return copy_rows(dst, S, plane, s.h, g.H, g.W);
  for (int64_t h = 0; h < g.H; ++h) copy_run(dst + h * S, 1, plane + h * s.h, s.w, g.W);
}

template <typename scalar_t>
void copy_plane(const scalar_t* src, const Strides4& ss, scalar_t* dst, const Strides4& ds, int64_t H, int64_t W) {
  for (int64_t h = 0; h < H; ++h) copy_run(dst + h * ds.h, ds.w, src + h * ss.h, ss.w, W);
}

// Tiles of NV = 1..8 vectors of one plane row (R = 1), NV picked at run time (the tail of a plane).
template <typename acc_t, int64_t NV = 8>
inline void conv_tile_n(int64_t nv, const acc_t* in, const int64_t* off, int64_t taps, const acc_t* wt,
                        const acc_t* bias, acc_t* out) {
  if constexpr (NV > 0) {
    if (nv == NV) return conv_tile<false, acc_t, 1, NV>(in, 0, off, taps, wt, 0, bias, out, 0);
    conv_tile_n<acc_t, NV - 1>(nv, in, off, taps, wt, bias, out);
  }
}

// A tile of `rows` (1..R) rows x NV vectors, `rows` picked at run time.
template <typename acc_t, int64_t NV, int64_t R>
inline void conv_tile_rows(int64_t rows, const acc_t* in, int64_t row_step, const int64_t* off, int64_t taps,
                           const acc_t* wt, const acc_t* bias, acc_t* out, int64_t out_step, int64_t last_row_len) {
  if constexpr (R > 0) {
    if (rows == R) return conv_tile<false, acc_t, R, NV>(in, row_step, off, taps, wt, 0, bias, out, out_step, last_row_len);
    conv_tile_rows<acc_t, NV, R - 1>(rows, in, row_step, off, taps, wt, bias, out, out_step, last_row_len);
  }
}

// The plane's output rows straight into a dense plane of acc_t (no flat staging, no row copies),
// tiles of up to R rows x NV vectors (R * NV <= 9 chains of multiply-adds). For NV >= 2 vectors a
// row (W > 1 vector), a row's last vector spills past its W values by less than a vector, into
// the next row, which is stored later; only the last row's would spill past the plane, so the last
// tile stores that row's W values alone.
template <typename acc_t, int64_t NV>
void conv_rows_direct(const Geometry& g, int b, const acc_t* buf, const int64_t* off, const acc_t* wt, acc_t bias,
                      acc_t* out) {
  static_assert(NV >= 2, "rows of one vector would spill further than the next row");
  constexpr int64_t L = simd_lanes<acc_t>(), R = NV == 2 ? 4 : NV == 3 ? 3 : NV <= 6 ? 2 : 1;
  const int64_t S = flat_stride(g, b), W = g.W, H = g.H, taps = g.taps(b);
  const int64_t last_row_len = W % L == 0 ? -1 : W;
  for (int64_t h = 0; h < H; h += R) {
    const int64_t rows = std::min(R, H - h), tail = h + rows == H ? last_row_len : -1;
    if (rows == R) conv_tile<false, acc_t, R, NV>(buf + h * S, S, off, taps, wt, 0, &bias, out + h * W, W, tail);
    else conv_tile_rows<acc_t, NV, R>(rows, buf + h * S, S, off, taps, wt, &bias, out + h * W, W, tail);
  }
}

// The 1-D branches on maps whose rows fit in one vector (W <= L: 7x7 in fp32 AVX2) as banded
// matrix products, with one multiply-add per input value and output row:
//  * 1xK (b = 1): out[h][:] = bias + sum_k x[h][k] * T_c[k][:], T_c[k][w] being channel c's tap j
//    with k = w + j d - pw (zero if there is none): H x W multiply-adds a plane, where the flat loop
//    (conv_plane) computes H x (W + pw) positions for every tap (7x7, K = 11: 49 instead of 121);
//  * Kx1 (b = 2, also H <= L): out[h][:] = bias + sum_k U_c[h][k] * x[k][:], U_c[h][k] the tap i
//    with k = h + i d - ph: H x H (49 instead of 77).
// An output's taps still run in order from the bias, as in the flat loop, which also adds the zero
// padding's products (zeros) that these skip: the same sums. Where x[k] does not reach an output
// (lane w of the 1xK row, row h of the Kx1 plane), the x it would multiply is masked to zero (the
// tap is zero there too), so a NaN or inf input reaches exactly the outputs it reaches in the
// convolution. T_c[k] and U_c[.][k] are read from one run per channel: the taps reversed, d apart,
// between zeros, at first - k + w (or + h).
template <typename acc_t>
struct BandWeights {
  static constexpr int64_t L = simd_lanes<acc_t>();
  using Bits = std::conditional_t<sizeof(acc_t) == 4, int32_t, int64_t>;
  using IV = simd<Bits>;
  int b = 1;
  bool active = false;         // whether the map takes this path
  int64_t len = 0, first = 0;  // values per channel in rev; the tap joining x[k] to output o at first - k + o
  std::vector<acc_t> rev;      // per channel: L zeros, the taps in reverse order d apart, L zeros
  std::vector<Bits> mask;      // per k, L lanes: all ones for the outputs o < n that x[k] reaches
  int64_t full_begin = 0, full_end = 0;  // the k that reach every output (one range, or none)
  // wts: the branch's (gc, K) taps, in BranchWeights::plane order (flipped for grad_x).
  BandWeights(const Geometry& g, int branch, const std::vector<acc_t>& wts, bool wanted) : b(branch) {
    const bool rows = b == 1;  // along W (1xK) or along H (Kx1)
    const int64_t K = rows ? g.kw[b] : g.kh[b], d = g.dilation, pad = rows ? g.pad_w(b) : g.pad_h(b);
    const int64_t n = rows ? g.W : g.H;  // the outputs along the conv's axis
    active = wanted && b != 0 && (rows ? g.kh[b] : g.kw[b]) == 1 && g.W >= 1 && g.W <= L &&
             (rows || g.H <= L);
    if (!active) return;
    len = 2 * L + (K - 1) * d + 1;
    first = L + (K - 1) * d - pad;  // rev[first - k + o] = tap (k - o + pad) / d
    rev.assign(g.gc * len, acc_t(0));
    for (int64_t c = 0; c < g.gc; ++c)
      for (int64_t j = 0; j < K; ++j) rev[c * len + L + (K - 1 - j) * d] = wts[c * K + j];
    mask.resize(n * L);
    for (int64_t k = 0; k < n; ++k) {
      bool full = true;
      for (int64_t o = 0; o < L; ++o) {
        const int64_t q = k - o + pad;  // = j d for the tap that joins x[k] to output o
        const bool reach = o < n && q >= 0 && q <= (K - 1) * d && q % d == 0;
        mask[k * L + o] = reach ? Bits(-1) : Bits(0);
        if (o < n && !reach) full = false;
      }
      // With dilation 1 the k that reach every output are one range; with more, none (n > 1).
      if (full && full_end == full_begin) full_begin = k, full_end = k + 1;
      else if (full && full_end == k) full_end = k + 1;
    }
  }
  const acc_t* channel(int64_t c) const { return rev.data() + c * len + first; }
};

// R output rows of a band plane (BandWeights) from the input rows at in (S apart: branch B's flat
// buffer, or the plane itself), each stored as one vector at out + r * out_step, except that the
// last row stores only last_row_len values when that is not -1. B = 1: rows of one tile, x[r][k]
// broadcast; B = 2: the plane's R = H rows, x[k] a row vector, the last one read from last_in (a
// vector's worth of values) rather than from in, which may end there.
template <int B, typename acc_t, int64_t R>
inline void band_tile(const BandWeights<acc_t>& band, const acc_t* t, const acc_t* in, int64_t S, int64_t W,
                      acc_t bias, acc_t* out, int64_t out_step, int64_t last_row_len, const acc_t* last_in) {
  using V = simd<acc_t>;
  using IV = typename BandWeights<acc_t>::IV;
  constexpr int64_t L = BandWeights<acc_t>::L;
  V a[R];
  for (int64_t r = 0; r < R; ++r) a[r] = V{} + bias;
  const int64_t n = B == 1 ? W : R;
  const auto step = [&](int64_t k, bool full) {
    const typename BandWeights<acc_t>::Bits* m = band.mask.data() + k * L;
    if constexpr (B == 1) {
      const V tk = vload(t - k);
      // x - 0 is x in every lane (0 + x would turn -0 into +0), and GCC makes it one broadcast.
      if (full)
        for (int64_t r = 0; r < R; ++r) a[r] += in[r * S + k] * tk;
      else
        for (int64_t r = 0; r < R; ++r) a[r] += (V)((IV)(in[r * S + k] - V{}) & vload(m)) * tk;
    } else {
      const V xk = vload(k + 1 < n ? in + k * S : last_in);
      if (full)
        for (int64_t r = 0; r < R; ++r) a[r] += t[r - k] * xk;
      else
        for (int64_t r = 0; r < R; ++r) a[r] += t[r - k] * (V)((IV)xk & (m[r] - IV{}));
    }
  };
  int64_t k = 0;
  for (; k < band.full_begin; ++k) step(k, false);
  for (; k < band.full_end; ++k) step(k, true);
  for (; k < n; ++k) step(k, false);
  const int64_t full_rows = last_row_len >= 0 ? R - 1 : R;
  for (int64_t r = 0; r < full_rows; ++r) vstore(out + r * out_step, a[r]);
  if (last_row_len >= 0) {
    alignas(64) acc_t last[L];
    vstore(last, a[R - 1]);
    copy_run(out + (R - 1) * out_step, 1, last, 1, last_row_len);
  }
}

// Calls f(std::integral_constant<int64_t, n>{}) for a run-time 1 <= n <= M: the row count of a
// register tile made a template argument (band_plane, square3_plane).
template <int64_t M, typename F>
inline void with_rows(int64_t n, F&& f) {
  if constexpr (M > 0) {
    if (n == M) return f(std::integral_constant<int64_t, M>{});
    with_rows<M - 1>(n, f);
  }
}

// The band plane of channel c (of BandWeights' branch) from x(0, 0) of the plane at in, rows S
// apart (a flat buffer, or a dense plane of x itself: only its H x W values are read), row h of the
// output at out + h * out_step as one vector; with `exact` (rows of at least half a vector,
// out_step = W), the plane's last row stores its W values alone (its vector would spill past the
// plane; each other row's spill lands in the next row, stored after it).
template <typename acc_t>
void band_plane(const Geometry& g, const BandWeights<acc_t>& band, int64_t c, const acc_t* in, int64_t S,
                acc_t bias, acc_t* out, int64_t out_step, bool exact) {
  constexpr int64_t L = BandWeights<acc_t>::L;
  const acc_t* t = band.channel(c);
  alignas(64) acc_t last_in[L] = {};  // the Kx1 branch's last input row, whose vector would read past it
  if (band.b == 2) copy_run(last_in, 1, in + (g.H - 1) * S, 1, g.W);
  const auto tile = [&](auto rows, int64_t h) {
    constexpr int64_t R = decltype(rows)::value;
    const int64_t last = exact && h + R == g.H && g.W < L ? g.W : -1;
    if (band.b == 1)
      band_tile<1, acc_t, R>(band, t, in + h * S, S, g.W, bias, out + h * out_step, out_step, last, nullptr);
    else
      band_tile<2, acc_t, R>(band, t, in, S, g.W, bias, out, out_step, last, last_in);
  };
  int64_t h = 0;
  for (; h + 8 <= g.H; h += 8) tile(std::integral_constant<int64_t, 8>{}, h);  // b = 1 only (b = 2: H <= L)
  with_rows<7>(g.H - h, [&](auto rows) { tile(rows, h); });
}

// out[h][w] = bias + sum_{i,j} wt[i][j] * x[h + i d - ph][w + j d - pw], from the flat buffer of the
// plane (off: tap_offsets(g, b, flat_stride, 1)). A dense output plane of the accumulation type with
// rows of 3 to 8 vectors gets its rows straight from conv_rows_direct (at 56x56, fp32 AVX2: forward
// 19% and backward 8% faster, with the prefetch change below; at 14x14 and 7x7, rows of one or two
// vectors, it measured no faster for all branches together, and is used there for the 1xK branch
// with rows of two vectors alone, below). Otherwise the whole flat plane is computed into
// `flat` (flat_len values), and the W values of each row are copied out; a bf16 / fp16 output with rows
// shorter than a vector gets them gathered densely after flat_len first (flat holds flat_len_max + H
// x W values) and narrowed in one run. `band` (BandWeights, active for this branch and map) replaces
// the flat loop by band_plane for channel band_channel: straight into a dense output of the
// accumulation type, else into `flat` with the same copies out.
template <typename scalar_t, typename acc_t>
void conv_plane(const Geometry& g, int b, const acc_t* buf, const int64_t* off, const acc_t* wt, acc_t bias,
                acc_t* flat, scalar_t* out, const Strides4& os, const BandWeights<acc_t>* band = nullptr,
                int64_t band_channel = 0) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    constexpr int64_t L = simd_lanes<acc_t>();
    // The 1xK branch with rows of two vectors (14x14 in fp32) too: its flat rows are W + pw long (19
    // at K = 11), so the flat loop computes 1.36x the outputs where whole-vector rows compute 1.14x,
    // and no copies out. (The other branches' flat rows are W + 1 and W: no gain there.)
    if (os.w == 1 && os.h == g.W && b == 1 && g.W > L && g.W <= 2 * L)
      return conv_rows_direct<acc_t, 2>(g, b, buf, off, wt, bias, out);
    if (os.w == 1 && os.h == g.W && g.W > 2 * L && g.W <= 8 * L) {
      switch ((g.W + L - 1) / L) {
        case 3: return conv_rows_direct<acc_t, 3>(g, b, buf, off, wt, bias, out);
        case 4: return conv_rows_direct<acc_t, 4>(g, b, buf, off, wt, bias, out);
        case 5: return conv_rows_direct<acc_t, 5>(g, b, buf, off, wt, bias, out);
        case 6: return conv_rows_direct<acc_t, 6>(g, b, buf, off, wt, bias, out);
        case 7: return conv_rows_direct<acc_t, 7>(g, b, buf, off, wt, bias, out);
        default: return conv_rows_direct<acc_t, 8>(g, b, buf, off, wt, bias, out);
      }
    }
  }
  const int64_t S = flat_stride(g, b), n_out = g.H * S, taps = g.taps(b);
  // 8 vectors of flat positions per tile (8 independent multiply-add chains), the tail in one tile.
  constexpr int64_t L = simd_lanes<acc_t>(), B = 8 * L;
  if (band != nullptr) {
    // Dense rows of at least half a vector: straight into out (a row's vector then spills into the
    // next row alone; rows of 1 - 3 fp32 values would spill past the plane, into another item's).
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      if (os.w == 1 && os.h == g.W && 2 * g.W >= L)
        return band_plane(g, *band, band_channel, buf + flat_origin(g, b), S, bias, out, g.W, true);
    }
    band_plane(g, *band, band_channel, buf + flat_origin(g, b), S, bias, flat, S, false);
  } else {
    int64_t p = 0;
    for (; p + B <= n_out; p += B) conv_tile<false, acc_t, 1, 8>(buf + p, 0, off, taps, wt, 0, &bias, flat + p, 0);
    if (p < n_out) conv_tile_n<acc_t>((n_out - p + L - 1) / L, buf + p, off, taps, wt, &bias, flat + p);
  }
  if (S == g.W && os.w == 1 && os.h == g.W) return copy_run(out, 1, flat, 1, g.H * g.W);  // dense, no gaps
  if constexpr (kVectorConversion<scalar_t, acc_t>) {
    if (os.w == 1 && os.h == g.W && g.W < 8) {  // rows shorter than a vector: narrowed in one run
      acc_t* rows = flat + flat_len(g, b);
      copy_rows(rows, g.W, flat, S, g.H, g.W);
      return copy_run(out, 1, rows, 1, g.H * g.W);
    }
  }
  if (os.w == 1) return copy_rows(out, os.h, flat, S, g.H, g.W);
  for (int64_t h = 0; h < g.H; ++h) copy_run(out + h * os.h, os.w, flat + h * S, 1, g.W);
}

// Calls f(std::integral_constant<int64_t, nt>{}, t0) for consecutive groups of nt <= 4 taps.
template <typename F>
inline void for_tap_groups(int64_t taps, F&& f) {
  int64_t t0 = 0;
  for (; t0 + 4 <= taps; t0 += 4) f(std::integral_constant<int64_t, 4>{}, t0);
  switch (taps - t0) {
    case 3: f(std::integral_constant<int64_t, 3>{}, t0); break;
    case 2: f(std::integral_constant<int64_t, 2>{}, t0); break;
    case 1: f(std::integral_constant<int64_t, 1>{}, t0); break;
    default: break;
  }
}

// Weight and bias partials of one plane: tap_sums[t] = sum over outputs of gy * (x shifted by tap t),
// bias_sum = sum of gy. gy and x are flat buffers of branch b, gy zero between rows and past the map;
// off: tap_offsets(g, b, flat_stride, 1). Lanes are summed in a fixed order: reproducible.
// lanes: scratch of taps + 1 vectors (the per-lane sums, reduced together by hsum_each); tap_sums
// gets taps + 1 values, the bias sum last.
template <typename acc_t>
void weight_partials_plane(const Geometry& g, int b, const acc_t* gbuf, const acc_t* xbuf, const int64_t* off,
                           simd<acc_t>* lanes, acc_t* tap_sums) {
  using V = simd<acc_t>;
  constexpr int64_t L = simd_lanes<acc_t>();
  const int64_t n_out = g.H * flat_stride(g, b), taps = g.taps(b);
  const acc_t* gin = gbuf + flat_origin(g, b);
  // Steps of 2 vectors; flat_len (a multiple of 8 vectors) bounds the reads.
  const int64_t steps = (n_out + 2 * L - 1) / (2 * L);
  for_tap_groups(taps, [&](auto nt, int64_t t0) {
    constexpr int64_t NT = decltype(nt)::value;
    V a[NT][2];
    dot_taps_tile<NT, 2>(gin, xbuf, off + t0, steps, 2 * L, a);
    for (int64_t t = 0; t < NT; ++t) lanes[t0 + t] = a[t][0] + a[t][1];
  });
  V a[4] = {};
  for (int64_t p = 0; p < round_up(n_out, 4 * L); p += 4 * L)
    for (int64_t v = 0; v < 4; ++v) a[v] += vload(gin + p + v * L);
  lanes[taps] = (a[0] + a[1]) + (a[2] + a[3]);
  hsum_each<acc_t>(lanes, taps + 1, tap_sums);
}

// Tap offsets of the three branches in a buffer with the given row and column steps per branch.
struct BranchTaps {
  std::vector<int64_t> off[3];
  template <typename RowStep>
  BranchTaps(const Geometry& g, RowStep row_step, int64_t col_step) {
    for (int b = 0; b < 3; ++b) off[b] = tap_offsets(g, b, row_step(b), col_step);
  }
  const int64_t* operator[](int b) const { return off[b].data(); }
};

// Work items of the plane loops, image by image in channel order (the order of the planes in NCHW
// memory): first ceil(c_id / kIdPlanes) items that copy up to kIdPlanes identity planes each (none
// when the identity is not wanted), then one item per conv plane (branch b, channel k of the
// branch). Identity and conv planes share one parallel pass, and an image's items read its planes
// in memory order. The cursor steps through a range of items with one division at its start (four
// divisions per item cost about as much as loading a 7x7 plane).
constexpr int64_t kIdPlanes = 4;
struct PlaneCursor {
  const Geometry& g;
  int64_t id_items, per_image, n, q, k = 0;  // image n, item q within it, conv channel k of branch b
  int b = 0;
  static int64_t identity_items(const Geometry& g, bool identity) {
    return identity ? (g.c_id + kIdPlanes - 1) / kIdPlanes : 0;
  }
  static int64_t items(const Geometry& g, bool identity) { return g.N * (identity_items(g, identity) + 3 * g.gc); }
  PlaneCursor(const Geometry& geometry, bool identity, int64_t p)
      : g(geometry), id_items(identity_items(g, identity)), per_image(id_items + 3 * g.gc), n(p / per_image),
        q(p % per_image) {
    if (q >= id_items) {
      b = static_cast<int>((q - id_items) / g.gc);
      k = (q - id_items) % g.gc;
    }
  }
  bool is_identity() const { return q < id_items; }
  int64_t id_begin() const { return q * kIdPlanes; }
  int64_t id_end() const { return std::min(g.c_id, (q + 1) * kIdPlanes); }
  int64_t channel() const { return g.branch_start(b) + k; }
  void next() {
    if (++q == per_image) {
      q = 0;
      ++n;
    }
    if (q <= id_items) {  // still copying, or at the first conv plane
      b = 0;
      k = 0;
    } else if (++k == g.gc) {
      k = 0;
      ++b;
    }
  }
};

// dst planes [c0, c1) = src planes [c0, c1) of one image: one run when both are dense, else rows.
template <typename scalar_t>
void copy_planes(const Geometry& g, const scalar_t* src, const Strides4& ss, scalar_t* dst, const Strides4& ds,
                 int64_t c0, int64_t c1) {
  const auto dense = [&](const Strides4& s) { return s.w == 1 && s.h == g.W && s.c == g.H * g.W; };
  if (dense(ss) && dense(ds)) return copy_run(dst + c0 * ds.c, 1, src + c0 * ss.c, 1, (c1 - c0) * g.H * g.W);
  for (int64_t c = c0; c < c1; ++c) copy_plane(src + c * ss.c, ss, dst + c * ds.c, ds, g.H, g.W);
}

// The 3x3 branch with dilation 1 on planes read in place (small_planes_in_place) of at most 8 rows,
// all of them in registers: for each input row, its vector and the two shifted by one value (loads
// at -1 and +1, the lane that falls outside the row masked to zero), each multiplied into the up to
// three output rows it reaches. Row 0 and row H - 1 come from zero-padded local copies, so no read
// leaves the plane. An output's taps run in the flat loop's order from the bias (the three rows up
// to down, each left to right), padding rows skipped: the same sums, no flat buffer, no copies out.
template <typename acc_t>
struct Square3 {
  static constexpr int64_t L = simd_lanes<acc_t>();
  using Bits = typename BandWeights<acc_t>::Bits;
  bool active = false;
  alignas(64) Bits left[L], right[L];  // lane masks of the loads at -1 (lane 0 out) and +1 (lane W - 1 out)
  explicit Square3(const Geometry& g) {
    active = g.kh[0] == 3 && g.kw[0] == 3 && g.dilation == 1 && g.H >= 1 && g.H <= 8 && g.W <= L;
    for (int64_t w = 0; w < L; ++w) {
      left[w] = w == 0 ? Bits(0) : Bits(-1);
      right[w] = w == g.W - 1 ? Bits(0) : Bits(-1);
    }
  }
};

template <typename acc_t, int64_t H>
inline void square3_tile(const Square3<acc_t>& sq, const acc_t* in, int64_t W, const acc_t* wt, acc_t bias,
                         acc_t* out) {
  using V = simd<acc_t>;
  using IV = typename BandWeights<acc_t>::IV;
  constexpr int64_t L = Square3<acc_t>::L;
  alignas(64) acc_t edge[2][L + 2 * L] = {};  // row 0 and row H - 1 at [L], zeros around
  copy_run(edge[0] + L, 1, in, 1, W);
  copy_run(edge[1] + L, 1, in + (H - 1) * W, 1, W);
  const IV lm = vload(sq.left), rm = vload(sq.right);
  V a[H];
  for (int64_t h = 0; h < H; ++h) a[h] = V{} + bias;
  // Unrolled whole (GCC left the row loop rolled, with the accumulators in memory).
#pragma GCC unroll 8
  for (int64_t r = 0; r < H; ++r) {
    const acc_t* row = r == 0 ? edge[0] + L : r == H - 1 ? edge[1] + L : in + r * W;
    const V x[3] = {(V)((IV)vload(row - 1) & lm), vload(row), (V)((IV)vload(row + 1) & rm)};
#pragma GCC unroll 3
    for (int64_t i = 0; i < 3; ++i) {  // kernel row i: output row r + 1 - i
      const int64_t h = r + 1 - i;
      if (h < 0 || h >= H) continue;
#pragma GCC unroll 3
      for (int64_t j = 0; j < 3; ++j) a[h] += wt[i * 3 + j] * x[j];
    }
  }
  for (int64_t h = 0; h + 1 < H; ++h) vstore(out + h * W, a[h]);  // each spill lands in the next row
  alignas(64) acc_t last[L];
  vstore(last, a[H - 1]);
  copy_run(out + (H - 1) * W, 1, last, 1, W);
}

template <typename acc_t>
void square3_plane(const Geometry& g, const Square3<acc_t>& sq, const acc_t* in, const acc_t* wt, acc_t bias,
                   acc_t* out) {
  with_rows<8>(g.H, [&](auto rows) { square3_tile<acc_t, decltype(rows)::value>(sq, in, g.W, wt, bias, out); });
}

// Whether the band branches (BandWeights) and the 3x3 one (Square3) read their planes in place and
// store straight into the output's: dense planes of the accumulation type in and out, rows of at
// least half a vector (as in conv_plane). No flat buffer then (nor its load): 8x768x7x7 forward 15%
// - 18% faster for the band branches, then 12% for the 3x3 one.
template <typename scalar_t, typename acc_t>
bool small_planes_in_place(const Geometry& g, const Strides4& in, const Strides4& out) {
  return std::is_same_v<scalar_t, acc_t> && in.w == 1 && in.h == g.W && out.w == 1 && out.h == g.W &&
         2 * g.W >= simd_lanes<acc_t>();
}

// Plane k of branch b from the dense plane `in` straight into `out` (small_planes_in_place holds),
// by band_plane or square3_plane when the branch takes one; false when it takes neither.
template <typename acc_t>
bool plane_in_place(const Geometry& g, const BandWeights<acc_t> (&band)[2], const Square3<acc_t>& sq,
                    const BranchWeights<acc_t>& w, int b, int64_t k, acc_t bias, const acc_t* in, acc_t* out) {
  if (b > 0 && band[b - 1].active) {
    band_plane(g, band[b - 1], k, in, g.W, bias, out, g.W, true);
    return true;
  }
  if (b == 0 && sq.active) {
    square3_plane(g, sq, in, w.plane[0].data() + k * 9, bias, out);
    return true;
  }
  return false;
}

template <typename scalar_t>
void forward_planes(const Geometry& g, const at::Tensor& x, const BranchWeights<acc_type<scalar_t>>& bw, at::Tensor& y) {
  using acc_t = acc_type<scalar_t>;
  const Strides4 xs(x), ys(y);
  const scalar_t* xp = static_cast<const scalar_t*>(x.data_ptr());  // untyped: Bf16RoundedFloat too
  scalar_t* yp = static_cast<scalar_t*>(y.data_ptr());
  const BranchTaps offs(g, [&](int b) { return flat_stride(g, b); }, 1);
  const BandWeights<acc_t> band[2] = {{g, 1, bw.plane[1], true}, {g, 2, bw.plane[2], true}};  // 1xK, Kx1
  const bool in_place = small_planes_in_place<scalar_t, acc_t>(g, xs, ys);
  const Square3<acc_t> sq(g);
  at::parallel_for(0, PlaneCursor::items(g, true), 1, [&](int64_t begin, int64_t end) {
    FlatBuffers<acc_t> bufs(g, true);
    std::vector<acc_t> flat(flat_len_max(g) + g.H * g.W + kBlock);  // + kBlock: band_plane's whole-vector rows
    PlaneCursor at(g, true, begin);
    for (int64_t p = begin; p < end; ++p, at.next()) {
      const scalar_t* xn = xp + at.n * xs.n;
      scalar_t* yn = yp + at.n * ys.n;
      if (at.is_identity()) {
        copy_planes(g, xn, xs, yn, ys, at.id_begin(), at.id_end());
        continue;
      }
      const int b = at.b;
      const int64_t c = at.channel();
      if constexpr (std::is_same_v<scalar_t, acc_t>) {
        if (in_place && plane_in_place(g, band, sq, bw, b, at.k, bw.bias[b][at.k], xn + c * xs.c, yn + c * ys.c))
          continue;
      }
      load_plane(g, b, xn + c * xs.c, xs, bufs[b], flat.data());
      conv_plane(g, b, bufs[b], offs[b], bw.plane[b].data() + at.k * g.taps(b), bw.bias[b][at.k], flat.data(),
                 yn + c * ys.c, ys, b > 0 && band[b - 1].active ? &band[b - 1] : nullptr, at.k);
    }
  });
}

template <typename scalar_t>
void backward_planes(const Geometry& g, const at::Tensor& gy, const at::Tensor& x,
                     const BranchWeights<acc_type<scalar_t>>& flipped, at::Tensor* gx, acc_type<scalar_t>* part,
                     const PartialLayout& L) {
  using acc_t = acc_type<scalar_t>;
  const BackwardTensors<scalar_t> t(gy, x, gx);
  const BranchTaps offs(g, [&](int b) { return flat_stride(g, b); }, 1);
  const bool identity = t.gxp != nullptr;
  const BandWeights<acc_t> band[2] = {{g, 1, flipped.plane[1], identity}, {g, 2, flipped.plane[2], identity}};
  // grad_x alone (with the weight grads, grad_out goes to the flat buffers for the dot products)
  const bool in_place = identity && !part && small_planes_in_place<scalar_t, acc_t>(g, t.gys, t.gxs);
  const Square3<acc_t> sq(g);
  // A conv item's partials go to block n, the slots of its channel: disjoint across items.
  at::parallel_for(0, PlaneCursor::items(g, identity), 1, [&](int64_t begin, int64_t end) {
    FlatBuffers<acc_t> gbufs(g, true), xbufs(g, part != nullptr);
    std::vector<acc_t> flat(flat_len_max(g) + g.H * g.W + kBlock), tap_sums(g.max_taps() + 1);  // as forward's
    std::vector<acc_t> lanes((g.max_taps() + 1) * simd_lanes<acc_t>());
    PlaneCursor at(g, identity, begin);
    for (int64_t p = begin; p < end; ++p, at.next()) {
      const int64_t n = at.n;
      if (at.is_identity()) {
        copy_planes(g, t.gyp + n * t.gys.n, t.gys, t.gxp + n * t.gxs.n, t.gxs, at.id_begin(), at.id_end());
        continue;
      }
      const int b = at.b;
      const int64_t k = at.k, c = at.channel();
      if constexpr (std::is_same_v<scalar_t, acc_t>) {
        if (in_place && plane_in_place(g, band, sq, flipped, b, k, acc_t(0), t.gyp + n * t.gys.n + c * t.gys.c,
                                       t.gxp + n * t.gxs.n + c * t.gxs.c))
          continue;
      }
      load_plane(g, b, t.gyp + n * t.gys.n + c * t.gys.c, t.gys, gbufs[b], flat.data());
      if (t.gxp) {
        conv_plane(g, b, gbufs[b], offs[b], flipped.plane[b].data() + k * g.taps(b), acc_t(0), flat.data(),
                   t.gxp + n * t.gxs.n + c * t.gxs.c, t.gxs, b > 0 && band[b - 1].active ? &band[b - 1] : nullptr, k);
      }
      if (!part) continue;
      load_plane(g, b, t.xp + n * t.xs.n + c * t.xs.c, t.xs, xbufs[b], flat.data());
      acc_t* slot = part + n * L.item_size();
      weight_partials_plane(g, b, gbufs[b], xbufs[b], offs[b], reinterpret_cast<simd<acc_t>*>(lanes.data()),
                            tap_sums.data());
      for (int64_t tap = 0; tap < g.taps(b); ++tap) slot[L.at(b, tap, k)] = tap_sums[tap];
      slot[L.at(b, L.slots - 1, k)] = tap_sums[g.taps(b)];
    }
  });
}

// ------------------------------------------------------------------------------------------------
// Rows: channels innermost
// ------------------------------------------------------------------------------------------------

// The three branch buffers of a row chunk (rows [h0, h1) of one image), allocated once per thread
// and zeroed once: a buffer row holds W + 2 pw pixels of gc interleaved channels (the image at
// pixel pw), then zeros up to rows_stride; the pixel padding is never written, so it stays zero.
template <typename acc_t>
struct RowBuffers {
  std::vector<acc_t> buf[3];
  // Per buffer row: 1 while its pixels are all zeros, so that load_rows fills a padding row only
  // when the row held image rows before (whole-image items, 7x7 and 14x14 at batch 8, find the
  // Kx1 branch's 2 ph padding rows still zero from the previous image).
  std::vector<uint8_t> zero[3];
  RowBuffers(const Geometry& g, int64_t rows, bool wanted) {
    for (int b = 0; b < 3 && wanted; ++b) {
      buf[b].assign(row_buffer_len(g, b, rows), acc_t(0));
      zero[b].assign(row_buffer_rows(g, b, rows), 1);
    }
  }
  acc_t* operator[](int b) { return buf[b].data(); }
};

// Fills the branch buffers for output rows [h0, h1) of one image in a single pass over its rows
// h0 - ph .. h1 + ph (rows past the map are zeros), and, when id_dst is given, copies the identity
// channels there for the rows in [h0, h1). Within a row, the branches are gathered one at a time
// (copy_rows: the copy chosen once per branch row; 2%-8% faster than three short copies per pixel),
// except when the identity channels must be copied pixel by pixel (rows that are not dense).
template <typename scalar_t, typename acc_t>
void load_rows(const Geometry& g, const scalar_t* image, const Strides4& s, int64_t h0, int64_t h1,
               RowBuffers<acc_t>& bufs, scalar_t* id_dst, const Strides4& ds) {
  const int64_t gc = g.gc, rows = h1 - h0;
  const int64_t ph_max = std::max(g.pad_h(0), std::max(g.pad_h(1), g.pad_h(2)));
  for (int64_t hi = h0 - ph_max; hi < h0 + rows + ph_max; ++hi) {
    acc_t* dst[3];
    int nb = 0;
    int which[3];
    for (int b = 0; b < 3; ++b) {
      const int64_t ph = g.pad_h(b);
      if (hi < h0 - ph || hi >= h0 + rows + ph) continue;
      const int64_t stride = rows_stride(g, b), r = hi - (h0 - ph);
      acc_t* row = bufs[b] + r * stride;
      if (hi < 0 || hi >= g.H) {  // zero padding rows, unless the buffer row holds zeros already
        if (!bufs.zero[b][r]) {
          std::fill(row + g.pad_w(b) * gc, row + (g.pad_w(b) + g.W) * gc, acc_t(0));
          bufs.zero[b][r] = 1;
        }
        continue;
      }
      bufs.zero[b][r] = 0;
      dst[nb] = row + g.pad_w(b) * gc;
      which[nb++] = b;
    }
    if (hi < 0 || hi >= g.H) continue;
    bool identity = id_dst != nullptr && hi >= h0 && hi < h1 && g.c_id > 0;
    const scalar_t* src = image + hi * s.h;
    if (identity && s.w == g.C && ds.w == g.C) {
      // Dense rows: the whole row in one copy (faster than a copy per pixel); the conv channels it
      // also copies are overwritten by conv_rows of the same work item.
      copy_run(id_dst + hi * ds.h, 1, src, 1, g.W * g.C);
      identity = false;
    }
    if (!identity) {  // each branch's channels of the row's pixels, a branch at a time
      for (int i = 0; i < nb; ++i) copy_rows(dst[i], gc, src + g.branch_start(which[i]), s.w, g.W, gc);
      continue;
    }
    for (int64_t w = 0; w < g.W; ++w) {  // identity wanted, rows not dense: pixel by pixel
      const scalar_t* px = src + w * s.w;
      copy_run(id_dst + hi * ds.h + w * ds.w, 1, px, 1, g.c_id);
      for (int i = 0; i < nb; ++i) copy_run(dst[i] + w * gc, 1, px + g.branch_start(which[i]), 1, gc);
    }
  }
}

// For output rows [h0, h1) of branch b, from its buffer filled by load_rows for the same rows.
// Row tiles outer, column blocks inner: each tile walks its rows forward, the order the hardware
// prefetchers follow (column blocks outer measured ~13% slower at 56x56). acc holds h1 - h0 rows
// of rows_len.
template <typename scalar_t, typename acc_t>
void conv_rows(const Geometry& g, int b, const acc_t* buf, const int64_t* off, const acc_t* wt_row,
               const acc_t* bias_row, int64_t h0, int64_t h1, scalar_t* out_image, const Strides4& os, acc_t* acc) {
  const int64_t gc = g.gc, stride = rows_stride(g, b), len = g.W * gc, blen = rows_len(g);
  constexpr int64_t VL = simd_lanes<acc_t>(), BL = lanes_of<acc_t>(), NV = BL / VL;
  // Channels innermost in y and gc a whole number of half vectors (fp32: 12, 20, 24, ...): each
  // vector of a tile is stored straight into its pixel's channels of the output row, as its two
  // halves where it straddles two pixels (gc = 12: one vector in two). Otherwise the tiles go to the
  // staging rows `acc`, copied out a pixel at a time.
  bool direct = false;
  if constexpr (std::is_same<scalar_t, acc_t>::value)
    direct = os.c == 1 && gc % (VL / 2) == 0 && len % BL == 0;
  const auto tiles = [&](auto rows, int64_t r) {  // a band of `rows` output rows from row r
    constexpr int64_t R = decltype(rows)::value;
    [[maybe_unused]] scalar_t* out_row = out_image + (h0 + r) * os.h + g.branch_start(b) * os.c;
    int64_t m = 0, p = 0;  // the block's first channel and its pixel
    for (int64_t e0 = 0; e0 < len; e0 += BL) {
      const acc_t* in = buf + r * stride + e0;
      if constexpr (std::is_same<scalar_t, acc_t>::value) {
        if (direct && gc % BL == 0) {  // the block inside one pixel
          conv_tile<true, acc_t, R, NV>(in, stride, off, g.taps(b), wt_row + m, row_weights_len(g), bias_row + m,
                                        out_row + p * os.w + m, os.h);
        } else if (direct) {
          int64_t hoff[2 * NV];
          for (int64_t v = 0, mv = m, pv = p; v < 2 * NV; ++v, mv += VL / 2) {
            for (; mv >= gc; mv -= gc) ++pv;
            hoff[v] = pv * os.w + mv;
          }
          conv_tile<true, acc_t, R, NV>(in, stride, off, g.taps(b), wt_row + m, row_weights_len(g), bias_row + m,
                                        out_row, os.h, -1, hoff);
        }
      }
      if (!direct)
        conv_tile<true, acc_t, R, NV>(in, stride, off, g.taps(b), wt_row + m, row_weights_len(g), bias_row + m,
                                      acc + r * blen + e0, blen);
      for (m += BL; m >= gc; m -= gc) ++p;
    }
  };
  int64_t r = 0;
  for (; r + kTileRows <= h1 - h0; r += kTileRows) tiles(std::integral_constant<int64_t, kTileRows>{}, r);
  switch (h1 - h0 - r) {  // the chunk's last rows, without computing rows past it
    case 3: tiles(std::integral_constant<int64_t, 3>{}, r); break;
    case 2: tiles(std::integral_constant<int64_t, 2>{}, r); break;
    case 1: tiles(std::integral_constant<int64_t, 1>{}, r); break;
    default: break;
  }
  if (direct) return;
  for (int64_t h = h0; h < h1; ++h) {
    const acc_t* a = acc + (h - h0) * blen;
    scalar_t* o = out_image + h * os.h + g.branch_start(b) * os.c;
    copy_rows(o, os.w, a, gc, g.W, gc);
  }
}

// Identity and conv channels by row chunks.
template <typename scalar_t>
void forward_rows(const Geometry& g, const at::Tensor& x, const BranchWeights<acc_type<scalar_t>>& bw,
                  at::Tensor& y) {
  using acc_t = acc_type<scalar_t>;
  const Strides4 xs(x), ys(y);
  const scalar_t* xp = static_cast<const scalar_t*>(x.data_ptr());  // untyped: Bf16RoundedFloat too
  scalar_t* yp = static_cast<scalar_t*>(y.data_ptr());
  const RowChunks chunks = RowChunks::forward(g, at::get_num_threads(), sizeof(acc_t));
  const BranchTaps offs(g, [&](int b) { return rows_stride(g, b); }, g.gc);
  at::parallel_for(0, chunks.items(g), 1, [&](int64_t begin, int64_t end) {
    RowBuffers<acc_t> bufs(g, chunks.rows_per_item, true);
    std::vector<acc_t> acc(chunks.rows_per_item * rows_len(g));
    for (int64_t it = begin; it < end; ++it) {
      const int64_t n = it / chunks.items_per_image;
      const int64_t h0 = (it % chunks.items_per_image) * chunks.rows_per_item;
      const int64_t h1 = std::min(g.H, h0 + chunks.rows_per_item);
      const scalar_t* xn = xp + n * xs.n;
      scalar_t* yn = yp + n * ys.n;
      load_rows(g, xn, xs, h0, h1, bufs, yn, ys);
      for (int b = 0; b < 3; ++b) {
        conv_rows(g, b, bufs[b], offs[b], bw.row[b].data(), bw.bias_row[b].data(), h0, h1, yn, ys, acc.data());
      }
    }
  });
}

template <typename scalar_t>
void backward_rows(const Geometry& g, const at::Tensor& gy, const at::Tensor& x,
                   const BranchWeights<acc_type<scalar_t>>& flipped, at::Tensor* gx, acc_type<scalar_t>* part,
                   const PartialLayout& L) {
  using acc_t = acc_type<scalar_t>;
  const BackwardTensors<scalar_t> t(gy, x, gx);
  const Strides4 &gys = t.gys, &xs = t.xs, &gxs = t.gxs;
  const scalar_t* gyp = t.gyp;
  const scalar_t* xp = t.xp;
  scalar_t* gxp = t.gxp;
  // grad_x alone has no sums, so it takes the forward's split (the same loops, flipped weights);
  // the weight grads' partials need a split of the shape alone, and channel blocks when that leaves
  // threads idle.
  const int64_t threads = at::get_num_threads();
  const RowChunks chunks = part ? RowChunks(g) : RowChunks::forward(g, threads, sizeof(acc_t));
  // Items: (row chunk, channel block), blocks innermost. With one block, gs is g; with more, each
  // block copies its share of the identity channels of the chunk's rows, pixel by pixel (a
  // whole-row copy would also write the other blocks' channels).
  const int64_t blocks = part ? backward_channel_blocks(g, chunks.items(g), threads) : 1;
  const Geometry gs = channel_block(g, g.gc / blocks);
  std::vector<BranchWeights<acc_t>> block_wts;
  if (blocks > 1 && gxp)
    for (int64_t j = 0; j < blocks; ++j) block_wts.push_back(flipped.block(g, gs, j * gs.gc));
  const int64_t blen = rows_len(gs), len = gs.W * gs.gc;
  const std::vector<acc_t> zero_bias(row_weights_len(gs), acc_t(0));
  const BranchTaps offs(gs, [&](int b) { return rows_stride(gs, b); }, gs.gc);
  at::parallel_for(0, chunks.items(g) * blocks, 1, [&](int64_t begin, int64_t end) {
    RowBuffers<acc_t> gbufs(gs, chunks.rows_per_item, true), xbufs(gs, chunks.rows_per_item, part != nullptr);
    std::vector<acc_t> acc(chunks.rows_per_item * blen);
    std::vector<acc_t> tap_acc(part ? (gs.max_taps() + 1) * blen : 0);
    for (int64_t it = begin; it < end; ++it) {
      const int64_t item = it / blocks, j = it % blocks, k0 = j * gs.gc;
      const int64_t n = item / chunks.items_per_image;
      const int64_t h0 = (item % chunks.items_per_image) * chunks.rows_per_item;
      const int64_t h1 = std::min(g.H, h0 + chunks.rows_per_item);
      const scalar_t* gyn = gyp + n * gys.n;
      scalar_t* gxn = gxp ? gxp + n * gxs.n : nullptr;
      if (blocks == 1) {
        load_rows(gs, gyn, gys, h0, h1, gbufs, gxn, gxs);
      } else {
        load_rows(gs, gyn + k0 * gys.c, gys, h0, h1, gbufs, static_cast<scalar_t*>(nullptr), gys);
        const int64_t i0 = g.c_id * j / blocks, i1 = g.c_id * (j + 1) / blocks;
        if (gxn && i1 > i0)
          for (int64_t h = h0; h < h1; ++h)
            copy_rows(gxn + h * gxs.h + i0 * gxs.c, gxs.w, gyn + h * gys.h + i0 * gys.c, gys.w, g.W, i1 - i0);
      }
      if (part) load_rows(gs, xp + n * xs.n + k0 * xs.c, xs, h0, h1, xbufs, static_cast<scalar_t*>(nullptr), xs);
      const BranchWeights<acc_t>& wts = block_wts.empty() ? flipped : block_wts[j];
      for (int b = 0; b < 3; ++b) {
        if (gxn) {
          conv_rows(gs, b, gbufs[b], offs[b], wts.row[b].data(), zero_bias.data(), h0, h1, gxn + k0 * gxs.c, gxs,
                    acc.data());
        }
        if (!part) continue;
        const int64_t gc = gs.gc, stride = rows_stride(gs, b), taps = gs.taps(b), rows = h1 - h0;
        constexpr int64_t VL = simd_lanes<acc_t>();
        // grad_out rows of the chunk (inside the padding); past len they read zeros, and the
        // column blocks of 2 vectors end inside rows_len.
        const acc_t* gr = gbufs[b] + gs.pad_h(b) * stride + gs.pad_w(b) * gc;
        // Column blocks outer, groups of taps inner: per-lane sums over the chunk's rows.
        for (int64_t e0 = 0; e0 < len; e0 += 2 * VL) {
          for_tap_groups(taps, [&](auto nt, int64_t t0) {
            constexpr int64_t NT = decltype(nt)::value;
            simd<acc_t> a[NT][2];
            dot_taps_tile<NT, 2>(gr + e0, xbufs[b] + e0, offs[b] + t0, rows, stride, a);
            for (int64_t t = 0; t < NT; ++t)
              for (int64_t v = 0; v < 2; ++v) vstore(tap_acc.data() + (t0 + t) * blen + e0 + v * VL, a[t][v]);
          });
        }
        acc_t* bias_acc = tap_acc.data() + taps * blen;
        // Sums kept in registers, rows (pixels) added in order: one store per vector of sums, where
        // accumulating in memory stored every partial sum and reloaded it for the next row.
        for (int64_t e0 = 0; e0 < len; e0 += VL) {  // up to a vector past len: zeros, inside rows_len
          simd<acc_t> sum{};
          for (int64_t r = 0; r < rows; ++r) sum += vload(gr + r * stride + e0);
          vstore(bias_acc + e0, sum);
        }
        // The chunk's partials, this block's channels.
        acc_t* slot = part + item * L.item_size() + k0;
        for (int64_t t = 0; t <= taps; ++t) {
          acc_t* dst = slot + L.at(b, t == taps ? L.slots - 1 : t, 0);
          const acc_t* ta = tap_acc.data() + t * blen;
          const auto channel_sums = [&](int64_t c0) {  // channels c0 .. c0 + VL - 1, pixels in order
            simd<acc_t> sum{};
            for (int64_t w = 0; w < gs.W; ++w) sum += vload(ta + w * gc + c0);
            vstore(dst + c0, sum);
          };
          int64_t c0 = 0;
          for (; c0 + VL <= gc; c0 += VL) channel_sums(c0);
          if (c0 < gc && gc >= VL) {  // the last vector overlapping the previous one: the same sums again
            channel_sums(gc - VL);
            c0 = gc;
          }
          for (; c0 < gc; ++c0) {
            acc_t sum = 0;
            for (int64_t w = 0; w < gs.W; ++w) sum += ta[w * gc + c0];
            dst[c0] = sum;
          }
        }
      }
    }
  });
}

// ------------------------------------------------------------------------------------------------
// Entry points
// ------------------------------------------------------------------------------------------------

template <typename scalar_t>
void forward(const Geometry& g, Path path, const at::Tensor& x, const BranchWeights<acc_type<scalar_t>>& bw,
             at::Tensor& y) {
  if (path == Path::kChannelsLast) return forward_rows<scalar_t>(g, x, bw, y);
  forward_planes<scalar_t>(g, x, bw, y);
}

template <typename scalar_t>
void backward(const Geometry& g, Path path, const at::Tensor& gy, const at::Tensor& x,
              const BranchWeights<acc_type<scalar_t>>& flipped, at::Tensor* gx, acc_type<scalar_t>* part,
              const PartialLayout& L) {
  if (path == Path::kChannelsLast) return backward_rows<scalar_t>(g, gy, x, flipped, gx, part, L);
  backward_planes<scalar_t>(g, gy, x, flipped, gx, part, L);
}

}  // namespace KERNEL_NS
}  // namespace inception_dwconv
