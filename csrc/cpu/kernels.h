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
// come from the same sweep. Partials are per work item, and work items depend on the shape only,
// so the reduced weight grads have the same bits for any thread count.
//
// Both layouts run the same scheme: the rows a work item needs are converted once into a zero-padded
// buffer in the accumulation type, and every tap is then one flat multiply-add loop over a row of
// that buffer, with no bounds checks (the padding is the zero padding of the convolution).
//  * planes (NCHW, and any strides that are not channels-innermost): one (n, c) plane per item;
//    a row holds W values and the tap weight is a scalar;
//  * channels_last: one (n, row chunk) per item, one branch at a time; a row holds W pixels x gc
//    channels, interleaved, and the tap weight is a vector tiled across the W pixels.

namespace inception_dwconv {
namespace KERNEL_NS {

template <typename scalar_t>
using acc_type = at::opmath_type<scalar_t>;

// ------------------------------------------------------------------------------------------------
// Planes
// ------------------------------------------------------------------------------------------------

// Loads plane t(n, c) into buf, a (H + 2 ph) x (W + 2 pw) buffer, zero outside the map.
template <typename scalar_t, typename acc_t>
void load_plane(const scalar_t* plane, const Strides4& s, int64_t H, int64_t W, int64_t ph, int64_t pw, acc_t* buf) {
  const int64_t Wp = W + 2 * pw;
  std::fill(buf, buf + (H + 2 * ph) * Wp, acc_t(0));
  for (int64_t h = 0; h < H; ++h) {
    const scalar_t* src = plane + h * s.h;
    acc_t* dst = buf + (h + ph) * Wp + pw;
    if (s.w == 1) {
      for (int64_t w = 0; w < W; ++w) dst[w] = static_cast<acc_t>(src[w]);
    } else {
      for (int64_t w = 0; w < W; ++w) dst[w] = static_cast<acc_t>(src[w * s.w]);
    }
  }
}

template <typename scalar_t>
void copy_plane(const scalar_t* src, const Strides4& ss, scalar_t* dst, const Strides4& ds, int64_t H, int64_t W) {
  for (int64_t h = 0; h < H; ++h) {
    const scalar_t* s = src + h * ss.h;
    scalar_t* d = dst + h * ds.h;
    if (ss.w == 1 && ds.w == 1) {
      std::memcpy(d, s, sizeof(scalar_t) * W);
    } else {
      for (int64_t w = 0; w < W; ++w) d[w * ds.w] = s[w * ss.w];
    }
  }
}

// out[h][w] = bias + sum_{i,j} wt[i][j] * buf[h + i d][w + j d]   (buf zero-padded, row stride Wp)
template <typename scalar_t, typename acc_t>
void conv_plane(const acc_t* buf, int64_t H, int64_t W, int64_t Wp, const acc_t* wt, int64_t kh, int64_t kw, int64_t d,
                acc_t bias, scalar_t* out, const Strides4& os, acc_t* row) {
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t w = 0; w < W; ++w) row[w] = bias;
    for (int64_t i = 0; i < kh; ++i) {
      const acc_t* in = buf + (h + i * d) * Wp;
      for (int64_t j = 0; j < kw; ++j) {
        const acc_t wv = wt[i * kw + j];
        const acc_t* src = in + j * d;
        for (int64_t w = 0; w < W; ++w) row[w] += wv * src[w];
      }
    }
    scalar_t* dst = out + h * os.h;
    if (os.w == 1) {
      for (int64_t w = 0; w < W; ++w) dst[w] = static_cast<scalar_t>(row[w]);
    } else {
      for (int64_t w = 0; w < W; ++w) dst[w * os.w] = static_cast<scalar_t>(row[w]);
    }
  }
}

inline int64_t max_plane_buffer(const Geometry& g) {
  int64_t m = 0;
  for (int b = 0; b < 3; ++b) m = std::max(m, (g.H + 2 * g.pad_h(b)) * (g.W + 2 * g.pad_w(b)));
  return m;
}

