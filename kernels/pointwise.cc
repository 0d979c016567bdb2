// 1x1 convolution on NCHW float32 tensors as GEMMs, forward and backward, as MindSpore AOT custom-operator entry
// points (ops.Custom(func_type="aot")), with the bias / activation / residual epilogue of inference fused in.
//
// In NCHW a 1x1 convolution of one image is a plain matrix product, Y (Cout x HW) = W (Cout x Cin) . X (Cin x HW),
// with no data reordering at all; MindSpore's CPU backend instead hands the tensors to oneDNN in plain NCHW, which
// reorders them into a blocked layout and back on every call (about 2.5x slower than a good GEMM here).
//
// The products whose inner dimension is channels (the forward pass, the input gradient and the heads: few rows,
// short inner dimension, many pixels) run on the register tiles of kernels/cf_tiles.h where X is small or has few
// channels (UseTiles), reading X where it is, with bias, activation, residual and sigmoid applied while a tile is in
// registers (TiledRows): a BLAS GEMM packs X into panels and zeroes Y before every call. The other products, and
// the weight gradient (inner dimension pixels), run in OpenBLAS's single-precision GEMM (the
// `scipy-openblas32` wheel, a dependency of the package), loaded at run time with dlopen from the path in the
// environment variable CENTERFACE_OPENBLAS_LIB (set by centerface_flow/ops/native.py before the first operator is
// built), so this library has no link-time dependency; OpenBLAS runs single-threaded inside our worker threads.
// Either way the columns (pixels) of each image are split between threads.
//
// Entry points (MindSpore's AOT signature, see kernels/depthwise.cc; inputs then the output, 0 = success):
//   CfPw(x (N,Cin,H,W), w (Cout,Cin,1,1)) -> y (N,Cout,H,W)                           forward, no bias (training)
//   CfPwBackInput(x, w, dy (N,Cout,H,W)) -> dx (N,Cin,H,W)                            x is read for its shape only
//   CfPwBackWeight(x, dy) -> dw (Cout,Cin,1,1)
//   CfHeads(x (N,C,H,W), w_hm (1,C,1,1), b_hm (1,), w_wh (2,C,1,1), b_wh, w_off (2,C,1,1), b_off,
//           w_lm (10,C,1,1), b_lm) -> hm (N,1,H,W), wh (N,2,H,W), off (N,2,H,W), lm (N,10,H,W)
//       CenterFace's four heads in one GEMM (their weights stacked per call), + bias, sigmoid on the heatmap
//   CfPwBias{,Relu,Relu6}(x, w, b (Cout,)) -> y = act(W.x + b)                        inference
//   CfPwBias{,Relu,Relu6}Res(x, w, b, r (N,Cout,H,W)) -> y = act(W.x + b) + r         inference, residual added
//
// Status codes: 1 bad arguments (shapes / dtypes), 2 OpenBLAS could not be loaded (a product that needs it).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cf_blas.h"
#include "cf_common.h"
#include "cf_threads.h"
#include "cf_tiles.h"

