// Dense (ungrouped) 3x3 convolution (padding 1, stride 1 or 2) and 2x2 stride-2 transposed convolution on NCHW
// float32 tensors, for inference (bias + activation fused) and, without bias, for training (forward and both
// gradients), as MindSpore AOT custom-operator entry points.
//
// The transposed convolution and the stride-2 3x3 convolution run as GEMMs in OpenBLAS's single-precision GEMM,
// loaded at run time with dlopen from the path in the environment variable CENTERFACE_OPENBLAS_LIB (see
// kernels/pointwise.cc, set by centerface_flow/ops/pointwise.py); the stride-1 3x3 convolution runs on register
// tiles (kernels/cf_tiles.h), by Winograd's F(2x2, 3x3) from 8 input and output channels on (WinogradConv3x3),
// else directly (DirectConv3x3). MindSpore's CPU backend instead runs them through oneDNN on
// plain NCHW tensors with separate BiasAdd and ReLU passes, which for the first layer of the network (3 -> 32
// channels on the full-size input) costs as much as several of the depthwise layers together.
//
// Entry points (MindSpore's AOT signature, see kernels/depthwise.cc; inputs then the output, 0 = success):
//   CfConv3x3S{1,2}Bias{,Relu,Relu6}Valid(x (N,Cin,H,W), w (Cout,Cin,3,3), b (Cout,), valid (4,)) -> y (N,Cout,Ho,Wo)
//       Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1, zero padding of 1 on every side. Stride 1: each worker thread
//       takes a band of output rows of one image, copies its input rows zero-padded into a thread-local band and
//       accumulates Cout x 16-pixel register tiles over Cin x 9 taps read in place (DirectConv3x3), or transforms
//       16 2x2 blocks of outputs at a time (WinogradConv3x3). Stride 2: the
//       band's input patches are gathered into a thread-local (Cin*9) x (rows*Wo) matrix (im2col) and multiplied by
//       the weight (Cout x Cin*9) with a single-threaded sgemm straight into y, then bias + activation are applied
//       to the band while it is in cache.
//       valid = (H0, W0, h0, w0) float32 has the meaning of ValidPlane in kernels/cf_common.h: the input is a
//       bottom/right zero-padded tensor of a network whose input was H0 x W0 around an h0 x w0 image; input rows /
//       columns past the image (h0 / r, w0 / r at this layer's input stride r) are treated as the convolution's
//       own zero padding and outputs outside the valid region are written as zeros, so the valid region equals
//       the unpadded image's outputs. valid[0] <= 0: the whole tensor is valid.
//   CfConv3x3S1(x (N,Cin,H,W), w (Cout,Cin,3,3)) -> y (N,Cout,H,W)             training forward: no bias, all valid
//   CfConv3x3S1BackInput(dy (N,Cout,H,W), w (Cout,Cin,3,3)) -> dx (N,Cin,H,W)   its input gradient
//   CfConv3x3S1BackWeight(x (N,Cin,H,W), dy (N,Cout,H,W)) -> dw (Cout,Cin,3,3)  its weight gradient (OpenBLAS)
//   CfConv3x3S2(x, w) -> y (N,Cout,Ho,Wo), CfConv3x3S2BackInput(dy, w, x) -> dx, CfConv3x3S2BackWeight(x, dy) -> dw
//       the same for stride 2 (im2col + OpenBLAS GEMMs; the input gradient scattered back, col2im; it reads only
//       the shape of x, which Ho, Wo do not determine)
//   CfConvT2x2S2Bias{,Relu}(x (N,Cin,h,w), w (Cin,Cout,2,2), b (Cout,)) -> y (N,Cout,2h,2w)
//       y[co, 2i+a, 2j+b] = act(sum_ci x[ci,i,j] w[ci,co,a,b] + b[co]) (MindSpore's Conv2dTranspose weight layout,
//       no padding). Each thread takes a band of input rows of one image, computes Z (4*Cout x rows*w) = W^T . X
//       with one sgemm into a thread-local buffer, and scatters Z into the 2x2 output blocks with bias +
//       activation. Transposed 2x2 stride-2 convolutions never mix positions, so they need no valid region.
//   CfConvT2x2S2(x, w) -> y                                     training forward: no bias
//   CfConvT2x2S2BackInput(dy (N,Cout,2h,2w), w) -> dx (N,Cin,h,w)   its input gradient
//   CfConvT2x2S2BackWeight(x, dy) -> dw (Cin,Cout,2,2)              its weight gradient
//
// Status codes: 1 bad arguments (count / dtypes), 3 bad shapes, 5 bad valid region, 2 OpenBLAS could not be loaded.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
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
    float *const band = ThreadScratch(0, cin * ldc + 2 * kTile);
    for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < items;) {
      const int64_t img = item / bands, i0 = item % bands * rows, count = i0 + rows < vh ? rows : vh - i0;
      PadBand(x + img * cin * plane, cin, h, w, vh, vw, i0, count, band, ldc);
      Conv3x3Band<A, L, kM>(band, ldc, cin, pa, bias, cout, i0, count, vw, w, y + img * cout * plane, plane);
    }
    if (vh < h) {  // rows past the valid region are zero (no other thread writes them)
      int64_t p0, p1;
      cf_threads::Split(n * cout, t, threads, &p0, &p1);
      for (int64_t p = p0; p < p1; ++p) std::memset(y + p * plane + vh * w, 0, sizeof(float) * (h - vh) * w);
    }
  });
}


// ---------------------------------------------------------------------------------------------------------------
// The stride-1 3x3 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2016): each 2x2 block of
// outputs is A^T [(G g G^T) .* (B^T d B)] A of the 4x4 input block d around it, 16 products per pair of input and
// output channels instead of 36, so 2.25x fewer multiply-adds; over the channels the 16 element-wise products are
// 16 matrix products (Cout x Cin weights times Cin x tiles) on the register tiles. The transforms only add,
// subtract and halve: the outputs differ from the direct sum's by rounding (about 1e-7 relative).
//
// A band's padded input rows are stored split, the even padded columns and then the odd ones (WinogradBand), so
// that columns 2j .. 2j + 3 of the blocks j = j0 .. j0 + kTile are the unit-stride vectors E[j], O[j], E[j + 1],
// O[j + 1]: kTile blocks (2 x 2 kTile outputs) per register tile.

// U = G g G^T of every (co, ci) weight g, as 16 panel sets (PackPanels of the Cout x Cin matrix of element xi =
// 4 * row + column), `per` floats apart.
inline void WinogradWeights(const float *k, int64_t cout, int64_t cin, int km, float *panels, int64_t per) {
  std::vector<float> u(16 * cout * cin);
  for (int64_t co = 0; co < cout; ++co) {
    for (int64_t ci = 0; ci < cin; ++ci) {
      const float *g = k + (co * cin + ci) * 9;
      float t[4][3];  // G g
      for (int c = 0; c < 3; ++c) {
        t[0][c] = g[c];
        t[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);
        t[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);
        t[3][c] = g[6 + c];
      }
      for (int r = 0; r < 4; ++r) {  // (G g) G^T
        const float v[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]), 0.5f * (t[r][0] - t[r][1] + t[r][2]),
                            t[r][2]};
        for (int c = 0; c < 4; ++c) u[((r * 4 + c) * cout + co) * cin + ci] = v[c];
      }
    }
  }
  for (int xi = 0; xi < 16; ++xi) PackPanels(u.data() + xi * cout * cin, cout, cin, km, panels + xi * per);
}

