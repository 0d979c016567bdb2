// Dense (ungrouped) 3x3 convolution (padding 1, stride 1 or 2) and 2x2 stride-2 transposed convolution on NCHW
// float32 tensors, inference only (bias + activation fused), as MindSpore AOT custom-operator entry points.
//
// The transposed convolution and the stride-2 3x3 convolution run as GEMMs in OpenBLAS's single-precision GEMM,
// loaded at run time with dlopen from the path in the environment variable CENTERFACE_OPENBLAS_LIB (see
// kernels/pointwise.cc, set by centerface_flow/ops/pointwise.py); the stride-1 3x3 convolution runs directly on
// register tiles (kernels/cf_tiles.h, DirectConv3x3). MindSpore's CPU backend instead runs them through oneDNN on
// plain NCHW tensors with separate BiasAdd and ReLU passes, which for the first layer of the network (3 -> 32
// channels on the full-size input) costs as much as several of the depthwise layers together.
//
// Entry points (MindSpore's AOT signature, see kernels/depthwise.cc; inputs then the output, 0 = success):
//   CfConv3x3S{1,2}Bias{,Relu,Relu6}Valid(x (N,Cin,H,W), w (Cout,Cin,3,3), b (Cout,), valid (4,)) -> y (N,Cout,Ho,Wo)
//       Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1, zero padding of 1 on every side. Stride 1: each worker thread
//       takes a band of output rows of one image, copies its input rows zero-padded into a thread-local band and
//       accumulates Cout x 16-pixel register tiles over Cin x 9 taps read in place (DirectConv3x3). Stride 2: the
//       band's input patches are gathered into a thread-local (Cin*9) x (rows*Wo) matrix (im2col) and multiplied by
//       the weight (Cout x Cin*9) with a single-threaded sgemm straight into y, then bias + activation are applied
//       to the band while it is in cache.
//       valid = (H0, W0, h0, w0) float32 has the meaning of ValidPlane in kernels/cf_common.h: the input is a
//       bottom/right zero-padded tensor of a network whose input was H0 x W0 around an h0 x w0 image; input rows /
//       columns past the image (h0 / r, w0 / r at this layer's input stride r) are treated as the convolution's
//       own zero padding and outputs outside the valid region are written as zeros, so the valid region equals
//       the unpadded image's outputs. valid[0] <= 0: the whole tensor is valid.
//   CfConvT2x2S2Bias{,Relu}(x (N,Cin,h,w), w (Cin,Cout,2,2), b (Cout,)) -> y (N,Cout,2h,2w)
//       y[co, 2i+a, 2j+b] = act(sum_ci x[ci,i,j] w[ci,co,a,b] + b[co]) (MindSpore's Conv2dTranspose weight layout,
//       no padding). Each thread takes a band of input rows of one image, computes Z (4*Cout x rows*w) = W^T . X
//       with one sgemm into a thread-local buffer, and scatters Z into the 2x2 output blocks with bias +
//       activation. Transposed 2x2 stride-2 convolutions never mix positions, so they need no valid region.
//
// Status codes: 1 bad arguments (count / dtypes), 3 bad shapes, 5 bad valid region, 2 OpenBLAS could not be loaded.
#include <atomic>
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

// Target size (floats) of a thread's im2col matrix / transposed-conv product: 128 KB, well inside a core's L2 with its
// output band (16K-256K floats measured within 10-20 % of each other on this machine; 32K the best or near it).
#ifndef CF_PATCH_FLOATS
#define CF_PATCH_FLOATS (32 * 1024)
#endif
constexpr int64_t kPatchFloats = CF_PATCH_FLOATS;

CF_CLONES void BiasAct(float *dst, const float *src, float b, int64_t n, int act) {  // dst may be src
  if (act == kRelu) {
    for (int64_t j = 0; j < n; ++j) {
      const float v = src[j] + b;
      dst[j] = v > 0.f ? v : 0.f;
    }
  } else if (act == kRelu6) {
    for (int64_t j = 0; j < n; ++j) {
      const float v = src[j] + b;
      dst[j] = v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j] = src[j] + b;
  }
}

