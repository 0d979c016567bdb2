// Dense (ungrouped) 3x3 convolution (padding 1, stride 1 or 2) and 2x2 stride-2 transposed convolution on NCHW
// float32 tensors, inference only (bias + activation fused), as MindSpore AOT custom-operator entry points.
//
// Both run as GEMMs in OpenBLAS's single-precision GEMM, loaded at run time with dlopen from the path in the
// environment variable CENTERFACE_OPENBLAS_LIB (see kernels/pointwise.cc, set by centerface_flow/ops/pointwise.py).
// MindSpore's CPU backend instead runs them through oneDNN on plain NCHW tensors with separate BiasAdd and ReLU
// passes, which for the first layer of the network (3 -> 32 channels on the full-size input) costs as much as
// several of the depthwise layers together.
//
// Entry points (MindSpore's AOT signature, see kernels/depthwise.cc; inputs then the output, 0 = success):
//   CfConv3x3S{1,2}Bias{,Relu,Relu6}Valid(x (N,Cin,H,W), w (Cout,Cin,3,3), b (Cout,), valid (4,)) -> y (N,Cout,Ho,Wo)
//       Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1, zero padding of 1 on every side. Each worker thread takes a
//       band of output rows of one image, gathers its input patches into a thread-local (Cin*9) x (rows*Wo) matrix
//       (im2col) and multiplies it by the weight (Cout x Cin*9) with a single-threaded sgemm straight into y, then
//       applies bias + activation to the band while it is in cache.
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

namespace {

using namespace cf_common;  // NOLINT(build/namespaces): IsF32, Count, activations

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
  if (!cf_blas::LoadBlas()) return 2;
  const float *x = static_cast<const float *>(params[0]);
  const float *k = static_cast<const float *>(params[1]);
  const float *bias = static_cast<const float *>(params[2]);
  float *y = static_cast<float *>(params[4]);
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