// The padded input rows i0 - 1 .. i0 - 1 + rows of one image, split: band row r of channel c at band + c * ldc +
// r * 2 * half holds E (padded columns 0, 2, ..: E[0] = 0, E[j] = x[2j - 1]) and then, `half` floats on, O (padded
// columns 1, 3, ..: O[j] = x[2j]); columns and rows outside the valid region are zero.
CF_CLONES void WinogradBand(const float *x, int64_t cin, int64_t h, int64_t w, int64_t vh, int64_t vw, int64_t i0,
                            int64_t rows, int64_t half, float *band, int64_t ldc) {
  for (int64_t c = 0; c < cin; ++c) {
    for (int64_t r = 0; r < rows; ++r) {
      float *even = band + c * ldc + r * 2 * half, *odd = even + half;
      const int64_t i = i0 - 1 + r;
      if (i < 0 || i >= vh) {
        std::memset(even, 0, sizeof(float) * 2 * half);
        continue;
      }
      const float *src = x + (c * h + i) * w;
      const int64_t pairs = vw / 2;  // columns 2j and 2j + 1 both valid
      even[0] = 0.0f;
      for (int64_t j = 0; j < pairs; ++j) {  // no branch: vectorized
        odd[j] = src[2 * j];
        even[j + 1] = src[2 * j + 1];
      }
      odd[pairs] = vw % 2 == 1 ? src[vw - 1] : 0.0f;
      std::memset(odd + pairs + 1, 0, sizeof(float) * (half - pairs - 1));
      std::memset(even + pairs + 1, 0, sizeof(float) * (half - pairs - 1));
    }
  }
}

// CenterFace's heads applied to the convolution's outputs in place of storing them (CfConv3x3HeadsReluValid): head
// row r (of `rows`, the four heads' weights stacked, cout inputs each, as panels) of the current image is written to
// out[r], act(W y + bias) with a sigmoid on row 0 (the heatmap); where the convolution's output is zero (outside the
// valid region) that is the head's bias.
struct HeadsOut {
  static constexpr int kMaxRows = 32;
  const float *panels, *bias;
  int64_t rows;
  float *out[kMaxRows];         // image 0's planes
  int64_t image[kMaxRows];      // floats from one image's plane to the next's
};

inline float HeadValue(const HeadsOut &heads, int64_t r, float v) { return r == 0 ? 1.0f / (1.0f + std::exp(-v)) : v; }

// Head outputs [c0, c1) of row `row` of every head row where the convolution's output is zero.
inline void FillHeadsBias(const HeadsOut &heads, int64_t row, int64_t w, int64_t c0, int64_t c1) {
  for (int64_t r = 0; r < heads.rows; ++r) {
    const float v = HeadValue(heads, r, heads.bias[r]);
    float *dst = heads.out[r] + row * w;
    for (int64_t c = c0; c < c1; ++c) dst[c] = v;
  }
}