// dst[j] = x[stride * j + off] for j in [j0, j1), zero elsewhere in [0, wo); x is a row of `w` valid samples.
CF_CLONES void GatherRow(float *__restrict dst, const float *__restrict x, int64_t w, int64_t wo, int stride,
                         int64_t off) {
  // valid j: 0 <= stride * j + off < w
  int64_t j0 = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t j1 = w - off <= 0 ? 0 : (w - off + stride - 1) / stride;
  if (j1 > wo) j1 = wo;
  if (j0 > j1) j0 = j1;
  for (int64_t j = 0; j < j0; ++j) dst[j] = 0.f;
  if (stride == 1) {
    std::memcpy(dst + j0, x + j0 + off, sizeof(float) * (j1 - j0));
  } else {
    for (int64_t j = j0; j < j1; ++j) dst[j] = x[2 * j + off];
  }
  for (int64_t j = j1; j < wo; ++j) dst[j] = 0.f;
}

// im2col of output rows [i0, i1) over the valid (vh x vw) part of one image's (Cin, H, W) input; the matrix has
// Cin*9 rows of (i1 - i0) * vwo columns.
void Im2col(const float *x, int64_t cin, int64_t h, int64_t w, int64_t vh, int64_t vw, int64_t vwo, int stride,
            int64_t i0, int64_t i1, float *col) {
  const int64_t cols = (i1 - i0) * vwo;
  for (int64_t ci = 0; ci < cin; ++ci) {
    const float *plane = x + ci * h * w;
    for (int ki = 0; ki < 3; ++ki) {
      for (int kj = 0; kj < 3; ++kj) {
        float *dst = col + ((ci * 3 + ki) * 3 + kj) * cols;
        for (int64_t i = i0; i < i1; ++i, dst += vwo) {
          const int64_t r = stride * i + ki - 1;
          if (r < 0 || r >= vh) {
            std::memset(dst, 0, sizeof(float) * vwo);
          } else {
            GatherRow(dst, plane + r * w, vw, vwo, stride, kj - 1);
          }
        }
      }
    }
  }
}

// The padded input rows of one band of a direct stride-1 convolution: for each channel (ldc floats apart) rows
// r = 0 .. rows + 1 of pw = vw + 2 floats holding input row i0 - 1 + r, input column c at padded column c + 1;
// padded columns 0 and vw + 1 and rows outside the valid rows [0, vh) are zero.
void PadBand(const float *x, int64_t cin, int64_t h, int64_t w, int64_t vh, int64_t vw, int64_t i0, int64_t rows,
             float *band, int64_t ldc) {
  const int64_t pw = vw + 2;
  for (int64_t c = 0; c < cin; ++c) {
    for (int64_t r = 0; r < rows + 2; ++r) {
      float *dst = band + c * ldc + r * pw;
      const int64_t i = i0 - 1 + r;
      if (i < 0 || i >= vh) {
        std::memset(dst, 0, sizeof(float) * pw);
        continue;
      }
      dst[0] = 0.0f;
      std::memcpy(dst + 1, x + (c * h + i) * w, sizeof(float) * vw);
      dst[vw + 1] = 0.0f;
    }
  }
}

// acc[i] = bias[i] + sum over input channels c and taps (ki, kj) of pa[((c * 3 + ki) * 3 + kj) * kM + i] times the
// kTile pixels b[c * ldc + ki * pw + kj ..]: a 3x3 stride-1 convolution's register tile, reading its input where it
// lies in the padded band (no im2col copy). Rows i >= m take bias[m - 1] (see PackPanels).
template <int L, int kM>
CF_INLINE void TileConv3x3(int64_t cin, const float *pa, const float *b, int64_t ldc, int64_t pw, const float *bias,
                           int m, VecOf<L> (&acc)[kM][kTile / L]) {
  constexpr int kJ = kTile / L;
  StartTile<L, kM>(bias, m, acc);
  for (int64_t c = 0; c < cin; ++c, b += ldc) {
#pragma GCC unroll 3
    for (int ki = 0; ki < 3; ++ki) {
#pragma GCC unroll 3
      for (int kj = 0; kj < 3; ++kj, pa += kM) {
        VecOf<L> v[kJ];
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) v[q] = Load<L>(b + ki * pw + kj + q * L);
#pragma GCC unroll 16
        for (int i = 0; i < kM; ++i) {
          const float wt = pa[i];
#pragma GCC unroll 2
          for (int q = 0; q < kJ; ++q) acc[i][q] += wt * v[q];
        }
      }
    }
  }
}