namespace {

using namespace cf_common;  // NOLINT(build/namespaces): IsF32, Count, activations
using namespace cf_tiles;   // NOLINT(build/namespaces): vectors, register tiles, panels

struct Dims {
  int64_t n, cin, cout, hw;
};

// x (N,Cin,H,W) and a weight of Cout*Cin elements whose first dimension is Cout.
bool GetDims(int ndim_x, const int64_t *shape_x, int ndim_w, const int64_t *shape_w, Dims *d) {
  if (ndim_x != 4 || ndim_w < 2) return false;
  d->n = shape_x[0];
  d->cin = shape_x[1];
  d->hw = shape_x[2] * shape_x[3];
  d->cout = shape_w[0];
  return d->n >= 0 && d->cin > 0 && d->cout > 0 && Count(ndim_w, shape_w) == d->cout * d->cin;
}

// The pixel range [p0, p1) of block `b` out of `blocks` over `hw` pixels, in multiples of 16 floats.
inline void Block(int64_t hw, int b, int blocks, int64_t *p0, int64_t *p1) {
  const int64_t per = ((hw + blocks - 1) / blocks + 15) / 16 * 16;
  *p0 = b * per < hw ? b * per : hw;
  *p1 = (b + 1) * per < hw ? (b + 1) * per : hw;
}

// Calls fn(image, p0, p1) for every image's pixels split into one column block per thread, in parallel.
template <typename Fn>
void ForEachBlock(int64_t images, int64_t hw, Fn fn) {
  cf_threads::Parallel([&](int t, int threads) {
    for (int64_t item = t; item < images * threads; item += threads) {
      int64_t p0, p1;
      Block(hw, static_cast<int>(item % threads), threads, &p0, &p1);
      if (p1 > p0) fn(item / threads, p0, p1);
    }
  });
}

// Where TiledRows puts output row r of the current image: out[r] + pixel, after act(. + bias[r]) (a sigmoid for rows
// below `sigmoid_rows`, else activation A), then + res[r][pixel] when `res` is given.
struct RowsOut {
  float *const *out;
  const float *const *res;
  int64_t sigmoid_rows;
};

// Pixels per run of TiledRows: every panel of A goes over a run's tiles before the next run, so that each output
// row and each row of X is written / read in runs of 1 KB (tile by tile over all panels, a layer with 96 rows of
// output or input, 256 KB apart, ran 1.3-1.8x slower than OpenBLAS), and a run of X (k KB) stays in L2.
constexpr int64_t kRunPixels = 256;

// Rows [0, rows) of A . X + bias for pixels [p0, p1) of one image (X: k rows `ldx` floats apart), A as panels
// (PackPanels), in runs of kRunPixels and tiles of kTile pixels. A short last tile is copied to `scratch` (k x kTile
// floats) first. The sum of each output starts from its bias and adds the k products in order, whatever the thread
// split.
template <int A, int L, int kM>
CF_CLONES void TiledRows(const float *panels, const float *bias, int64_t rows, int64_t k, const float *x, int64_t ldx,
                         int64_t p0, int64_t p1, const RowsOut &to, float *scratch) {
  constexpr int kJ = kTile / L;
  for (int64_t pb = p0; pb < p1; pb += kRunPixels) {
    const int64_t pe = p1 - pb < kRunPixels ? p1 : pb + kRunPixels;
    if ((pe - pb) % kTile != 0) {  // the short last tile, zero-padded
      const int64_t p = pe - (pe - pb) % kTile, cols = pe - p;
      for (int64_t kk = 0; kk < k; ++kk) {
        std::memcpy(scratch + kk * kTile, x + kk * ldx + p, sizeof(float) * cols);
        std::memset(scratch + kk * kTile + cols, 0, sizeof(float) * (kTile - cols));
      }
    }
    for (int64_t r0 = 0; r0 < rows; r0 += kM) {
      const int m = rows - r0 < kM ? static_cast<int>(rows - r0) : kM;
      for (int64_t p = pb; p < pe; p += kTile) {
        const int64_t cols = pe - p < kTile ? pe - p : kTile;
        const float *b = cols < kTile ? scratch : x + p;
        const int64_t ldb = cols < kTile ? kTile : ldx;
        VecOf<L> acc[kM][kJ];
        PanelProduct<L, kM>(k, panels + r0 * k, b, ldb, bias + r0, m, acc);
#pragma GCC unroll 16
        for (int i = 0; i < kM; ++i) {
          if (i >= m) break;
          const int64_t r = r0 + i;
          float t[kTile];
          if (r < to.sigmoid_rows) {
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) Store<L>(t + q * L, acc[i][q]);
            for (int u = 0; u < kTile; ++u) t[u] = 1.0f / (1.0f + std::exp(-t[u]));
          } else {
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) {
              VecOf<L> v = ActivateVec<A, L>(acc[i][q]);
              if (to.res != nullptr) {
                if (cols == kTile) {
                  v += Load<L>(to.res[r] + p + q * L);
                } else {
                  for (int u = 0; u < L; ++u) v[u] += q * L + u < cols ? to.res[r][p + q * L + u] : 0.0f;
                }
              }
              if (cols == kTile) {
                Store<L>(to.out[r] + p + q * L, v);
              } else {
                Store<L>(t + q * L, v);
              }
            }
            if (cols == kTile) continue;
          }
          std::memcpy(to.out[r] + p, t, sizeof(float) * cols);
        }
      }
    }
  }
}

