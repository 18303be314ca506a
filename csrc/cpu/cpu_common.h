// Types shared by the CPU dispatcher glue and the kernel loops (kernels.h).
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "../common.h"

namespace inception_dwconv {

// Strides of a 4-D tensor in (n, c, h, w) order.
struct Strides4 {
  int64_t n, c, h, w;
  explicit Strides4(const at::Tensor& t) : n(t.stride(0)), c(t.stride(1)), h(t.stride(2)), w(t.stride(3)) {}
};

// Buffers are padded to whole multiples of kBlock values, so that a register block of the kernels'
// inner loops (kernels.h: 64 floats at most) never reads past them.
constexpr int64_t kBlock = 64;
// Output rows per register tile of the channels_last loops (kernels.h, conv_rows).
constexpr int64_t kTileRows = 4;
inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Flat plane buffers (kernels.h, planes). A plane of branch b is stored as H rows of
// S = W + pw values (the row, then pw zeros), after pw leading zeros and ph zero rows, and before
// ph zero rows and a zero tail. The pw zeros between two rows are the right padding of one row and
// the left padding of the next, so output (h, w) is flat position p = h * S + w and tap (i, j)
// reads buffer[p + i * d * S + j * d]: one long vector loop over the whole plane per tap, whatever
// the map width. Positions with w >= W are computed and dropped.
inline int64_t flat_stride(const Geometry& g, int b) { return g.W + g.pad_w(b); }
// Flat output positions per plane, rounded up to whole kBlock blocks.
inline int64_t flat_len(const Geometry& g, int b) { return round_up(g.H * flat_stride(g, b), kBlock); }
// Buffer index of x(0, 0).
inline int64_t flat_origin(const Geometry& g, int b) { return g.pad_w(b) + g.pad_h(b) * flat_stride(g, b); }
// Every tap of every position below flat_len reads inside this size, and so does every tap of the
// row tiles of conv_plane (kernels.h, conv_rows_direct: up to a vector past row H - 1's end).
inline int64_t flat_buffer(const Geometry& g, int b) { return flat_len(g, b) + 2 * flat_origin(g, b) + kBlock; }
inline int64_t flat_len_max(const Geometry& g) {
  return std::max(flat_len(g, 0), std::max(flat_len(g, 1), flat_len(g, 2)));
}

// Row buffers (kernels.h, rows): a row is W pixels x gc channels (rows_len values, rounded up to
// whole blocks) plus pw pixels of zeros on each side.
inline int64_t rows_len(const Geometry& g) { return round_up(g.W * g.gc, kBlock); }
// Values per tap of BranchWeights::row: a block of kBlock values starting at any channel.
inline int64_t row_weights_len(const Geometry& g) { return g.gc + kBlock; }
inline int64_t rows_stride(const Geometry& g, int b) { return rows_len(g) + 2 * g.pad_w(b) * g.gc; }
// Buffer rows of branch b for a chunk of `rows` output rows (ph rows of halo above and below), and
// the values they hold.
inline int64_t row_buffer_rows(const Geometry& g, int b, int64_t rows) { return rows + 2 * g.pad_h(b); }
inline int64_t row_buffer_len(const Geometry& g, int b, int64_t rows) {
  return row_buffer_rows(g, b, rows) * rows_stride(g, b);
}

// Per-branch weights in the accumulation type, prepared once per call.
//  plane[b]:  (gc, kh, kw), optionally flipped in both spatial axes (grad_x is a correlation of
//             grad_out with the flipped kernel);
//  row[b]:    (kh * kw, row_weights_len): for each tap, the gc channel weights repeated along an
//             interleaved row (value m is channel m % gc), long enough that the vectors of any
//             64-byte block of a row, which start at channel e0 % gc, read them from offset e0 % gc:
//             the channels_last loops' weights then fit in L1 whatever the map width;
//  bias[b], bias_row[b]: (gc) and (row_weights_len), the same way; zero where there is no bias.
template <typename acc_t>
struct BranchWeights {
  std::vector<acc_t> plane[3], row[3], bias[3], bias_row[3];