template <typename scalar_t>
void forward_planes(const Geometry& g, const at::Tensor& x, const BranchWeights<acc_type<scalar_t>>& bw, at::Tensor& y) {
  using acc_t = acc_type<scalar_t>;
  const Strides4 xs(x), ys(y);
  const scalar_t* xp = x.data_ptr<scalar_t>();
  scalar_t* yp = y.data_ptr<scalar_t>();
  const int64_t buf_size = max_plane_buffer(g);
  const int64_t conv_c = 3 * g.gc;
  at::parallel_for(0, g.N * conv_c, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf(buf_size), row(g.W);
    for (int64_t p = begin; p < end; ++p) {
      const int64_t n = p / conv_c, c = g.c_id + p % conv_c;
      const scalar_t* src = xp + n * xs.n + c * xs.c;
      scalar_t* dst = yp + n * ys.n + c * ys.c;
      const int b = static_cast<int>((c - g.c_id) / g.gc);
      const int64_t k = (c - g.c_id) % g.gc;
      load_plane(src, xs, g.H, g.W, g.pad_h(b), g.pad_w(b), buf.data());
      conv_plane(buf.data(), g.H, g.W, g.W + 2 * g.pad_w(b), bw.plane[b].data() + k * g.taps(b), g.kh[b], g.kw[b],
                 g.dilation, bw.bias[b][k], dst, ys, row.data());
    }
  });
}

template <typename scalar_t>
void backward_planes(const Geometry& g, const at::Tensor& gy, const at::Tensor& x,
                     const BranchWeights<acc_type<scalar_t>>& flipped, at::Tensor* gx, acc_type<scalar_t>* part,
                     const PartialLayout& L) {
  using acc_t = acc_type<scalar_t>;
  const Strides4 gys(gy), xs(x);
  const scalar_t* gyp = gy.data_ptr<scalar_t>();
  const scalar_t* xp = x.data_ptr<scalar_t>();
  scalar_t* gxp = gx ? gx->data_ptr<scalar_t>() : nullptr;
  const Strides4 gxs = gx ? Strides4(*gx) : gys;
  const int64_t buf_size = max_plane_buffer(g);
  // Work item (n, c); its partials go to item n, channel slot of c: disjoint across items.
  const int64_t conv_c = 3 * g.gc;
  at::parallel_for(0, g.N * conv_c, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> gbuf(buf_size), xbuf(part ? buf_size : 0), row(g.W);
    for (int64_t p = begin; p < end; ++p) {
      const int64_t n = p / conv_c, c = g.c_id + p % conv_c;
      const scalar_t* gsrc = gyp + n * gys.n + c * gys.c;
      const int b = static_cast<int>((c - g.c_id) / g.gc);
      const int64_t k = (c - g.c_id) % g.gc;
      const int64_t ph = g.pad_h(b), pw = g.pad_w(b), Wp = g.W + 2 * pw, d = g.dilation;
      load_plane(gsrc, gys, g.H, g.W, ph, pw, gbuf.data());
      if (gxp) {
        conv_plane(gbuf.data(), g.H, g.W, Wp, flipped.plane[b].data() + k * g.taps(b), g.kh[b], g.kw[b], d, acc_t(0),
                   gxp + n * gxs.n + c * gxs.c, gxs, row.data());
      }
      if (!part) continue;
      load_plane(xp + n * xs.n + c * xs.c, xs, g.H, g.W, ph, pw, xbuf.data());
      acc_t* slot = part + n * L.item_size();
      const acc_t* gin = gbuf.data() + ph * Wp + pw;  // grad_out rows inside the padding
      // Each tap: column sums over the map first (a vectorizable loop), then over the row.
      for (int64_t t = 0; t <= g.taps(b); ++t) {
        const bool is_bias = t == g.taps(b);
        const int64_t i = is_bias ? 0 : t / g.kw[b], j = is_bias ? 0 : t % g.kw[b];
        for (int64_t w = 0; w < g.W; ++w) row[w] = 0;
        for (int64_t h = 0; h < g.H; ++h) {
          const acc_t* gr = gin + h * Wp;
          if (is_bias) {
            for (int64_t w = 0; w < g.W; ++w) row[w] += gr[w];
          } else {
            const acc_t* xr = xbuf.data() + (h + i * d) * Wp + j * d;
            for (int64_t w = 0; w < g.W; ++w) row[w] += gr[w] * xr[w];
          }
        }
        acc_t s = 0;
        for (int64_t w = 0; w < g.W; ++w) s += row[w];
        slot[L.at(b, is_bias ? L.slots - 1 : t, k)] = s;
      }
    }
  });
}