// Output rows [i0, i0 + rows) of the convolution from the band of their input rows (WinogradBand), kTile blocks
// of 2 x 2 outputs at a time: input transform of every channel into `vb` (16 x cin x kTile), the 16 products into
// `mb` (cout x 16 x kTile), output transform + bias + activation into y. Columns vw .. w of every row are zeros.
// With `heads`, the outputs go to `yb` (cout x 2 rows x 2 kTile) instead and the heads from there to their rows.
template <int A, int L, int kM>
CF_CLONES void WinogradRows(const float *band, int64_t ldc, int64_t half, int64_t cin, const float *panels,
                            int64_t per, const float *bias, int64_t cout, int64_t i0, int64_t rows, int64_t vw,
                            int64_t w, float *y, int64_t plane, float *vb, float *mb, const HeadsOut *heads,
                            float *yb) {
  constexpr int kJ = kTile / L;
  typedef VecOf<L> V;
  static const float zeros[kM] = {};
  const int64_t blocks = (vw + 1) / 2;  // 2 x 2 output blocks across
  for (int64_t a = 0; 2 * a < rows; ++a) {
    for (int64_t j0 = 0; j0 < blocks; j0 += kTile) {
      for (int64_t c = 0; c < cin; ++c) {  // V = B^T d B
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) {
          V t[4][4];
#pragma GCC unroll 4
          for (int r = 0; r < 4; ++r) {
            const float *even = band + c * ldc + (2 * a + r) * 2 * half + j0 + q * L, *odd = even + half;
            const V d0 = Load<L>(even), d1 = Load<L>(odd), d2 = Load<L>(even + 1), d3 = Load<L>(odd + 1);
            t[r][0] = d0 - d2;
            t[r][1] = d1 + d2;
            t[r][2] = d2 - d1;
            t[r][3] = d1 - d3;
          }
#pragma GCC unroll 4
          for (int col = 0; col < 4; ++col) {
            float *out = vb + (col * cin + c) * kTile + q * L;
            Store<L>(out, t[0][col] - t[2][col]);
            Store<L>(out + 4 * cin * kTile, t[1][col] + t[2][col]);
            Store<L>(out + 8 * cin * kTile, t[2][col] - t[1][col]);
            Store<L>(out + 12 * cin * kTile, t[1][col] - t[3][col]);
          }
        }
      }
      for (int xi = 0; xi < 16; ++xi) {  // M = U V, element by element
        for (int64_t co0 = 0; co0 < cout; co0 += kM) {
          const int m = cout - co0 < kM ? static_cast<int>(cout - co0) : kM;
          VecOf<L> acc[kM][kJ];
          PanelProduct<L, kM>(cin, panels + xi * per + co0 * cin, vb + xi * cin * kTile, kTile, zeros, m, acc);
#pragma GCC unroll 16
          for (int i = 0; i < kM; ++i) {
            if (i >= m) break;
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) Store<L>(mb + ((co0 + i) * 16 + xi) * kTile + q * L, acc[i][q]);
          }
        }
      }
      const int64_t cols = vw - 2 * j0 < 2 * kTile ? vw - 2 * j0 : 2 * kTile;  // valid outputs per row
      const bool whole = cols == 2 * kTile && 2 * a + 1 < rows && heads == nullptr;
      for (int64_t co = 0; co < cout; ++co) {  // Y = A^T M A + bias
        float part[2][2 * kTile];  // a block row that ends early, before its valid part is copied
        float *const out[2] = {
            whole ? y + co * plane + (i0 + 2 * a) * w + 2 * j0 : (heads ? yb + co * 4 * kTile : part[0]),
            whole ? y + co * plane + (i0 + 2 * a + 1) * w + 2 * j0 : (heads ? yb + co * 4 * kTile + 2 * kTile : part[1])};
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) {
          V s[4][2];
#pragma GCC unroll 4
          for (int r = 0; r < 4; ++r) {
            const float *m = mb + (co * 16 + 4 * r) * kTile + q * L;
            const V m0 = Load<L>(m), m1 = Load<L>(m + kTile), m2 = Load<L>(m + 2 * kTile), m3 = Load<L>(m + 3 * kTile);
            s[r][0] = m0 + m1 + m2;
            s[r][1] = m1 - m2 - m3;
          }
          const V b = V{} + bias[co];
          V y0[2], y1[2];
#pragma GCC unroll 2
          for (int col = 0; col < 2; ++col) {
            y0[col] = ActivateVec<A, L>(s[0][col] + s[1][col] + s[2][col] + b);
            y1[col] = ActivateVec<A, L>(s[1][col] - s[2][col] - s[3][col] + b);
          }
          // columns 2j and 2j + 1 of block j side by side
          if constexpr (L == 16) {
            typedef int Index __attribute__((vector_size(64)));
            const Index lo = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
            const Index hi = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
            Store<16>(out[0] + 2 * q * L, __builtin_shuffle(y0[0], y0[1], lo));
            Store<16>(out[0] + 2 * q * L + L, __builtin_shuffle(y0[0], y0[1], hi));
            Store<16>(out[1] + 2 * q * L, __builtin_shuffle(y1[0], y1[1], lo));
            Store<16>(out[1] + 2 * q * L + L, __builtin_shuffle(y1[0], y1[1], hi));
          } else {
            typedef int Index __attribute__((vector_size(32)));
            const Index lo = {0, 8, 1, 9, 2, 10, 3, 11}, hi = {4, 12, 5, 13, 6, 14, 7, 15};
            Store<8>(out[0] + 2 * q * L, __builtin_shuffle(y0[0], y0[1], lo));
            Store<8>(out[0] + 2 * q * L + L, __builtin_shuffle(y0[0], y0[1], hi));
            Store<8>(out[1] + 2 * q * L, __builtin_shuffle(y1[0], y1[1], lo));
            Store<8>(out[1] + 2 * q * L + L, __builtin_shuffle(y1[0], y1[1], hi));
          }
        }
        for (int r = 0; r < 2 && 2 * a + r < rows && !whole && heads == nullptr; ++r)
          std::memcpy(y + co * plane + (i0 + 2 * a + r) * w + 2 * j0, part[r], sizeof(float) * cols);
      }
      for (int r = 0; heads != nullptr && r < 2 && 2 * a + r < rows; ++r) {  // the heads of both rows' kTile halves
        for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
          const int64_t count = cols - c0 < kTile ? cols - c0 : kTile;
          for (int64_t h0 = 0; h0 < heads->rows; h0 += kM) {
            const int m = heads->rows - h0 < kM ? static_cast<int>(heads->rows - h0) : kM;
            VecOf<L> acc[kM][kJ];
            PanelProduct<L, kM>(cout, heads->panels + h0 * cout, yb + r * 2 * kTile + c0, 4 * kTile,
                                heads->bias + h0, m, acc);
#pragma GCC unroll 16
            for (int i = 0; i < kM; ++i) {
              if (i >= m) break;
              float *dst = heads->out[h0 + i] + (i0 + 2 * a + r) * w + 2 * j0 + c0;
              if (count == kTile && h0 + i != 0) {
#pragma GCC unroll 2
                for (int q = 0; q < kJ; ++q) Store<L>(dst + q * L, acc[i][q]);
                continue;
              }
              float t[kTile];
#pragma GCC unroll 2
              for (int q = 0; q < kJ; ++q) Store<L>(t + q * L, acc[i][q]);
              for (int64_t u = 0; u < count; ++u) dst[u] = HeadValue(*heads, h0 + i, t[u]);
            }
          }
        }
      }
    }
    if (heads != nullptr && vw < w) {
      for (int r = 0; r < 2 && 2 * a + r < rows; ++r) FillHeadsBias(*heads, i0 + 2 * a + r, w, vw, w);
    } else if (vw < w)
      for (int64_t co = 0; co < cout; ++co)
        for (int r = 0; r < 2 && 2 * a + r < rows; ++r)
          std::memset(y + co * plane + (i0 + 2 * a + r) * w + vw, 0, sizeof(float) * (w - vw));
  }
}

// DirectConv3x3 by WinogradRows: threads take bands of an even number of output rows. With `heads`, y is not
// written: the heads of the outputs are (HeadsOut).
template <int A, int L, int kM>
void WinogradConv3x3(const float *x, const float *k, const float *bias, float *y, int64_t n, int64_t cin, int64_t h,
                     int64_t w, int64_t cout, int64_t vh, int64_t vw, const HeadsOut *heads = nullptr) {
  const int64_t per = (cout + kM - 1) / kM * kM * cin;
  static thread_local std::vector<float> panels;
  panels.resize(16 * per);
  WinogradWeights(k, cout, cin, kM, panels.data(), per);
  const int64_t blocks = (vw + 1) / 2, half = ((blocks + kTile - 1) / kTile * kTile + kTile) / kTile * kTile;
  const int64_t plane = h * w;
  // bands of output rows whose split input fills at most ~256 KB, an even number of rows, as many per image as a
  // multiple of the threads (one image: equal shares)
  int64_t rows = (256 * 1024 / 4) / (cin * 2 * half) - 2;
  if (rows < 2) rows = 2;
  int64_t bands = (vh + rows - 1) / rows;
  if (n == 1) {
    const int64_t threads = cf_threads::Threads();
    bands = (bands + threads - 1) / threads * threads;
  }
  rows = ((vh + bands - 1) / bands + 1) / 2 * 2;
  bands = (vh + rows - 1) / rows;
  const int64_t items = n * bands, ldc = (rows + 2) * 2 * half;
  std::atomic<int64_t> next{0};
  const float *pa = panels.data();
  cf_threads::Parallel([&](int t, int threads) {
    float *const band_at = ThreadScratch(0, cin * ldc), *const vb_at = ThreadScratch(1, 16 * cin * kTile);
    float *const mb_at = ThreadScratch(2, cout * 16 * kTile);
    float *const yb_at = heads != nullptr ? ThreadScratch(3, cout * 4 * kTile) : nullptr;
    HeadsOut image_heads;
    for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < items;) {
      const int64_t img = item / bands, i0 = item % bands * rows, count = i0 + rows < vh ? rows : vh - i0;
      if (heads != nullptr) {
        image_heads = *heads;
        for (int64_t r = 0; r < heads->rows; ++r) image_heads.out[r] += img * heads->image[r];
      }
      // the input rows of count rounded up to even outputs (the last block row of an odd count reads one more)
      WinogradBand(x + img * cin * plane, cin, h, w, vh, vw, i0, (count + 1) / 2 * 2 + 2, half, band_at, ldc);
      WinogradRows<A, L, kM>(band_at, ldc, half, cin, pa, per, bias, cout, i0, count, vw, w,
                             y != nullptr ? y + img * cout * plane : nullptr, plane, vb_at, mb_at,
                             heads != nullptr ? &image_heads : nullptr, yb_at);
    }
    if (vh < h) {  // rows past the valid region are zero, or their heads the heads' biases (no other thread writes them)
      int64_t p0, p1;
      if (heads == nullptr) {
        cf_threads::Split(n * cout, t, threads, &p0, &p1);
        for (int64_t p = p0; p < p1; ++p) std::memset(y + p * plane + vh * w, 0, sizeof(float) * (h - vh) * w);
        return;
      }
      cf_threads::Split(n, t, threads, &p0, &p1);
      for (int64_t img = p0; img < p1; ++img) {
        image_heads = *heads;
        for (int64_t r = 0; r < heads->rows; ++r) image_heads.out[r] += img * heads->image[r];
        for (int64_t row = vh; row < h; ++row) FillHeadsBias(image_heads, row, w, 0, w);
      }
    }
  });
}