  BranchWeights(const Geometry& g, const at::Tensor* const ws[3], const std::optional<at::Tensor>* const bs[3],
                bool flip, bool want_row) {
    const auto acc_scalar = c10::CppTypeToScalarType<acc_t>::value;
    for (int b = 0; b < 3; ++b) {
      const at::Tensor w = ws[b]->to(acc_scalar).contiguous();  // no copy for a dense acc_t weight
      const acc_t* wp = w.data_ptr<acc_t>();
      const int64_t taps = g.taps(b);
      plane[b].assign(wp, wp + g.gc * taps);
      // Flipping both spatial axes of a row-major (kh, kw) kernel reverses its taps.
      if (flip)
        for (int64_t k = 0; k < g.gc; ++k) std::reverse(plane[b].begin() + k * taps, plane[b].begin() + (k + 1) * taps);
      bias[b].assign(g.gc, acc_t(0));
      if (bs != nullptr && bs[b]->has_value() && (*bs[b])->defined()) {
        at::Tensor bb = (*bs[b])->to(acc_scalar).contiguous();
        std::copy(bb.data_ptr<acc_t>(), bb.data_ptr<acc_t>() + g.gc, bias[b].begin());
      }
    }
    if (want_row) make_rows(g);
  }
  // The weights of channels [k0, k0 + gs.gc) of each branch, rows included, for the channel block gs
  // (channel_block below): the same values, the rows repeating over the block's channels.
  BranchWeights block(const Geometry& g, const Geometry& gs, int64_t k0) const {
    BranchWeights w;
    for (int b = 0; b < 3; ++b) {
      w.plane[b].assign(plane[b].begin() + k0 * g.taps(b), plane[b].begin() + (k0 + gs.gc) * g.taps(b));
      w.bias[b].assign(bias[b].begin() + k0, bias[b].begin() + k0 + gs.gc);
    }
    w.make_rows(gs);
    return w;
  }
  // Every weight and bias rounded to bf16 (autocast's casts of fp32 parameters); defined after
  // Bf16RoundedFloat below.
  void round_to_bf16();

 private:
  BranchWeights() = default;
  void make_rows(const Geometry& g) {  // row and bias_row from plane and bias
    const int64_t len = row_weights_len(g);
    for (int b = 0; b < 3; ++b) {
      const int64_t taps = g.taps(b);
      row[b].resize(taps * len);
      bias_row[b].resize(len);
      for (int64_t m = 0; m < len; ++m) {
        for (int64_t t = 0; t < taps; ++t) row[b][t * len + m] = plane[b][(m % g.gc) * taps + t];
        bias_row[b][m] = bias[b][m % g.gc];
      }
    }
  }
};

// fp32 storage read and written at bf16 precision: the eager module under CPU autocast to bf16 (each
// conv rounds its input slice and weights to bf16 and its output back, cat promotes to fp32, the
// identity channels stay exact; backward likewise with grad_out and the gradients), in one pass. Converting to or from float
// rounds to nearest even as c10::BFloat16 does (NaN to NaN); copying one to another moves the fp32
// bits unchanged, which is what the identity channels get.
struct Bf16RoundedFloat {
  float v;
  Bf16RoundedFloat() = default;
  Bf16RoundedFloat(float f) : v(round(f)) {}  // NOLINT: implicit, like the conversions of c10's types
  operator float() const { return round(v); }
  static float round(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof(u));
    u = f != f ? UINT32_C(0x7FC00000) : (u + ((u >> 16) & 1) + UINT32_C(0x7FFF)) & UINT32_C(0xFFFF0000);
    float r;
    std::memcpy(&r, &u, sizeof(r));
    return r;
  }
};

template <typename acc_t>
void BranchWeights<acc_t>::round_to_bf16() {
  for (int b = 0; b < 3; ++b)
    for (auto* v : {&plane[b], &row[b], &bias[b], &bias_row[b]})
      for (acc_t& e : *v) e = static_cast<acc_t>(Bf16RoundedFloat::round(static_cast<float>(e)));
}

// Weight-grad partials: one block per image (planes) or row chunk (rows; its channel blocks write
// disjoint channels of it), laid out (branch, tap or bias, channel), taps padded to max_taps + 1
// (the last slot is the bias). Reduced over the blocks in index order.
struct PartialLayout {
  int64_t gc, slots;  // slots = max_taps + 1
  int64_t item_size() const { return 3 * slots * gc; }
  int64_t at(int b, int64_t t, int64_t k) const { return (b * slots + t) * gc + k; }
};

// Which loops run: channels innermost (rows: channels interleaved in the row buffers, identity
// copied per pixel), or any other strides (flat planes, identity copied as planes).
enum class Path { kChannelsLast, kPlanes };

inline Path choose_path(bool channels_last) { return channels_last ? Path::kChannelsLast : Path::kPlanes; }

// How the row kernels split each image's rows into work items: a function of the shape
// only (never of the thread count), so weight-grad partials and their sum are reproducible.
struct RowChunks {
  int64_t rows_per_item = 1, items_per_image = 0;
  explicit RowChunks(const Geometry& g) {
    if (g.H == 0) return;
    // About 16 items in all, of at least 8 rows before even_out (which may leave 7): long chunks keep
    // the rows read twice (the halo of the Kx1 branch, ph above and below each chunk) few; load_rows
    // reads each row once per chunk.
    const int64_t want_per_image = std::max<int64_t>(1, (16 + g.N - 1) / std::max<int64_t>(g.N, 1));
    rows_per_item = std::max<int64_t>(std::min<int64_t>(g.H, 8), (g.H + want_per_image - 1) / want_per_image);
    even_out(g);
  }
  int64_t items(const Geometry& g) const { return g.N * items_per_image; }
  // The same number of chunks, of (nearly) equal rows: 14 rows as 7 + 7, not 8 + 6; 28 as four of 7,
  // not 8 + 8 + 8 + 4, so that threads given whole chunks finish together.
  void even_out(const Geometry& g) {
    items_per_image = (g.H + rows_per_item - 1) / rows_per_item;
    rows_per_item = (g.H + items_per_image - 1) / items_per_image;
    items_per_image = (g.H + rows_per_item - 1) / rows_per_item;
  }