// y[c, p0:p1] = act(y + b[c]) (+ r[c, p0:p1]) for every output channel c of one image.
CF_CLONES void Epilogue(float *y, const float *bias, const float *res, int64_t cout, int64_t hw, int64_t p0,
                        int64_t p1, int act) {
  for (int64_t c = 0; c < cout; ++c) {
    float *row = y + c * hw;
    const float b = bias[c];
    const float *rrow = res != nullptr ? res + c * hw : nullptr;
    if (act == kRelu) {
      for (int64_t p = p0; p < p1; ++p) row[p] = row[p] + b > 0.0f ? row[p] + b : 0.0f;
    } else if (act == kRelu6) {
      for (int64_t p = p0; p < p1; ++p) {
        const float v = row[p] + b;
        row[p] = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
      }
    } else {
      for (int64_t p = p0; p < p1; ++p) row[p] += b;
    }
    if (rrow != nullptr)
      for (int64_t p = p0; p < p1; ++p) row[p] += rrow[p];
  }
}

// dst[j] = src[j] + b, through a sigmoid when `sigmoid`.
CF_CLONES void HeadRow(const float *src, float *dst, float b, int64_t n, bool sigmoid) {
  if (sigmoid) {
    for (int64_t j = 0; j < n; ++j) dst[j] = 1.0f / (1.0f + std::exp(-(src[j] + b)));
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j] + b;
  }
}

// Whether a product with `k` input rows of `hw` pixels runs on the register tiles rather than in OpenBLAS: the tiles
// read X in place, k streams a plane apart, which only pays while there are few of them or one image's X stays in a
// core's L2 (1 MB on current x86 server cores). Past that, OpenBLAS's packed copy of X reads memory in order:
// measured on a 2-core Zen 4 at batch 8, a 96-row input at 128x128 ran 1.3x and at 256x256 1.9x slower on the tiles.
inline bool UseTiles(int64_t k, int64_t hw) { return k <= 32 || k * hw * 4 <= 1024 * 1024; }

// A (rows x k, row-major; transposed: given as k x rows) as panels of this CPU's tile height, in `scratch`.
const float *PackedRows(const float *a, int64_t rows, int64_t k, bool transposed, std::vector<float> *scratch) {
  const int km = WideVectors() ? 12 : 6;
  const float *src = a;
  std::vector<float> t;
  if (transposed) {
    t.resize(rows * k);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t kk = 0; kk < k; ++kk) t[r * k + kk] = a[kk * rows + r];
    src = t.data();
  }
  scratch->resize((rows + km - 1) / km * km * k);
  PackPanels(src, rows, k, km, scratch->data());
  return scratch->data();
}

// TiledRows with this CPU's tiles and activation `act`, for every image's pixels split between the threads; `rows_of`
// (image, row pointers out, residual row pointers out) fills the row pointers of one image.
template <typename RowsOf>
void TiledProduct(const float *panels, const float *bias, int64_t rows, int64_t k, const float *x, int64_t n,
                  int64_t hw, int act, bool with_res, int64_t sigmoid_rows, RowsOf rows_of) {
  ForEachBlock(n, hw, [&](int64_t img, int64_t p0, int64_t p1) {
    static thread_local std::vector<float *> out;
    static thread_local std::vector<const float *> res;
    float *const scratch = cf_common::ThreadScratch(0, k * kTile);
    out.resize(rows);
    res.resize(rows);
    rows_of(img, out.data(), res.data());
    const RowsOut to{out.data(), with_res ? res.data() : nullptr, sigmoid_rows};
    const float *xn = x + img * k * hw;
    if (WideVectors()) {
      if (act == kRelu) return TiledRows<kRelu, 16, 12>(panels, bias, rows, k, xn, hw, p0, p1, to, scratch);
      if (act == kRelu6) return TiledRows<kRelu6, 16, 12>(panels, bias, rows, k, xn, hw, p0, p1, to, scratch);
      return TiledRows<kNone, 16, 12>(panels, bias, rows, k, xn, hw, p0, p1, to, scratch);
    }
    if (act == kRelu) return TiledRows<kRelu, 8, 6>(panels, bias, rows, k, xn, hw, p0, p1, to, scratch);
    if (act == kRelu6) return TiledRows<kRelu6, 8, 6>(panels, bias, rows, k, xn, hw, p0, p1, to, scratch);
    return TiledRows<kNone, 8, 6>(panels, bias, rows, k, xn, hw, p0, p1, to, scratch);
  });
}