// ------------------------------------------------------------------------------------------------
// Rows: channels_last, and small maps of any layout
// ------------------------------------------------------------------------------------------------
// A plane row of a small map is too short for the vector unit (7 values at 7x7); interleaving the
// gc channels of a branch makes every tap a loop over W * gc values instead.


// Loads rows [h0 - ph, h1 + ph) of branch b's channels of image n into buf, laid out
// (row, W + 2 pw pixels, gc channels), zero outside the map. Any strides (fastest with channels
// innermost).
template <typename scalar_t, typename acc_t>
void load_rows_cl(const Geometry& g, int b, const scalar_t* image, const Strides4& s, int64_t h0, int64_t h1, acc_t* buf) {
  const int64_t gc = g.gc, ph = g.pad_h(b), pw = g.pad_w(b), row_len = (g.W + 2 * pw) * gc;
  const scalar_t* base = image + g.branch_start(b) * s.c;
  for (int64_t r = 0, hi = h0 - ph; hi < h1 + ph; ++r, ++hi) {
    acc_t* dst = buf + r * row_len;
    if (hi < 0 || hi >= g.H) {
      std::fill(dst, dst + row_len, acc_t(0));
      continue;
    }
    std::fill(dst, dst + pw * gc, acc_t(0));
    std::fill(dst + (pw + g.W) * gc, dst + row_len, acc_t(0));
    for (int64_t w = 0; w < g.W; ++w) {
      const scalar_t* src = base + hi * s.h + w * s.w;
      acc_t* d = dst + (pw + w) * gc;
      if (s.c == 1) {
        for (int64_t k = 0; k < gc; ++k) d[k] = static_cast<acc_t>(src[k]);
      } else {
        for (int64_t k = 0; k < gc; ++k) d[k] = static_cast<acc_t>(src[k * s.c]);
      }
    }
  }
}

// For output rows [h0, h1) of branch b: acc = bias + sum over taps of wexp[tap] * shifted buffer row,
// each tap one flat loop over W * gc values; then written into the output's branch channels.
template <typename scalar_t, typename acc_t>
void conv_rows_cl(const Geometry& g, int b, const acc_t* buf, const acc_t* wexp, const acc_t* bias_exp, int64_t h0,
                  int64_t h1, scalar_t* out_image, const Strides4& os, acc_t* acc) {
  const int64_t gc = g.gc, d = g.dilation, pw = g.pad_w(b), row_len = (g.W + 2 * pw) * gc, len = g.W * gc;
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t e = 0; e < len; ++e) acc[e] = bias_exp[e];
    for (int64_t i = 0; i < g.kh[b]; ++i) {
      const acc_t* in = buf + (h - h0 + i * d) * row_len;
      for (int64_t j = 0; j < g.kw[b]; ++j) {
        const acc_t* wv = wexp + (i * g.kw[b] + j) * len;
        const acc_t* src = in + j * d * gc;
        for (int64_t e = 0; e < len; ++e) acc[e] += wv[e] * src[e];
      }
    }
    scalar_t* o = out_image + h * os.h + g.branch_start(b) * os.c;
    if (os.c == 1) {
      for (int64_t w = 0; w < g.W; ++w)
        for (int64_t k = 0; k < gc; ++k) o[w * os.w + k] = static_cast<scalar_t>(acc[w * gc + k]);
    } else {
      for (int64_t k = 0; k < gc; ++k)
        for (int64_t w = 0; w < g.W; ++w) o[w * os.w + k * os.c] = static_cast<scalar_t>(acc[w * gc + k]);
    }
  }
}

template <typename scalar_t>
void copy_identity_cl(const Geometry& g, const scalar_t* src_image, const Strides4& ss, scalar_t* dst_image,
                      const Strides4& ds, int64_t h0, int64_t h1) {
  if (g.c_id == 0) return;
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t w = 0; w < g.W; ++w) {
      std::memcpy(dst_image + h * ds.h + w * ds.w, src_image + h * ss.h + w * ss.w, sizeof(scalar_t) * g.c_id);
    }
  }
}