  // The forward's split, which no sum depends on (an output's taps run in the same order in any
  // chunk), so it may follow the thread count: whole images when there are at least 4 per thread and
  // an image's three branch buffers take at most 384 KB (the Kx1 branch's halo rows then gathered
  // once, not once per chunk: 8x384x14x14 7% and 8x192x28x28 4% faster forward; at 8x96x56x56, 516
  // KB of buffers, 10% slower), else the split above.
  static RowChunks forward(const Geometry& g, int64_t threads, int64_t value_bytes) {
    RowChunks c(g);
    int64_t bytes = 0;
    for (int b = 0; b < 3; ++b) bytes += row_buffer_len(g, b, g.H) * value_bytes;
    if (g.H > 0 && g.N >= 4 * threads && bytes <= 384 * 1024) {
      c.rows_per_item = g.H;
      c.items_per_image = 1;
    }
    if (g.H > 0 && g.N > 0 && c.items(g) < threads) {
      // Fewer items than threads (batch 1 at 7x7 on 2 threads; small batches on many cores): shorter chunks,
      // about one item per thread. The halo rows they gather again are cheaper than idle threads:
      // 1x768x7x7 on 2 threads, one item: 26 us (the same as on one thread), two: 23 us.
      const int64_t want_per_image = (threads + g.N - 1) / g.N;
      c.rows_per_item = (g.H + want_per_image - 1) / want_per_image;
      c.even_out(g);
    }
    return c;
  }
};

// A channel block of the row loops: channels [k0, k0 + width) of each branch, seen as a geometry of
// gc = width whose branches still start g.gc channels apart; the caller offsets its tensors'
// pointers by k0 channels. The row buffers, row weights and loops of a block then hold only its
// channels.
inline Geometry channel_block(const Geometry& g, int64_t width) {
  Geometry gs = g;
  gs.gc = width;  // branch_step stays g's
  return gs;
}

// How many equal channel blocks the backward's row items are cut into: 1, unless there are fewer
// row items than threads (at batch 1, 7x7 has 1 item and 14x14 2; small batches on many cores),
// then up to one per idle thread, each a whole number of 8 channels wide. Each channel's
// weight-grad sums run over the same pixels in the same order in any block, so the blocks may
// follow the thread count: the results have the same bits for any.
inline int64_t backward_channel_blocks(const Geometry& g, int64_t items, int64_t threads) {
  if (items <= 0 || items >= threads) return 1;
  const int64_t want = (threads + items - 1) / items;
  for (int64_t blocks = std::min(want, g.gc / 8); blocks > 1; --blocks)
    if (g.gc % blocks == 0 && (g.gc / blocks) % 8 == 0) return blocks;
  return 1;
}

// x86-64 builds also compile the kernels for AVX2 + FMA, picked at run time (kernels_avx2.cpp).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define INCEPTION_DWCONV_X86 1
#endif
bool cpu_has_avx2_kernels();

// The kernel entry points, compiled once per instruction set (kernels_generic.cpp, kernels_avx2.cpp).
#define INCEPTION_DWCONV_DECLARE_CPU_KERNELS(NS)                                                              \
  namespace NS {                                                                                              \
  template <typename scalar_t>                                                                                \
  void forward(const Geometry& g, Path path, const at::Tensor& x,                                    \
               const BranchWeights<at::opmath_type<scalar_t>>& bw, at::Tensor& y);                            \
  template <typename scalar_t>                                                                                \
  void backward(const Geometry& g, Path path, const at::Tensor& gy, const at::Tensor& x,             \
                const BranchWeights<at::opmath_type<scalar_t>>& flipped, at::Tensor* gx,                      \
                at::opmath_type<scalar_t>* part, const PartialLayout& L);                                     \
  }

INCEPTION_DWCONV_DECLARE_CPU_KERNELS(generic)
#if defined(INCEPTION_DWCONV_X86)
INCEPTION_DWCONV_DECLARE_CPU_KERNELS(avx2)
#endif

#define INCEPTION_DWCONV_INSTANTIATE_CPU_KERNELS(T)                                                          \
  template void forward<T>(const Geometry&, Path, const at::Tensor&, const BranchWeights<at::opmath_type<T>>&, \
                           at::Tensor&);                                                                     \
  template void backward<T>(const Geometry&, Path, const at::Tensor&, const at::Tensor&,                       \
                            const BranchWeights<at::opmath_type<T>>&, at::Tensor*, at::opmath_type<T>*,        \
                            const PartialLayout&);

}  // namespace inception_dwconv

// The kernels accumulate a Bf16RoundedFloat tensor in float.
namespace at {
template <>
struct OpMathType<inception_dwconv::Bf16RoundedFloat> {
  using type = float;
};
}  // namespace at