// Output rows [i0, i0 + rows) of a direct 3x3 stride-1 convolution from their padded band (PadBand): kM output
// channels x kTile pixels at a time, + bias + activation in registers, into y (channel planes `plane` floats apart,
// rows wo floats apart); columns vwo .. wo (outside the valid region) are written as zeros.
template <int A, int L, int kM>
CF_CLONES void Conv3x3Band(const float *band, int64_t ldc, int64_t cin, const float *panels, const float *bias,
                           int64_t cout, int64_t i0, int64_t rows, int64_t vwo, int64_t wo, float *y, int64_t plane) {
  constexpr int kJ = kTile / L;
  const int64_t pw = vwo + 2;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < vwo; j += kTile) {
      const int64_t cols = vwo - j < kTile ? vwo - j : kTile;
      for (int64_t co0 = 0; co0 < cout; co0 += kM) {
        const int m = cout - co0 < kM ? static_cast<int>(cout - co0) : kM;
        VecOf<L> acc[kM][kJ];
        TileConv3x3<L, kM>(cin, panels + co0 * cin * 9, band + r * pw + j, ldc, pw, bias + co0, m, acc);
#pragma GCC unroll 16
        for (int i = 0; i < kM; ++i) {
          if (i >= m) break;
          float *out = y + (co0 + i) * plane + (i0 + r) * wo + j;
          if (cols == kTile) {
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) Store<L>(out + q * L, ActivateVec<A, L>(acc[i][q]));
          } else {
            float t[kTile];
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) Store<L>(t + q * L, ActivateVec<A, L>(acc[i][q]));
            std::memcpy(out, t, sizeof(float) * cols);
          }
        }
      }
    }
    if (vwo < wo)
      for (int64_t co = 0; co < cout; ++co)
        std::memset(y + co * plane + (i0 + r) * wo + vwo, 0, sizeof(float) * (wo - vwo));
  }
}

// A 3x3 stride-1 convolution computed directly with register tiles (Conv3x3Band): as im2col + sgemm, a layer with
// few output channels (the neck's 24) ran at about half the FMA peak (OpenBLAS packs the im2col matrix again and
// its kernels are shaped for larger M), and the im2col matrix itself is 9x the input band. Threads take bands of
// output rows whose padded input stays in L2.
template <int A, int L, int kM>
void DirectConv3x3(const float *x, const float *k, const float *bias, float *y, int64_t n, int64_t cin, int64_t h,
                   int64_t w, int64_t cout, int64_t vh, int64_t vw) {
  static thread_local std::vector<float> panels;
  panels.resize((cout + kM - 1) / kM * kM * cin * 9);
  PackPanels(k, cout, cin * 9, kM, panels.data());
  const int64_t pw = vw + 2, plane = h * w;
  // bands of output rows whose padded input fills at most ~256 KB, as many per image as a multiple of the threads
  // (one image: equal shares)
  int64_t rows = (256 * 1024 / 4) / (cin * pw) - 2;
  if (rows < 1) rows = 1;
  int64_t bands = (vh + rows - 1) / rows;
  if (n == 1) {
    const int64_t threads = cf_threads::Threads();
    bands = (bands + threads - 1) / threads * threads;
  }
  rows = (vh + bands - 1) / bands;
  bands = (vh + rows - 1) / rows;
  const int64_t items = n * bands, ldc = (rows + 2) * pw;
  std::atomic<int64_t> next{0};
  const float *pa = panels.data();
  cf_threads::Parallel([&](int t, int threads) {
    static thread_local std::vector<float> band;
    if (static_cast<int64_t>(band.size()) < cin * ldc + 2 * kTile) band.resize(cin * ldc + 2 * kTile);
    for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < items;) {
      const int64_t img = item / bands, i0 = item % bands * rows, count = i0 + rows < vh ? rows : vh - i0;
      PadBand(x + img * cin * plane, cin, h, w, vh, vw, i0, count, band.data(), ldc);
      Conv3x3Band<A, L, kM>(band.data(), ldc, cin, pa, bias, cout, i0, count, vw, w, y + img * cout * plane, plane);
    }
    if (vh < h) {  // rows past the valid region are zero (no other thread writes them)
      int64_t p0, p1;
      cf_threads::Split(n * cout, t, threads, &p0, &p1);
      for (int64_t p = p0; p < p1; ++p) std::memset(y + p * plane + vh * w, 0, sizeof(float) * (h - vh) * w);
    }
  });
}

template <int A>
void DirectConv3x3(const float *x, const float *k, const float *bias, float *y, int64_t n, int64_t cin, int64_t h,
                   int64_t w, int64_t cout, int64_t vh, int64_t vw) {
  if (WideVectors()) return DirectConv3x3<A, 16, 12>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
  DirectConv3x3<A, 8, 6>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
}