// Whether the stride-1 convolution runs as Winograd (WinogradConv3x3) rather than directly: its transforms cost per
// channel what its products save per pair of channels, so it pays from a few channels on (the neck's 24 -> 24:
// 2.1x fewer cycles measured, see docs/performance.md). CENTERFACE_CONV3X3 = direct | winograd overrides (read on
// every call, so that tests cover both).
inline bool WinogradPays(int64_t cin, int64_t cout) {
  const char *forced = std::getenv("CENTERFACE_CONV3X3");
  if (forced != nullptr && std::strcmp(forced, "direct") == 0) return false;
  if (forced != nullptr && std::strcmp(forced, "winograd") == 0) return true;
  return cin >= 8 && cout >= 8;
}

template <int A>
void DirectConv3x3(const float *x, const float *k, const float *bias, float *y, int64_t n, int64_t cin, int64_t h,
                   int64_t w, int64_t cout, int64_t vh, int64_t vw) {
  const bool winograd = WinogradPays(cin, cout);
  if (WideVectors()) {
    if (winograd) return WinogradConv3x3<A, 16, 12>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
    return DirectConv3x3<A, 16, 12>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
  }
  if (winograd) return WinogradConv3x3<A, 8, 6>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
  DirectConv3x3<A, 8, 6>(x, k, bias, y, n, cin, h, w, cout, vh, vw);
}

// Which pass a training entry point computes (the stride-2 3x3 and the transposed convolution share one function
// for their three).
enum TrainPass { kForward = 0, kBackInput = 1, kBackWeight = 2 };

// The weight gradients are sums over images (and bands of rows) of one GEMM each. Each GEMM writes its own block of
// `parts` (item i at parts + i * size), and out[e] = the blocks added in item order: the result does not depend on
// how many threads computed the blocks, or which one finished first.
void SumItems(const std::vector<float> &parts, int64_t items, int64_t size, float *out) {
  for (int64_t e = 0; e < size; ++e) {
    float v = 0.0f;
    for (int64_t i = 0; i < items; ++i) v += parts[i * size + e];
    out[e] = v;
  }
}

// The training forms of the stride-1 convolution (no bias, no activation, the whole tensor valid): the forward
// pass is the inference kernel with a zero bias; the input gradient is the same convolution of dy with the kernel
// turned around (dx[ci] = sum_co dy[co] * w[co, ci] rotated by 180 degrees, same padding); the weight gradient is
// Conv3x3BackWeight.
int Conv3x3Train(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, bool back_input) {
  if (nparam != 3) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[1] != 4 || ndims[2] != 4) return 3;
  const int64_t n = shapes[0][0], c_in = shapes[0][1], h = shapes[0][2], w = shapes[0][3];
  // the kernel (Cout, Cin, 3, 3); for the input gradient params[0] is dy (N, Cout, H, W) and the output has Cin
  const int64_t k_out = shapes[1][0], k_in = shapes[1][1];
  const int64_t cin = back_input ? k_out : k_in, cout = back_input ? k_in : k_out;
  if (n < 0 || h < 1 || w < 1 || c_in != cin || shapes[1][2] != 3 || shapes[1][3] != 3 || k_out < 1 || k_in < 1)
    return 3;
  if (shapes[2][0] != n || shapes[2][1] != cout || shapes[2][2] != h || shapes[2][3] != w) return 3;
  if (n == 0) return 0;
  const float *k = static_cast<const float *>(params[1]);
  static thread_local std::vector<float> turned, zeros;
  if (back_input) {  // turned[ci][co][a][b] = k[co][ci][2 - a][2 - b]
    turned.resize(k_in * k_out * 9);
    for (int64_t co = 0; co < k_out; ++co)
      for (int64_t ci = 0; ci < k_in; ++ci)
        for (int t = 0; t < 9; ++t) turned[(ci * k_out + co) * 9 + t] = k[(co * k_in + ci) * 9 + 8 - t];
    k = turned.data();
  }
  zeros.assign(cout, 0.0f);
  DirectConv3x3<kNone>(static_cast<const float *>(params[0]), k, zeros.data(), static_cast<float *>(params[2]), n,
                       cin, h, w, cout, h, w);
  return 0;
}