// Y_n = W . X_n for every image, optionally followed by the epilogue (bias != nullptr).
int Forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, bool with_bias, int act,
            bool with_res) {
  const int expected = 3 + (with_bias ? 1 : 0) + (with_res ? 1 : 0);
  if (nparam != expected) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  Dims d;
  if (!GetDims(ndims[0], shapes[0], ndims[1], shapes[1], &d)) return 1;
  const int out = nparam - 1;
  if (ndims[out] != 4 || shapes[out][0] != d.n || shapes[out][1] != d.cout || shapes[out][2] * shapes[out][3] != d.hw)
    return 1;
  if (with_bias && Count(ndims[2], shapes[2]) != d.cout) return 1;
  if (with_res && Count(ndims[3], shapes[3]) != d.n * d.cout * d.hw) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  const float *bias = with_bias ? static_cast<const float *>(params[2]) : nullptr;
  const float *res = with_res ? static_cast<const float *>(params[3]) : nullptr;
  float *y = static_cast<float *>(params[out]);
  if (d.n == 0 || d.hw == 0) return 0;
  if (UseTiles(d.cin, d.hw)) {
    static thread_local std::vector<float> panels, zeros;
    const float *a = PackedRows(w, d.cout, d.cin, false, &panels);
    zeros.assign(d.cout, 0.0f);
    TiledProduct(a, with_bias ? bias : zeros.data(), d.cout, d.cin, x, d.n, d.hw, act, with_res, 0,
                 [&](int64_t n, float **rows, const float **res_rows) {
                   for (int64_t c = 0; c < d.cout; ++c) {
                     rows[c] = y + (n * d.cout + c) * d.hw;
                     res_rows[c] = with_res ? res + (n * d.cout + c) * d.hw : nullptr;
                   }
                 });
    return 0;
  }
  if (!cf_blas::LoadBlas()) return 2;
  ForEachBlock(d.n, d.hw, [&](int64_t n, int64_t p0, int64_t p1) {
    const float *xn = x + n * d.cin * d.hw;
    float *yn = y + n * d.cout * d.hw;
    cf_blas::Gemm(false, false, d.cout, p1 - p0, d.cin, w, d.cin, xn + p0, d.hw, yn + p0, d.hw);
    if (bias != nullptr)
      Epilogue(yn, bias, res != nullptr ? res + n * d.cout * d.hw : nullptr, d.cout, d.hw, p0, p1, act);
  });
  return 0;
}

// dX_n = W^T . dY_n.
int BackInput(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 4) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  Dims d;
  if (!GetDims(ndims[0], shapes[0], ndims[1], shapes[1], &d)) return 1;
  if (Count(ndims[2], shapes[2]) != d.n * d.cout * d.hw || Count(ndims[3], shapes[3]) != d.n * d.cin * d.hw) return 1;
  const float *w = static_cast<const float *>(params[1]);
  const float *dy = static_cast<const float *>(params[2]);
  float *dx = static_cast<float *>(params[3]);
  if (d.n == 0 || d.hw == 0) return 0;
  if (UseTiles(d.cout, d.hw)) {
    static thread_local std::vector<float> panels, zeros;
    const float *a = PackedRows(w, d.cin, d.cout, true, &panels);
    zeros.assign(d.cin, 0.0f);
    TiledProduct(a, zeros.data(), d.cin, d.cout, dy, d.n, d.hw, kNone, false, 0,
                 [&](int64_t n, float **rows, const float **) {
                   for (int64_t c = 0; c < d.cin; ++c) rows[c] = dx + (n * d.cin + c) * d.hw;
                 });
    return 0;
  }
  if (!cf_blas::LoadBlas()) return 2;
  ForEachBlock(d.n, d.hw, [&](int64_t n, int64_t p0, int64_t p1) {
    cf_blas::Gemm(true, false, d.cin, p1 - p0, d.cout, w, d.cin, dy + n * d.cout * d.hw + p0, d.hw,
                  dx + n * d.cin * d.hw + p0, d.hw);
  });
  return 0;
}

// dW = sum_n dY_n . X_n^T; the output channels (rows of dW) are split between threads.
int BackWeight(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 3) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[1] != 4 || ndims[2] < 2) return 1;
  Dims d;
  if (!GetDims(ndims[0], shapes[0], ndims[2], shapes[2], &d)) return 1;
  if (shapes[1][0] != d.n || shapes[1][1] != d.cout || shapes[1][2] * shapes[1][3] != d.hw) return 1;
  if (!cf_blas::LoadBlas()) return 2;
  const float *x = static_cast<const float *>(params[0]);
  const float *dy = static_cast<const float *>(params[1]);
  float *dw = static_cast<float *>(params[2]);
  if (d.n == 0 || d.hw == 0) {
    std::memset(dw, 0, sizeof(float) * d.cout * d.cin);
    return 0;
  }
  cf_threads::ParallelRange(d.cout, [&](int64_t m0, int64_t m1) {
    for (int64_t n = 0; n < d.n; ++n) {
      cf_blas::Gemm(false, true, m1 - m0, d.cin, d.hw, dy + n * d.cout * d.hw + m0 * d.hw, d.hw, x + n * d.cin * d.hw,
                    d.hw, dw + m0 * d.cin, d.cin, /*accumulate=*/n > 0);
    }
  });
  return 0;
}