int Conv3x3(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int stride, int act) {
  if (nparam != 5) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[4] != 4) return 3;
  const int64_t n = shapes[0][0], cin = shapes[0][1], h = shapes[0][2], w = shapes[0][3];
  if (n < 0 || cin < 1 || h < 1 || w < 1) return 3;
  const int64_t ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
  const int64_t cout = shapes[4][1];
  if (shapes[4][0] != n || cout < 1 || shapes[4][2] != ho || shapes[4][3] != wo) return 3;
  if (ndims[1] != 4 || shapes[1][0] != cout || shapes[1][1] != cin || shapes[1][2] != 3 || shapes[1][3] != 3)
    return 3;
  if (Count(ndims[2], shapes[2]) != cout) return 3;
  if (ndims[3] != 1 || shapes[3][0] != 4) return 5;
  int64_t vh, vw;
  if (!ValidPlane(static_cast<const float *>(params[3]), h, w, &vh, &vw)) return 5;
  const float *x = static_cast<const float *>(params[0]);
  const float *k = static_cast<const float *>(params[1]);
  const float *bias = static_cast<const float *>(params[2]);
  float *y = static_cast<float *>(params[4]);
  if (stride == 1) {
    const float *x = static_cast<const float *>(params[0]);
    const float *k = static_cast<const float *>(params[1]);
    const float *bias = static_cast<const float *>(params[2]);
    float *y = static_cast<float *>(params[4]);
    if (n == 0) return 0;
    if (act == kRelu) {
      DirectConv3x3<kRelu>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
    } else if (act == kRelu6) {
      DirectConv3x3<kRelu6>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
    } else {
      DirectConv3x3<kNone>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
    }
    return 0;
  }
  if (!cf_blas::LoadBlas()) return 2;
  const int64_t vho = (vh - 1) / stride + 1, vwo = (vw - 1) / stride + 1;
  const int64_t kdim = cin * 9, plane = ho * wo;
  const bool full_width = vwo == wo;
  // Bands of output rows: about kPatchFloats of im2col each, at least one row, and at least as many bands per
  // image as there are threads.
  const int threads_max = cf_threads::Threads();
  int64_t rows = kPatchFloats / (kdim * vwo);
  if (rows < 1) rows = 1;
  const int64_t min_bands = n > 1 ? 1 : threads_max;
  if ((vho + rows - 1) / rows < min_bands) rows = (vho + min_bands - 1) / min_bands;
  if (rows < 1) rows = 1;
  const int64_t bands = (vho + rows - 1) / rows, items = n * bands;
  std::atomic<int64_t> next{0};
  cf_threads::Parallel([&](int t, int threads) {
    std::vector<float> col(static_cast<size_t>(kdim * rows * vwo));
    std::vector<float> out(full_width ? 0 : static_cast<size_t>(cout * rows * vwo));
    for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < items;) {
      const int64_t img = item / bands, band = item % bands;
      const int64_t i0 = band * rows, i1 = i0 + rows < vho ? i0 + rows : vho;
      const int64_t cols = (i1 - i0) * vwo;
      const float *xn = x + img * cin * h * w;
      float *yn = y + img * cout * plane;
      Im2col(xn, cin, h, w, vh, vw, vwo, stride, i0, i1, col.data());
      if (full_width) {
        float *c0 = yn + i0 * wo;
        cf_blas::Gemm(false, false, cout, cols, kdim, k, kdim, col.data(), cols, c0, plane);
        for (int64_t co = 0; co < cout; ++co) BiasAct(c0 + co * plane, c0 + co * plane, bias[co], cols, act);
      } else {
        cf_blas::Gemm(false, false, cout, cols, kdim, k, kdim, col.data(), cols, out.data(), cols);
        for (int64_t co = 0; co < cout; ++co) {
          for (int64_t i = i0; i < i1; ++i) {
            float *yr = yn + co * plane + i * wo;
            BiasAct(yr, out.data() + co * cols + (i - i0) * vwo, bias[co], vwo, act);
            std::memset(yr + vwo, 0, sizeof(float) * (wo - vwo));
          }
        }
      }
    }
    // rows past the valid region are zero (no other thread writes them)
    if (vho < ho) {
      int64_t p0, p1;
      cf_threads::Split(n * cout, t, threads, &p0, &p1);
      for (int64_t p = p0; p < p1; ++p) std::memset(y + p * plane + vho * wo, 0, sizeof(float) * (ho - vho) * wo);
    }
  });
  return 0;
}