// CfConv3x3S1BackWeight: dw[co, ci, a, b] = sum over images and pixels of dy[co, y, x] * x[ci, y + a - 1, x + b - 1]
// (zero outside the image). Both tensors are copied into planes with a one-pixel zero border (pitch W + 2); then
// tap (a, b) is one product of dy's planes (Cout x pixels) with x's planes read (a - 1) * (W + 2) + b - 1 floats
// further on: every position where the shifted read wraps around a row lands on dy's zero border, so each tap is
// a single GEMM over contiguous memory (OpenBLAS), with no im2col copy. Threads take contiguous runs of the
// (image, tap) products; the products are added up in item order (SumItems' rule).
int Conv3x3BackWeight(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 3) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[1] != 4 || ndims[2] != 4) return 3;
  const int64_t n = shapes[0][0], cin = shapes[0][1], h = shapes[0][2], w = shapes[0][3], cout = shapes[1][1];
  if (n < 0 || cin < 1 || h < 1 || w < 1 || cout < 1 || shapes[1][0] != n || shapes[1][2] != h || shapes[1][3] != w)
    return 3;
  if (shapes[2][0] != cout || shapes[2][1] != cin || shapes[2][2] != 3 || shapes[2][3] != 3) return 3;
  float *dw = static_cast<float *>(params[2]);
  if (n == 0) {
    std::memset(dw, 0, sizeof(float) * cout * cin * 9);
    return 0;
  }
  if (!cf_blas::LoadBlas()) return 2;
  const float *x = static_cast<const float *>(params[0]);
  const float *dy = static_cast<const float *>(params[1]);
  const int64_t pw = w + 2, plane = (h + 2) * pw, first = pw + 1, span = plane - 2 * first;
  const int64_t block = cout * cin;
  std::vector<float> parts(n * 9 * block);  // item (image, tap): its (Cout x Cin) product
  cf_threads::Parallel([&](int t, int nt) {
    int64_t i0, i1;
    cf_threads::Split(n * 9, t, nt, &i0, &i1);
    if (i1 <= i0) return;
    static thread_local std::vector<float> xp, dyp;
    xp.assign(cin * plane, 0.0f);
    dyp.assign(cout * plane, 0.0f);
    int64_t padded = -1;  // the image now in xp / dyp
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t img = item / 9, tap = item % 9;
      if (img != padded) {
        for (int64_t c = 0; c < cin; ++c)
          for (int64_t r = 0; r < h; ++r)
            std::memcpy(&xp[c * plane + (r + 1) * pw + 1], x + ((img * cin + c) * h + r) * w, sizeof(float) * w);
        for (int64_t c = 0; c < cout; ++c)
          for (int64_t r = 0; r < h; ++r)
            std::memcpy(&dyp[c * plane + (r + 1) * pw + 1], dy + ((img * cout + c) * h + r) * w, sizeof(float) * w);
        padded = img;
      }
      const int64_t shift = (tap / 3 - 1) * pw + tap % 3 - 1;
      cf_blas::Gemm(false, true, cout, cin, span, dyp.data() + first, plane, xp.data() + first + shift, plane,
                    parts.data() + item * block, cin);
    }
  });
  // dw[co, ci, tap] = the images' products for that tap, added in image order (item = image * 9 + tap)
  for (int64_t e = 0; e < block; ++e)
    for (int64_t tap = 0; tap < 9; ++tap) {
      float v = 0.0f;
      for (int64_t img = 0; img < n; ++img) v += parts[(img * 9 + tap) * block + e];
      dw[e * 9 + tap] = v;
    }
  return 0;
}

// The training forms of the stride-2 convolution (no bias; the network's first layer, 3 -> 32 channels on the full
// input). Forward: Conv3x3 with a zero bias over the whole tensor. Weight gradient: dw (Cout x Cin*9) = sum over
// bands of output rows of dy's band (Cout x pixels) . im2col(x)^T, one GEMM per band. Input gradient: the im2col
// matrix's gradient W^T . dy per band, scattered back onto dx (col2im); bands of one image share input rows, so
// threads take whole images.
void Col2imAdd(const float *col, int64_t cin, int64_t h, int64_t w, int64_t wo, int64_t i0, int64_t i1, float *dx) {
  const int64_t cols = (i1 - i0) * wo;
  for (int64_t ci = 0; ci < cin; ++ci)
    for (int ki = 0; ki < 3; ++ki)
      for (int kj = 0; kj < 3; ++kj) {
        const float *src = col + ((ci * 3 + ki) * 3 + kj) * cols;
        for (int64_t i = i0; i < i1; ++i, src += wo) {
          const int64_t r = 2 * i + ki - 1;
          if (r < 0 || r >= h) continue;
          float *row = dx + (ci * h + r) * w;
          for (int64_t j = 0; j < wo; ++j) {
            const int64_t c = 2 * j + kj - 1;
            if (c >= 0 && c < w) row[c] += src[j];
          }
        }
      }
}

int Conv3x3(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int stride, int act);