// The four heads as one product of their stacked weights (+ bias, the heatmap through a sigmoid): on the tiles each
// row is stored straight to its head's output; in OpenBLAS into a thread-local buffer, then scattered.
int Heads(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr int kHeads = 4;
  if (nparam != 1 + 2 * kHeads + kHeads) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4) return 1;
  const int64_t n = shapes[0][0], c = shapes[0][1], hw = shapes[0][2] * shapes[0][3];
  int64_t rows[kHeads], first[kHeads], total = 0;
  for (int h = 0; h < kHeads; ++h) {
    rows[h] = Count(ndims[2 + 2 * h], shapes[2 + 2 * h]);
    first[h] = total;
    total += rows[h];
    const int o = 1 + 2 * kHeads + h;
    if (rows[h] < 1 || Count(ndims[1 + 2 * h], shapes[1 + 2 * h]) != rows[h] * c ||
        Count(ndims[o], shapes[o]) != n * rows[h] * hw)
      return 1;
  }
  if (n == 0 || hw == 0) return 0;
  const float *x = static_cast<const float *>(params[0]);
  std::vector<float> w(total * c), b(total), panels;
  for (int h = 0; h < kHeads; ++h) {
    std::memcpy(w.data() + first[h] * c, params[1 + 2 * h], sizeof(float) * rows[h] * c);
    std::memcpy(b.data() + first[h], params[2 + 2 * h], sizeof(float) * rows[h]);
  }
  if (UseTiles(c, hw)) {
    const float *a = PackedRows(w.data(), total, c, false, &panels);
    TiledProduct(a, b.data(), total, c, x, n, hw, kNone, false, rows[0], [&](int64_t img, float **out, const float **) {
      for (int h = 0; h < kHeads; ++h)
        for (int64_t r = 0; r < rows[h]; ++r)
          out[first[h] + r] = static_cast<float *>(params[1 + 2 * kHeads + h]) + (img * rows[h] + r) * hw;
    });
    return 0;
  }
  if (!cf_blas::LoadBlas()) return 2;
  ForEachBlock(n, hw, [&](int64_t img, int64_t p0, int64_t p1) {
    static thread_local std::vector<float> buf;
    const int64_t cols = p1 - p0;
    buf.resize(total * cols);
    cf_blas::Gemm(false, false, total, cols, c, w.data(), c, x + img * c * hw + p0, hw, buf.data(), cols);
    for (int h = 0; h < kHeads; ++h) {
      float *out = static_cast<float *>(params[1 + 2 * kHeads + h]) + img * rows[h] * hw + p0;
      for (int64_t r = 0; r < rows[h]; ++r)
        HeadRow(buf.data() + (first[h] + r) * cols, out + r * hw, b[first[h] + r], cols, h == 0);
    }
  });
  return 0;
}

}  // namespace

#define CF_SIG int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *
#define CF_ARGS nparam, params, ndims, shapes, dtypes

extern "C" {
int CfPw(CF_SIG) { return Forward(CF_ARGS, false, kNone, false); }
int CfPwBias(CF_SIG) { return Forward(CF_ARGS, true, kNone, false); }
int CfPwBiasRelu(CF_SIG) { return Forward(CF_ARGS, true, kRelu, false); }
int CfPwBiasRelu6(CF_SIG) { return Forward(CF_ARGS, true, kRelu6, false); }
int CfPwBiasRes(CF_SIG) { return Forward(CF_ARGS, true, kNone, true); }
int CfPwBiasReluRes(CF_SIG) { return Forward(CF_ARGS, true, kRelu, true); }
int CfPwBiasRelu6Res(CF_SIG) { return Forward(CF_ARGS, true, kRelu6, true); }
int CfPwBackInput(CF_SIG) { return BackInput(CF_ARGS); }
int CfPwBackWeight(CF_SIG) { return BackWeight(CF_ARGS); }
int CfHeads(CF_SIG) { return Heads(CF_ARGS); }
}