inline int64_t max_rows_buffer_cl(const Geometry& g, int64_t rows) {
  int64_t m = 0;
  for (int b = 0; b < 3; ++b) m = std::max(m, (rows + 2 * g.pad_h(b)) * (g.W + 2 * g.pad_w(b)) * g.gc);
  return m;
}

// Conv channels (and, with channels innermost, the identity channels) by row chunks.
template <typename scalar_t>
void forward_rows(const Geometry& g, bool identity_too, const at::Tensor& x, const BranchWeights<acc_type<scalar_t>>& bw,
                  at::Tensor& y) {
  using acc_t = acc_type<scalar_t>;
  const Strides4 xs(x), ys(y);
  const scalar_t* xp = x.data_ptr<scalar_t>();
  scalar_t* yp = y.data_ptr<scalar_t>();
  const RowChunks chunks(g);
  const int64_t buf_size = max_rows_buffer_cl(g, chunks.rows_per_item);
  at::parallel_for(0, chunks.items(g), 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf(buf_size), acc(g.W * g.gc);
    for (int64_t it = begin; it < end; ++it) {
      const int64_t n = it / chunks.items_per_image;
      const int64_t h0 = (it % chunks.items_per_image) * chunks.rows_per_item;
      const int64_t h1 = std::min(g.H, h0 + chunks.rows_per_item);
      const scalar_t* xn = xp + n * xs.n;
      scalar_t* yn = yp + n * ys.n;
      if (identity_too) copy_identity_cl(g, xn, xs, yn, ys, h0, h1);
      for (int b = 0; b < 3; ++b) {
        load_rows_cl(g, b, xn, xs, h0, h1, buf.data());
        conv_rows_cl(g, b, buf.data(), bw.cl_tiled[b].data(), bw.bias_tiled[b].data(), h0, h1, yn, ys, acc.data());
      }
    }
  });
}

template <typename scalar_t>
void backward_rows(const Geometry& g, bool identity_too, const at::Tensor& gy, const at::Tensor& x,
                   const BranchWeights<acc_type<scalar_t>>& flipped, at::Tensor* gx, acc_type<scalar_t>* part,
                   const PartialLayout& L) {
  using acc_t = acc_type<scalar_t>;
  const Strides4 gys(gy), xs(x);
  const scalar_t* gyp = gy.data_ptr<scalar_t>();
  const scalar_t* xp = x.data_ptr<scalar_t>();
  scalar_t* gxp = gx ? gx->data_ptr<scalar_t>() : nullptr;
  const Strides4 gxs = gx ? Strides4(*gx) : gys;
  const RowChunks chunks(g);
  const int64_t buf_size = max_rows_buffer_cl(g, chunks.rows_per_item), len = g.W * g.gc;
  const std::vector<acc_t> zero_bias(len, acc_t(0));
  at::parallel_for(0, chunks.items(g), 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> gbuf(buf_size), xbuf(part ? buf_size : 0), acc(len);
    std::vector<acc_t> tap_acc(part ? (g.max_taps() + 1) * len : 0);
    for (int64_t it = begin; it < end; ++it) {
      const int64_t n = it / chunks.items_per_image;
      const int64_t h0 = (it % chunks.items_per_image) * chunks.rows_per_item;
      const int64_t h1 = std::min(g.H, h0 + chunks.rows_per_item);
      const scalar_t* gyn = gyp + n * gys.n;
      if (gxp && identity_too) copy_identity_cl(g, gyn, gys, gxp + n * gxs.n, gxs, h0, h1);
      for (int b = 0; b < 3; ++b) {
        load_rows_cl(g, b, gyn, gys, h0, h1, gbuf.data());
        if (gxp) {
          conv_rows_cl(g, b, gbuf.data(), flipped.cl_tiled[b].data(), zero_bias.data(), h0, h1, gxp + n * gxs.n, gxs,
                       acc.data());
        }
        if (!part) continue;
        load_rows_cl(g, b, xp + n * xs.n, xs, h0, h1, xbuf.data());
        const int64_t ph = g.pad_h(b), pw = g.pad_w(b), d = g.dilation, gc = g.gc;
        const int64_t row_len = (g.W + 2 * pw) * gc, taps = g.taps(b);
        std::fill(tap_acc.begin(), tap_acc.begin() + (taps + 1) * len, acc_t(0));
        for (int64_t h = h0; h < h1; ++h) {
          const acc_t* gr = gbuf.data() + (h - h0 + ph) * row_len + pw * gc;  // grad_out row, unpadded
          acc_t* bias_acc = tap_acc.data() + taps * len;
          for (int64_t e = 0; e < len; ++e) bias_acc[e] += gr[e];
          for (int64_t i = 0; i < g.kh[b]; ++i) {
            const acc_t* xr = xbuf.data() + (h - h0 + i * d) * row_len;
            for (int64_t j = 0; j < g.kw[b]; ++j) {
              acc_t* ta = tap_acc.data() + (i * g.kw[b] + j) * len;
              const acc_t* src = xr + j * d * gc;
              for (int64_t e = 0; e < len; ++e) ta[e] += gr[e] * src[e];
            }
          }
        }
        acc_t* slot = part + it * L.item_size();
        for (int64_t t = 0; t <= taps; ++t) {
          acc_t* dst = slot + L.at(b, t == taps ? L.slots - 1 : t, 0);
          const acc_t* ta = tap_acc.data() + t * len;
          for (int64_t k = 0; k < gc; ++k) dst[k] = 0;
          for (int64_t w = 0; w < g.W; ++w) {
            for (int64_t k = 0; k < gc; ++k) dst[k] += ta[w * gc + k];
          }
        }
      }
    }
  });
}