int Conv3x3S2Train(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, TrainPass pass) {
  // the input gradient also takes x (or any tensor of its shape): Ho, Wo do not determine H, W
  if (nparam != (pass == kBackInput ? 4 : 3)) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  for (int i = 0; i < nparam; ++i)
    if (ndims[i] != 4) return 3;
  if (pass == kBackInput && std::memcmp(shapes[2], shapes[3], 4 * sizeof(int64_t)) != 0) return 3;
  if (pass == kForward) {  // (x, w) -> y
    if (shapes[1][0] < 1) return 3;
    static thread_local std::vector<float> zeros;
    zeros.assign(shapes[1][0], 0.0f);
    float region[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int64_t bias_shape[1] = {shapes[1][0]}, region_shape[1] = {4};
    void *p[5] = {params[0], params[1], zeros.data(), region, params[2]};
    int nd[5] = {4, 4, 1, 1, 4};
    int64_t *sh[5] = {shapes[0], shapes[1], bias_shape, region_shape, shapes[2]};
    const char *dt[5] = {dtypes[0], dtypes[0], dtypes[0], dtypes[0], dtypes[0]};
    return Conv3x3(5, p, nd, sh, dt, 2, kNone);
  }
  // back input: (dy (N,Cout,Ho,Wo), w (Cout,Cin,3,3)) -> dx (N,Cin,H,W); back weight: (x, dy) -> dw (Cout,Cin,3,3)
  const bool back_input = pass == kBackInput;
  const int64_t *xs = back_input ? shapes[2] : shapes[0], *dys = back_input ? shapes[0] : shapes[1];
  const int64_t *ws = back_input ? shapes[1] : shapes[2];
  const int64_t n = xs[0], cin = xs[1], h = xs[2], w = xs[3], cout = dys[1];
  const int64_t ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1;
  if (n < 0 || cin < 1 || h < 1 || w < 1 || cout < 1) return 3;
  if (dys[0] != n || dys[2] != ho || dys[3] != wo) return 3;
  if (ws[0] != cout || ws[1] != cin || ws[2] != 3 || ws[3] != 3) return 3;
  float *out = static_cast<float *>(params[nparam - 1]);
  const int64_t kdim = cin * 9, plane = ho * wo;
  if (back_input) {
    std::memset(out, 0, sizeof(float) * n * cin * h * w);
  } else if (n == 0) {
    std::memset(out, 0, sizeof(float) * cout * kdim);
  }
  if (n == 0) return 0;
  if (!cf_blas::LoadBlas()) return 2;
  const float *dy = static_cast<const float *>(params[back_input ? 0 : 1]);
  const float *other = static_cast<const float *>(params[back_input ? 1 : 0]);  // w, or x
  int64_t rows = kPatchFloats / (kdim * wo);
  if (rows < 1) rows = 1;
  const int64_t bands = (ho + rows - 1) / rows;
  std::vector<float> parts(back_input ? 0 : n * bands * cout * kdim);  // back weight: one product per item
  cf_threads::Parallel([&](int t, int nt) {
    // back weight: contiguous runs of (image, band) items; back input: whole images
    int64_t first, last;
    cf_threads::Split(back_input ? n : n * bands, t, nt, &first, &last);
    static thread_local std::vector<float> col;
    if (static_cast<int64_t>(col.size()) < kdim * rows * wo) col.resize(kdim * rows * wo);
    for (int64_t item = first; item < last; ++item) {
      // back input: item = an image, all its bands; back weight: item = one band of an image
      const int64_t img = back_input ? item : item / bands;
      const int64_t b0 = back_input ? 0 : item % bands, b1 = back_input ? bands : b0 + 1;
      for (int64_t band = b0; band < b1; ++band) {
        const int64_t i0 = band * rows, i1 = i0 + rows < ho ? i0 + rows : ho, cols = (i1 - i0) * wo;
        const float *dyb = dy + img * cout * plane + i0 * wo;
        if (back_input) {  // dcol = W^T . dy_band, scattered onto dx
          cf_blas::Gemm(true, false, kdim, cols, cout, other, kdim, dyb, plane, col.data(), cols);
          Col2imAdd(col.data(), cin, h, w, wo, i0, i1, out + img * cin * h * w);
        } else {  // dw += dy_band . im2col^T
          Im2col(other + img * cin * h * w, cin, h, w, h, w, wo, 2, i0, i1, col.data());
          cf_blas::Gemm(false, true, cout, kdim, cols, dyb, plane, col.data(), cols,
                        parts.data() + item * cout * kdim, kdim);
        }
      }
    }
  });
  if (!back_input) SumItems(parts, n * bands, cout * kdim, out);
  return 0;
}

// CfConv3x3HeadsReluValid: the stride-1 convolution with ReLU (by Winograd, whatever its channels) followed by
// CenterFace's four heads, whose outputs are written instead of the convolution's (see the header).
int Conv3x3Heads(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr int kHeads = 4;
  if (nparam != 4 + 2 * kHeads + kHeads) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[1] != 4) return 3;
  const int64_t n = shapes[0][0], cin = shapes[0][1], h = shapes[0][2], w = shapes[0][3], cout = shapes[1][0];
  if (n < 0 || cin < 1 || h < 1 || w < 1 || cout < 1) return 3;
  if (shapes[1][1] != cin || shapes[1][2] != 3 || shapes[1][3] != 3 || Count(ndims[2], shapes[2]) != cout) return 3;
  if (ndims[3] != 1 || shapes[3][0] != 4) return 5;
  int64_t vh, vw;
  if (!ValidPlane(static_cast<const float *>(params[3]), h, w, &vh, &vw)) return 5;
  HeadsOut heads;
  std::vector<float> weights, biases;
  heads.rows = 0;
  for (int hd = 0; hd < kHeads; ++hd) {
    const int wi = 4 + 2 * hd, oi = 4 + 2 * kHeads + hd;
    const int64_t rows = Count(ndims[wi + 1], shapes[wi + 1]);
    if (rows < 1 || heads.rows + rows > HeadsOut::kMaxRows || Count(ndims[wi], shapes[wi]) != rows * cout) return 3;
    if (ndims[oi] != 4 || shapes[oi][0] != n || shapes[oi][1] != rows || shapes[oi][2] != h || shapes[oi][3] != w)
      return 3;
    const float *wt = static_cast<const float *>(params[wi]), *bt = static_cast<const float *>(params[wi + 1]);
    weights.insert(weights.end(), wt, wt + rows * cout);
    biases.insert(biases.end(), bt, bt + rows);
    for (int64_t r = 0; r < rows; ++r) {
      heads.out[heads.rows + r] = static_cast<float *>(params[oi]) + r * h * w;
      heads.image[heads.rows + r] = rows * h * w;
    }
    heads.rows += rows;
  }
  if (n == 0) return 0;
  const int km = WideVectors() ? 12 : 6;
  std::vector<float> panels((heads.rows + km - 1) / km * km * cout);
  PackPanels(weights.data(), heads.rows, cout, km, panels.data());
  heads.panels = panels.data();
  heads.bias = biases.data();
  const float *x = static_cast<const float *>(params[0]);
  const float *k = static_cast<const float *>(params[1]);
  const float *bias = static_cast<const float *>(params[2]);
  if (WideVectors()) {
    WinogradConv3x3<kRelu, 16, 12>(x, k, bias, nullptr, n, cin, h, w, cout, vh, vw, &heads);
  } else {
    WinogradConv3x3<kRelu, 8, 6>(x, k, bias, nullptr, n, cin, h, w, cout, vh, vw, &heads);
  }
  return 0;
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


// The training forms of the transposed convolution (no bias). Forward: ConvT2x2 with a zero bias. Both gradients
// read dy's 2x2 output blocks as the matrix G (4*Cout x pixels of x) that the forward pass scatters (GatherBlocks):
// the input gradient is dx = W . G (W as stored, Cin x 4*Cout), the weight gradient dw = sum over images of X . G^T;
// one GEMM per band of input rows, as in the forward pass.

// G for input rows [i0, i1) of one image: row co * 4 + a * 2 + b, column (i - i0) * w + j is dy[co, 2i + a, 2j + b].
CF_CLONES void GatherBlocks(const float *__restrict dyn, int64_t cout, int64_t h, int64_t w, int64_t i0, int64_t i1,
                            float *__restrict g) {
  const int64_t cols = (i1 - i0) * w, out_plane = 4 * h * w;
  for (int64_t co = 0; co < cout; ++co)
    for (int a = 0; a < 2; ++a) {
      float *g0 = g + (co * 4 + a * 2) * cols, *g1 = g0 + cols;
      for (int64_t i = i0; i < i1; ++i) {
        const float *row = dyn + co * out_plane + (2 * i + a) * 2 * w;
        float *e = g0 + (i - i0) * w, *o = g1 + (i - i0) * w;
        for (int64_t j = 0; j < w; ++j) {
          e[j] = row[2 * j];
          o[j] = row[2 * j + 1];
        }
      }
    }
}

int ConvT2x2Train(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, TrainPass pass) {
  if (nparam != 3) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[1] != 4 || ndims[2] != 4) return 3;
  if (pass == kForward) {  // (x, w) -> y: the inference kernel with a zero bias
    if (shapes[1][1] < 1) return 3;
    static thread_local std::vector<float> zeros;
    zeros.assign(shapes[1][1], 0.0f);
    int64_t bias_shape[1] = {shapes[1][1]};
    void *p[4] = {params[0], params[1], zeros.data(), params[2]};
    int nd[4] = {4, 4, 1, 4};
    int64_t *sh[4] = {shapes[0], shapes[1], bias_shape, shapes[2]};
    const char *dt[4] = {dtypes[0], dtypes[0], dtypes[0], dtypes[0]};
    return ConvT2x2(4, p, nd, sh, dt, kNone);
  }
  // back input: (dy (N,Cout,2h,2w), w (Cin,Cout,2,2)) -> dx (N,Cin,h,w); back weight: (x, dy) -> dw (Cin,Cout,2,2)
  const bool back_input = pass == kBackInput;
  const int64_t *xs = back_input ? shapes[2] : shapes[0], *dys = back_input ? shapes[0] : shapes[1];
  const int64_t *ws = back_input ? shapes[1] : shapes[2];
  const int64_t n = xs[0], cin = xs[1], h = xs[2], w = xs[3], cout = dys[1];
  if (n < 0 || cin < 1 || h < 1 || w < 1 || cout < 1) return 3;
  if (dys[0] != n || dys[2] != 2 * h || dys[3] != 2 * w) return 3;
  if (ws[0] != cin || ws[1] != cout || ws[2] != 2 || ws[3] != 2) return 3;
  float *out = static_cast<float *>(params[2]);
  const int64_t m = 4 * cout, hw = h * w;
  if (n == 0) {
    if (!back_input) std::memset(out, 0, sizeof(float) * cin * m);
    return 0;
  }
  if (!cf_blas::LoadBlas()) return 2;
  const float *dy = static_cast<const float *>(params[back_input ? 0 : 1]);
  const float *other = static_cast<const float *>(params[back_input ? 1 : 0]);  // w, or x
  // Bands of ~kPatchFloats of G. The input gradient: at least one band per thread for one image (each dx element is
  // one GEMM's, however the rows are banded). The weight gradient: each image's bands in kQuarters runs whatever the
  // threads, a run's products accumulated in order into its own block, the blocks added in order (SumItems).
  constexpr int64_t kQuarters = 4;
  int64_t rows = kPatchFloats / (m * w);
  if (rows < 1) rows = 1;
  const int threads = cf_threads::Threads();
  if (back_input && n == 1 && (h + rows - 1) / rows < threads) rows = (h + threads - 1) / threads;
  const int64_t bands = (h + rows - 1) / rows;
  const int64_t items = back_input ? n * bands : n * kQuarters;
  std::vector<float> parts(back_input ? 0 : items * cin * m);
  cf_threads::Parallel([&](int t, int nt) {
    int64_t first, last;
    cf_threads::Split(items, t, nt, &first, &last);
    static thread_local std::vector<float> g;
    if (static_cast<int64_t>(g.size()) < m * rows * w) g.resize(m * rows * w);
    for (int64_t item = first; item < last; ++item) {
      // back input: item = one band of an image; back weight: item = one of an image's kQuarters runs of bands
      const int64_t img = back_input ? item / bands : item / kQuarters;
      int64_t b0 = item % bands, b1 = b0 + 1;
      if (!back_input) cf_threads::Split(bands, static_cast<int>(item % kQuarters), kQuarters, &b0, &b1);
      for (int64_t band = b0; band < b1; ++band) {
        const int64_t i0 = band * rows, i1 = i0 + rows < h ? i0 + rows : h, cols = (i1 - i0) * w;
        GatherBlocks(dy + img * cout * 4 * hw, cout, h, w, i0, i1, g.data());
        if (back_input) {  // dx[:, band] = W (Cin x 4*Cout) . G
          cf_blas::Gemm(false, false, cin, cols, m, other, m, g.data(), cols, out + img * cin * hw + i0 * w, hw);
        } else {  // dw's block += X[:, band] . G^T
          cf_blas::Gemm(false, true, cin, m, cols, other + img * cin * hw + i0 * w, hw, g.data(), cols,
                        parts.data() + item * cin * m, m, /*accumulate=*/band > b0);
        }
      }
    }
  });
  if (!back_input) SumItems(parts, items, cin * m, out);
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// One IDA-up node of CenterFace's neck in one call (CfUpSumRelu): y = relu(T x0 + bt) + relu(Wl x1 + bl), T the 2x2
// stride-2 transposed convolution of the coarser map x0 (C0 x h x w) and Wl the 1x1 convolution of the finer map x1
// (C1 x 2h x 2w). As two calls (CfConvT2x2S2BiasRelu, CfPwBiasReluRes) the upsampled map, as large as y, is written
// by one and read back by the other. Here both products run on the register tiles, output row by output row: for
// kTile pixels of x0's row i (2 kTile outputs of row 2i + a), the transposed convolution's two column phases b = 0,
// 1 (one panel set each), interleaved, are added to the lateral product of the same outputs while in L1.

struct UpSum {
  const float *x0, *x1, *up_panels, *bt, *lat_panels, *bl;
  float *y;
  int64_t c0, c1, c, h, w;
  int64_t up_per;  // floats of one (a, b) phase's panels
};

// Output rows [r0, r1) (of all images, row r of image r / (2h)) of y.
template <int L, int kM>
CF_CLONES void UpSumRows(const UpSum &g, int64_t r0, int64_t r1, float *scratch0, float *scratch1) {
  constexpr int kJ = kTile / L;
  const int64_t hw = g.h * g.w, ww = 2 * g.w, out_plane = 4 * hw;
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t img = row / (2 * g.h), R = row % (2 * g.h), i = R / 2, a = R % 2;
    const float *x0 = g.x0 + img * g.c0 * hw, *x1 = g.x1 + img * g.c1 * out_plane;
    float *y = g.y + img * g.c * out_plane + R * ww;
    for (int64_t j0 = 0; j0 < g.w; j0 += kTile) {
      const int64_t low = g.w - j0 < kTile ? g.w - j0 : kTile, outs = 2 * low;
      const float *b0 = x0 + i * g.w + j0, *b1 = x1 + R * ww + 2 * j0;
      int64_t ld0 = hw, ld1 = out_plane;
      // the next tile's inputs, a row of each of c0 + c1 planes: too many streams for the hardware prefetcher
      for (int64_t k = 0; k < g.c1; ++k) {
        __builtin_prefetch(b1 + k * out_plane + 2 * kTile);
        __builtin_prefetch(b1 + k * out_plane + 3 * kTile);
      }
      for (int64_t k = 0; k < g.c0; ++k) __builtin_prefetch(b0 + k * hw + kTile);
      // and the lines of y the next tile will write: with this many planes written at once the hardware prefetcher
      // does not follow, and a store to a line not in cache waits for it to be read (0.48 -> 0.34 ms at 640x480)
      for (int64_t co = 0; co < g.c; ++co) {
        __builtin_prefetch(y + co * out_plane + 2 * j0 + 2 * kTile, 1);
        __builtin_prefetch(y + co * out_plane + 2 * j0 + 3 * kTile, 1);
      }
      if (low < kTile) {  // a short last tile: its inputs zero-padded
        for (int64_t k = 0; k < g.c0; ++k) {
          std::memcpy(scratch0 + k * kTile, b0 + k * hw, sizeof(float) * low);
          std::memset(scratch0 + k * kTile + low, 0, sizeof(float) * (kTile - low));
        }
        for (int64_t k = 0; k < g.c1; ++k) {
          std::memcpy(scratch1 + k * 2 * kTile, b1 + k * out_plane, sizeof(float) * outs);
          std::memset(scratch1 + k * 2 * kTile + outs, 0, sizeof(float) * (2 * kTile - outs));
        }
        b0 = scratch0;
        b1 = scratch1;
        ld0 = kTile;
        ld1 = 2 * kTile;
      }
      for (int64_t co0 = 0; co0 < g.c; co0 += kM) {
        const int m = g.c - co0 < kM ? static_cast<int>(g.c - co0) : kM;
        float up[kM][2 * kTile];  // relu(T x0 + bt) of the 2 kTile outputs, columns in order
        float phase0[kM][kTile];
        for (int b = 0; b < 2; ++b) {
          VecOf<L> acc[kM][kJ];
          PanelProduct<L, kM>(g.c0, g.up_panels + (2 * a + b) * g.up_per + co0 * g.c0, b0, ld0, g.bt + co0, m, acc);
#pragma GCC unroll 16
          for (int r = 0; r < kM; ++r) {
            if (r >= m) break;
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) {
              const VecOf<L> v = ActivateVec<kRelu, L>(acc[r][q]);
              if (b == 0) {
                Store<L>(phase0[r] + q * L, v);
                continue;
              }
              const VecOf<L> e = Load<L>(phase0[r] + q * L);  // columns 2j; v: 2j + 1
              if constexpr (L == 16) {
                typedef int Index __attribute__((vector_size(64)));
                const Index lo = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
                const Index hi = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
                Store<16>(up[r] + 2 * q * L, __builtin_shuffle(e, v, lo));
                Store<16>(up[r] + 2 * q * L + L, __builtin_shuffle(e, v, hi));
              } else {
                typedef int Index __attribute__((vector_size(32)));
                const Index lo = {0, 8, 1, 9, 2, 10, 3, 11}, hi = {4, 12, 5, 13, 6, 14, 7, 15};
                Store<8>(up[r] + 2 * q * L, __builtin_shuffle(e, v, lo));
                Store<8>(up[r] + 2 * q * L + L, __builtin_shuffle(e, v, hi));
              }
            }
          }
        }
        for (int64_t half = 0; half < outs; half += kTile) {
          const int64_t count = outs - half < kTile ? outs - half : kTile;
          VecOf<L> acc[kM][kJ];
          PanelProduct<L, kM>(g.c1, g.lat_panels + co0 * g.c1, b1 + half, ld1, g.bl + co0, m, acc);
#pragma GCC unroll 16
          for (int r = 0; r < kM; ++r) {
            if (r >= m) break;
            float *out = y + (co0 + r) * out_plane + 2 * j0 + half;
            float t[kTile];
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) {
              const VecOf<L> v = ActivateVec<kRelu, L>(acc[r][q]) + Load<L>(up[r] + half + q * L);
              Store<L>(count == kTile ? out + q * L : t + q * L, v);
            }
            if (count < kTile) std::memcpy(out, t, sizeof(float) * count);
          }
        }
      }
    }
  }
}