// Scatter one band of Z (rows co*4 + a*2 + b, columns (i - i0) * w + j) into the 2x2 output blocks of rows
// 2i + a with bias + activation.
CF_CLONES void ScatterRow(float *__restrict yr, const float *__restrict z0, const float *__restrict z1, float bias,
                          int64_t w, int act) {
  for (int64_t j = 0; j < w; ++j) {
    float v0 = z0[j] + bias, v1 = z1[j] + bias;
    if (act == kRelu) {
      v0 = v0 > 0.f ? v0 : 0.f;
      v1 = v1 > 0.f ? v1 : 0.f;
    }
    yr[2 * j] = v0;
    yr[2 * j + 1] = v1;
  }
}

int ConvT2x2(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int act) {
  if (nparam != 4) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[1] != 4 || ndims[3] != 4) return 3;
  const int64_t n = shapes[0][0], cin = shapes[0][1], h = shapes[0][2], w = shapes[0][3];
  const int64_t cout = shapes[1][1];
  if (n < 0 || cin < 1 || h < 1 || w < 1 || cout < 1) return 3;
  if (shapes[1][0] != cin || shapes[1][2] != 2 || shapes[1][3] != 2) return 3;
  if (Count(ndims[2], shapes[2]) != cout) return 3;
  if (shapes[3][0] != n || shapes[3][1] != cout || shapes[3][2] != 2 * h || shapes[3][3] != 2 * w) return 3;
  if (!cf_blas::LoadBlas()) return 2;
  const float *x = static_cast<const float *>(params[0]);
  const float *k = static_cast<const float *>(params[1]);
  const float *bias = static_cast<const float *>(params[2]);
  float *y = static_cast<float *>(params[3]);
  const int64_t m = 4 * cout, hw = h * w, out_plane = 4 * hw;
  const int threads_max = cf_threads::Threads();
  int64_t rows = kPatchFloats / (m * w);
  if (rows < 1) rows = 1;
  const int64_t min_bands = n > 1 ? 1 : threads_max;
  if ((h + rows - 1) / rows < min_bands) rows = (h + min_bands - 1) / min_bands;
  if (rows < 1) rows = 1;
  const int64_t bands = (h + rows - 1) / rows, items = n * bands;
  std::atomic<int64_t> next{0};
  cf_threads::Parallel([&](int, int) {
    std::vector<float> z(static_cast<size_t>(m * rows * w));
    for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < items;) {
      const int64_t img = item / bands, band = item % bands;
      const int64_t i0 = band * rows, i1 = i0 + rows < h ? i0 + rows : h;
      const int64_t cols = (i1 - i0) * w;
      // Z (4*Cout x cols) = W^T . X[:, i0*w : i1*w]; W is stored (Cin x 4*Cout) row-major
      cf_blas::Gemm(true, false, m, cols, cin, k, m, x + img * cin * hw + i0 * w, hw, z.data(), cols);
      float *yn = y + img * cout * out_plane;
      for (int64_t co = 0; co < cout; ++co) {
        for (int a = 0; a < 2; ++a) {
          const float *z0 = z.data() + (co * 4 + a * 2) * cols, *z1 = z0 + cols;
          for (int64_t i = i0; i < i1; ++i)
            ScatterRow(yn + co * out_plane + (2 * i + a) * 2 * w, z0 + (i - i0) * w, z1 + (i - i0) * w, bias[co], w,
                       act);
        }
      }
    }
  });
  return 0;
}

}  // namespace

#define CF_SIG int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *
#define CF_ARGS nparam, params, ndims, shapes, dtypes

extern "C" {
int CfConv3x3S1BiasValid(CF_SIG) { return Conv3x3(CF_ARGS, 1, kNone); }
int CfConv3x3S1BiasReluValid(CF_SIG) { return Conv3x3(CF_ARGS, 1, kRelu); }
int CfConv3x3S1BiasRelu6Valid(CF_SIG) { return Conv3x3(CF_ARGS, 1, kRelu6); }
int CfConv3x3S2BiasValid(CF_SIG) { return Conv3x3(CF_ARGS, 2, kNone); }
int CfConv3x3S2BiasReluValid(CF_SIG) { return Conv3x3(CF_ARGS, 2, kRelu); }
int CfConv3x3S2BiasRelu6Valid(CF_SIG) { return Conv3x3(CF_ARGS, 2, kRelu6); }
int CfConvT2x2S2Bias(CF_SIG) { return ConvT2x2(CF_ARGS, kNone); }
int CfConvT2x2S2BiasRelu(CF_SIG) { return ConvT2x2(CF_ARGS, kRelu); }
}