// ------------------------------------------------------------------------------------------------
// Identity channels of a layout without channels innermost, and the entry points
// ------------------------------------------------------------------------------------------------

// dst[:, :c_id] = src[:, :c_id]: one memcpy per image when both blocks are dense, else plane rows.
template <typename scalar_t>
void copy_identity_planes(const Geometry& g, const at::Tensor& src, const at::Tensor& dst) {
  if (g.c_id == 0) return;
  const Strides4 ss(src), ds(dst);
  const scalar_t* sp = src.data_ptr<scalar_t>();
  scalar_t* dp = dst.data_ptr<scalar_t>();
  const auto dense = [&](const Strides4& s) { return s.w == 1 && s.h == g.W && s.c == g.H * g.W; };
  const bool block = dense(ss) && dense(ds);
  at::parallel_for(0, g.N * g.c_id, block ? g.c_id : 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end;) {
      const int64_t n = p / g.c_id, c = p % g.c_id;
      if (block) {  // every plane of this image in [begin, end) at once
        const int64_t count = std::min(end - p, g.c_id - c);
        std::memcpy(dp + n * ds.n + c * ds.c, sp + n * ss.n + c * ss.c, sizeof(scalar_t) * count * g.H * g.W);
        p += count;
      } else {
        copy_plane(sp + n * ss.n + c * ss.c, ss, dp + n * ds.n + c * ds.c, ds, g.H, g.W);
        ++p;
      }
    }
  });
}

template <typename scalar_t>
void forward(const Geometry& g, Path path, const at::Tensor& x, const BranchWeights<acc_type<scalar_t>>& bw,
             at::Tensor& y) {
  if (path == Path::kChannelsLast) return forward_rows<scalar_t>(g, /*identity_too=*/true, x, bw, y);
  copy_identity_planes<scalar_t>(g, x, y);
  if (path == Path::kRows) {
    forward_rows<scalar_t>(g, false, x, bw, y);
  } else {
    forward_planes<scalar_t>(g, x, bw, y);
  }
}

template <typename scalar_t>
void backward(const Geometry& g, Path path, const at::Tensor& gy, const at::Tensor& x,
              const BranchWeights<acc_type<scalar_t>>& flipped, at::Tensor* gx, acc_type<scalar_t>* part,
              const PartialLayout& L) {
  if (path == Path::kChannelsLast) return backward_rows<scalar_t>(g, true, gy, x, flipped, gx, part, L);
  if (gx) copy_identity_planes<scalar_t>(g, gy, *gx);
  if (path == Path::kRows) {
    backward_rows<scalar_t>(g, false, gy, x, flipped, gx, part, L);
  } else {
    backward_planes<scalar_t>(g, gy, x, flipped, gx, part, L);
  }
}

}  // namespace KERNEL_NS
}  // namespace inception_dwconv