template <int L, int kM>
void UpSumImages(UpSum g, int64_t n, const float *wt, const float *wl) {
  const int64_t per = (g.c + kM - 1) / kM * kM;
  static thread_local std::vector<float> up, lat, phase;
  g.up_per = per * g.c0;
  up.resize(4 * g.up_per);
  phase.resize(g.c * g.c0);
  for (int ab = 0; ab < 4; ++ab) {  // phase (a, b): the matrix (co, c) = wt[c, co, a, b]
    for (int64_t co = 0; co < g.c; ++co)
      for (int64_t k = 0; k < g.c0; ++k) phase[co * g.c0 + k] = wt[(k * g.c + co) * 4 + ab];
    PackPanels(phase.data(), g.c, g.c0, kM, up.data() + ab * g.up_per);
  }
  lat.resize(per * g.c1);
  PackPanels(wl, g.c, g.c1, kM, lat.data());
  g.up_panels = up.data();
  g.lat_panels = lat.data();
  const int64_t rows = n * 2 * g.h;
  cf_threads::Parallel([&](int t, int threads) {
    float *const scratch0 = ThreadScratch(0, g.c0 * kTile), *const scratch1 = ThreadScratch(1, g.c1 * 2 * kTile);
    int64_t r0, r1;
    cf_threads::Split(rows, t, threads, &r0, &r1);
    UpSumRows<L, kM>(g, r0, r1, scratch0, scratch1);
  });
}

int UpSumRelu(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 7) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[1] != 4 || ndims[3] != 4 || ndims[6] != 4) return 3;
  const int64_t n = shapes[0][0], c0 = shapes[0][1], h = shapes[0][2], w = shapes[0][3], c = shapes[1][1];
  const int64_t c1 = shapes[3][1];
  if (n < 0 || c0 < 1 || h < 1 || w < 1 || c < 1 || c1 < 1) return 3;
  if (shapes[1][0] != c0 || shapes[1][2] != 2 || shapes[1][3] != 2 || Count(ndims[2], shapes[2]) != c) return 3;
  if (shapes[3][0] != n || shapes[3][2] != 2 * h || shapes[3][3] != 2 * w) return 3;
  if (Count(ndims[4], shapes[4]) != c * c1 || shapes[4][0] != c || Count(ndims[5], shapes[5]) != c) return 3;
  if (shapes[6][0] != n || shapes[6][1] != c || shapes[6][2] != 2 * h || shapes[6][3] != 2 * w) return 3;
  if (n == 0) return 0;
  UpSum g{static_cast<const float *>(params[0]), static_cast<const float *>(params[3]), nullptr,
          static_cast<const float *>(params[2]), nullptr, static_cast<const float *>(params[5]),
          static_cast<float *>(params[6]), c0, c1, c, h, w, 0};
  const float *wt = static_cast<const float *>(params[1]), *wl = static_cast<const float *>(params[4]);
  if (WideVectors()) {
    UpSumImages<16, 12>(g, n, wt, wl);
  } else {
    UpSumImages<8, 6>(g, n, wt, wl);
  }
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
int CfConv3x3HeadsReluValid(CF_SIG) { return Conv3x3Heads(CF_ARGS); }
int CfConv3x3S1(CF_SIG) { return Conv3x3Train(CF_ARGS, false); }
int CfConv3x3S1BackInput(CF_SIG) { return Conv3x3Train(CF_ARGS, true); }
int CfConv3x3S1BackWeight(CF_SIG) { return Conv3x3BackWeight(CF_ARGS); }
int CfConv3x3S2(CF_SIG) { return Conv3x3S2Train(CF_ARGS, kForward); }
int CfConv3x3S2BackInput(CF_SIG) { return Conv3x3S2Train(CF_ARGS, kBackInput); }
int CfConv3x3S2BackWeight(CF_SIG) { return Conv3x3S2Train(CF_ARGS, kBackWeight); }
int CfConvT2x2S2Bias(CF_SIG) { return ConvT2x2(CF_ARGS, kNone); }
int CfConvT2x2S2BiasRelu(CF_SIG) { return ConvT2x2(CF_ARGS, kRelu); }
int CfConvT2x2S2(CF_SIG) { return ConvT2x2Train(CF_ARGS, kForward); }
int CfConvT2x2S2BackInput(CF_SIG) { return ConvT2x2Train(CF_ARGS, kBackInput); }
int CfConvT2x2S2BackWeight(CF_SIG) { return ConvT2x2Train(CF_ARGS, kBackWeight); }
int CfUpSumRelu(CF_SIG) { return UpSumRelu(CF_ARGS); }
}
