// A whole MobileNetV2 inverted-residual block for inference (BatchNorm folded) in one MindSpore AOT custom
// operator: 1x1 expansion + bias + activation -> 3x3 depthwise (stride 1 or 2, padding 1) + bias + activation ->
// 1x1 projection + bias (+ the block input, when the block has a residual connection).
//
// Run layer by layer, the expanded tensor (6x the block's input channels, at the input resolution) is written to
// memory by the expansion and read back by the depthwise convolution, and the depthwise output again by the
// projection; at the high-resolution blocks of the network this memory traffic, not arithmetic, is the cost. Here
// each thread takes a contiguous run of bands of output rows and, band by band, expands just the input rows the band
// needs into a buffer that stays in its cache (the 1 or 2 rows it shares with the previous band are kept, not
// recomputed), convolves it, and projects the result straight into the output: the expanded tensor never exists in
// full. The two 1x1 convolutions are GEMMs in OpenBLAS (see cf_blas.h).
//
// Entry points (MindSpore's AOT signature, see kernels/depthwise.cc; inputs then the output, 0 = success):
//   CfIrS{1,2}{Relu,Relu6}{,Res}(x (N,Cin,H,W), we (E,Cin,1,1), be (E,), wd (E,1,3,3), bd (E,),
//                                wp (Cout,E,1,1), bp (Cout,), valid (4,)) -> y (N,Cout,Ho,Wo)
//   CfIrDwS{1,2}{Relu,Relu6}(x, wd (Cin,1,3,3), bd, wp (Cout,Cin,1,1), bp, valid) -> y
//       a block without expansion (MobileNetV2's first, t = 1): depthwise on x itself, then the projection
// with Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1; `Res` adds x (needs s == 1 and Cin == Cout). `valid` is the
// valid-region input of kernels/depthwise.cc: expanded values at input rows / columns outside the image are taken as
// zero (the depthwise convolution's own zero padding of the unpadded image), so the valid part of the output equals
// the unpadded network's; outside it the output is finite but meaningless (later layers ignore it the same way).
// Status codes: 1 bad arguments, 2 OpenBLAS could not be loaded.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cf_blas.h"
#include "cf_common.h"
#include "cf_threads.h"

namespace {

using namespace cf_common;  // NOLINT(build/namespaces): IsF32, Count, activations

template <int A>
inline float Activate(float v) {
  if (A == kRelu) return v > 0.0f ? v : 0.0f;
  return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
}

// A zero-padded input row of the depthwise convolution: padded column c (0 <= c < w + 2) holds v(c) = 0 for c == 0
// and c > valid_w, else the input column c - 1 (with the expansion's bias and activation, for PadRow). With stride 1
// the row is stored as it is; with stride 2 it is stored split, the even columns first and then the odd ones
// (SplitEven(w) floats, then the rest), so that each of the three taps of a stride-2 output row is a unit-stride
// run (output j reads columns 2j, 2j + 1, 2j + 2: even[j], odd[j], even[j + 1]; for an even w the last odd
// column, the right padding, is never read).
inline int64_t SplitEven(int64_t w) { return (w + 3) / 2; }

// even[j] = x[2j] (j < wo), odd[j] = x[2j - 1] (j <= wo; odd[0] = 0), zero where the column is >= vw.
CF_CLONES void SplitRow(const float *__restrict x, int64_t vw, int64_t wo, float *__restrict even,
                        float *__restrict odd) {
  odd[0] = 0.0f;
  const int64_t pairs = vw / 2 < wo ? vw / 2 : wo;  // j with both 2j and 2j + 1 inside the valid columns
  for (int64_t j = 0; j < pairs; ++j) {
    even[j] = x[2 * j];
    odd[j + 1] = x[2 * j + 1];
  }
  for (int64_t j = pairs; j < wo; ++j) {
    even[j] = 2 * j < vw ? x[2 * j] : 0.0f;
    odd[j + 1] = 2 * j + 1 < vw ? x[2 * j + 1] : 0.0f;
  }
}

// dst = the padded row of act(src + b) (see above).
template <int A, int S>
CF_CLONES void PadRow(const float *__restrict src, float *__restrict dst, float b, int64_t w, int64_t valid_w) {
  if (S == 1) {
    dst[0] = 0.0f;
#pragma omp simd
    for (int64_t j = 0; j < valid_w; ++j) dst[1 + j] = Activate<A>(src[j] + b);
    for (int64_t j = valid_w; j <= w; ++j) dst[1 + j] = 0.0f;
    return;
  }
  float *even = dst, *odd = dst + SplitEven(w);
  even[0] = 0.0f;
  const int64_t pairs = valid_w / 2;  // input columns 2k (-> odd[k]) and 2k + 1 (-> even[k + 1])
#pragma omp simd
  for (int64_t k = 0; k < pairs; ++k) {
    odd[k] = Activate<A>(src[2 * k] + b);
    even[k + 1] = Activate<A>(src[2 * k + 1] + b);
  }
  for (int64_t c = 2 * pairs + 1; c < w + 2; ++c) {  // the rest of the padded columns
    const float v = c <= valid_w ? Activate<A>(src[c - 1] + b) : 0.0f;
    if (c % 2 == 0) {
      even[c / 2] = v;
    } else {
      odd[c / 2] = v;
    }
  }
}

// dst = the padded row of src (see above).
template <int S>
inline void PadCopy(const float *__restrict src, float *__restrict dst, int64_t w, int64_t valid_w) {
  if (S == 1) {
    dst[0] = 0.0f;
    std::memcpy(dst + 1, src, sizeof(float) * valid_w);
    for (int64_t j = valid_w; j <= w; ++j) dst[1 + j] = 0.0f;
    return;
  }
  // padded column 2k + 1 is input column 2k and 2k + 2 is 2k + 1: SplitRow's even / odd columns, in that order
  SplitRow(src, valid_w, (w + 1) / 2, dst + SplitEven(w), dst);
}

// One depthwise output row from three padded input rows r0, r1, r2 of an input row w floats wide (w + 2 with the
// padding; stored split for S = 2, see PadRow).
template <int A, int S>
CF_CLONES void DwRow(const float *__restrict r0, const float *__restrict r1, const float *__restrict r2,
                     const float *k, float b, int64_t w, int64_t wo, float *__restrict out) {
  const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
  if (S == 1) {
#pragma omp simd
    for (int64_t j = 0; j < wo; ++j) {
      const float v = b + k0 * r0[j] + k1 * r0[j + 1] + k2 * r0[j + 2] + k3 * r1[j] + k4 * r1[j + 1] +
                      k5 * r1[j + 2] + k6 * r2[j] + k7 * r2[j + 1] + k8 * r2[j + 2];
      out[j] = Activate<A>(v);
    }
    return;
  }
  const int64_t ne = SplitEven(w);
  const float *o0 = r0 + ne, *o1 = r1 + ne, *o2 = r2 + ne;
#pragma omp simd
  for (int64_t j = 0; j < wo; ++j) {
    const float v = b + k0 * r0[j] + k1 * o0[j] + k2 * r0[j + 1] + k3 * r1[j] + k4 * o1[j] + k5 * r1[j + 1] +
                    k6 * r2[j] + k7 * o2[j] + k8 * r2[j + 1];
    out[j] = Activate<A>(v);
  }
}

// y[c, cols] += bias[c] (+ res[c, cols]) over `count` columns of each output channel row (ld apart).
CF_CLONES void AddBias(float *y, const float *bias, const float *res, int64_t cout, int64_t count, int64_t ld) {
  for (int64_t c = 0; c < cout; ++c) {
    float *row = y + c * ld;
    const float b = bias[c];
    if (res != nullptr) {
      const float *rrow = res + c * ld;
#pragma omp simd
      for (int64_t j = 0; j < count; ++j) row[j] += b + rrow[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < count; ++j) row[j] += b;
    }
  }
}

// Bytes of band buffers per thread: CENTERFACE_BLOCK_BAND_KB (a tuning knob), default 1 MB.
inline int64_t BandBytes() {
  static const int64_t bytes = [] {
    const int64_t kb = EnvInt("CENTERFACE_BLOCK_BAND_KB", 0);
    return (kb > 0 ? kb : 1024) * 1024;
  }();
  return bytes;
}

// Largest expanded image (E x H x W floats, in bytes) computed whole rather than in bands:
// CENTERFACE_BLOCK_WHOLE_KB (a tuning knob; read on every call, so that tests can cover both ways), default 3 MB.
inline int64_t WholeBytes() {
  const int64_t kb = EnvInt("CENTERFACE_BLOCK_WHOLE_KB", -1);
  return (kb >= 0 ? kb : 3072) * 1024;
}

struct Shape {
  int64_t n, cin, h, w, e, cout, ho, wo, valid_h, valid_w;
};

// The block on whole images, for the small (low-resolution) ones: in bands, every thread would read both weight
// matrices and OpenBLAS would pack them again for every band, while here they are read once. Phase 1 splits the
// expanded channels between the threads (expansion GEMM over the whole image, then the depthwise convolution one
// channel plane at a time) into a buffer of all depthwise outputs; phase 2 splits the output pixels (projection
// GEMM, bias, residual; splitting the output channels instead makes the GEMMs too flat when Cout is small).
template <int A, int S, bool R, int X>
void WholeImage(const Shape &s, const float *x, const float *we, const float *be, const float *wd, const float *bd,
                const float *wp, const float *bp, float *y) {
  const int64_t hw = s.h * s.w, howo = s.ho * s.wo, pw = s.w + 2, ph = s.h + 2;
  static thread_local std::vector<float> dw_all;  // E x Ho*Wo per image
  if (static_cast<int64_t>(dw_all.size()) < s.n * s.e * howo) dw_all.resize(s.n * s.e * howo);
  float *dw = dw_all.data();
  cf_threads::Parallel([&](int t, int threads) {
    int64_t e0, e1;
    cf_threads::SplitChunks(s.e, 16, t, threads, &e0, &e1);
    if (e1 <= e0) return;
    static thread_local std::vector<float> raw, plane;
    if (X && static_cast<int64_t>(raw.size()) < (e1 - e0) * hw) raw.resize((e1 - e0) * hw);
    if (static_cast<int64_t>(plane.size()) < ph * pw) plane.resize(ph * pw);
    for (int64_t n = 0; n < s.n; ++n) {
      const float *xn = x + n * s.cin * hw;
      if (X) cf_blas::Gemm(false, false, e1 - e0, hw, s.cin, we + e0 * s.cin, s.cin, xn, hw, raw.data(), hw);
      for (int64_t e = e0; e < e1; ++e) {
        float *p = plane.data();
        for (int64_t r = 0; r < ph; ++r) {  // padded row r holds input row r - 1
          if (r == 0 || r > s.valid_h) {
            std::memset(p + r * pw, 0, sizeof(float) * pw);
          } else if (X) {
            PadRow<A, S>(raw.data() + (e - e0) * hw + (r - 1) * s.w, p + r * pw, be[e], s.w, s.valid_w);
          } else {
            PadCopy<S>(xn + e * hw + (r - 1) * s.w, p + r * pw, s.w, s.valid_w);
          }
        }
        float *out = dw + (n * s.e + e) * howo;
        for (int64_t o = 0; o < s.ho; ++o) {
          const float *r0 = p + o * S * pw;
          DwRow<A, S>(r0, r0 + pw, r0 + 2 * pw, wd + 9 * e, bd[e], s.w, s.wo, out + o * s.wo);
        }
      }
    }
  });
  cf_threads::Parallel([&](int t, int threads) {
    int64_t p0, p1;
    cf_threads::SplitChunks(howo, 16, t, threads, &p0, &p1);
    if (p1 <= p0) return;
    for (int64_t n = 0; n < s.n; ++n) {
      float *yn = y + n * s.cout * howo + p0;
      cf_blas::Gemm(false, false, s.cout, p1 - p0, s.e, wp, s.e, dw + n * s.e * howo + p0, howo, yn, howo);
      AddBias(yn, bp, R ? x + n * s.cin * hw + p0 : nullptr, s.cout, p1 - p0, howo);
    }
  });
}

// Expansion kinds: none (inputs x, wd, bd, wp, bp, valid) or 1x1 (x, we, be, wd, bd, wp, bp, valid).
enum Expand { kNoExpand = 0, kPointwise = 1 };

template <int A, int S, bool R, int X>
int Block(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  const int off = X ? 2 : 0;  // index shift of wd.. after the expansion's two inputs
  if (nparam != 7 + off) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  const int out = 6 + off;
  if (ndims[0] != 4 || ndims[out] != 4) return 1;
  Shape s{shapes[0][0], shapes[0][1], shapes[0][2], shapes[0][3], X ? shapes[2][0] : shapes[0][1],
          shapes[4 + off][0], 0, 0, 0, 0};
  if (ndims[2 + off] != 1 || ndims[4 + off] != 1 || s.h < 1 || s.w < 1 || s.cin < 1 || s.e < 1 || s.cout < 1)
    return 1;
  s.ho = (s.h - 1) / S + 1;
  s.wo = (s.w - 1) / S + 1;
  if ((X && Count(ndims[1], shapes[1]) != s.e * s.cin) || Count(ndims[1 + off], shapes[1 + off]) != s.e * 9 ||
      Count(ndims[2 + off], shapes[2 + off]) != s.e || Count(ndims[3 + off], shapes[3 + off]) != s.cout * s.e ||
      Count(ndims[5 + off], shapes[5 + off]) != 4)
    return 1;
  if (shapes[out][0] != s.n || shapes[out][1] != s.cout || shapes[out][2] != s.ho || shapes[out][3] != s.wo) return 1;
  if (R && (S != 1 || s.cin != s.cout)) return 1;
  // valid region (cf_common.h ValidPlane)
  if (!ValidPlane(static_cast<const float *>(params[5 + off]), s.h, s.w, &s.valid_h, &s.valid_w)) return 1;
  if (!cf_blas::LoadBlas()) return 2;
  const float *x = static_cast<const float *>(params[0]);
  const float *we = X ? static_cast<const float *>(params[1]) : nullptr;
  const float *be = X ? static_cast<const float *>(params[2]) : nullptr;
  const float *wd = static_cast<const float *>(params[1 + off]);
  const float *bd = static_cast<const float *>(params[2 + off]);
  const float *wp = static_cast<const float *>(params[3 + off]);
  const float *bp = static_cast<const float *>(params[4 + off]);
  float *y = static_cast<float *>(params[out]);
  if (s.e * s.h * s.w * 4 <= WholeBytes()) {
    WholeImage<A, S, R, X>(s, x, we, be, wd, bd, wp, bp, y);
    return 0;
  }

  // Output rows per band: the band's buffers (expanded rows, padded copy, depthwise rows) within BandBytes(), but
  // no more than an even share of the image per thread (every thread gets work).
  const int64_t per_out_row = s.e * 4 * (S * (2 * s.w + 2) + s.wo);
  int64_t band = BandBytes() / (per_out_row > 0 ? per_out_row : 1);
  const int64_t share = (s.ho + cf_threads::Threads() - 1) / cf_threads::Threads();
  if (band > share) band = share;
  if (band < 1) band = 1;
  if (band > s.ho) band = s.ho;
  const int64_t bands = (s.ho + band - 1) / band;
  const int64_t hw = s.h * s.w, howo = s.ho * s.wo;
  const int64_t rows_buf = (band - 1) * S + 3;  // input rows of a full band (channel stride of the buffer)
  const int64_t pw = s.w + 2;
  const int64_t items = s.n * bands;
  cf_threads::Parallel([&](int t, int threads) {
    static thread_local std::vector<float> raw, padded, dw;
    if (X && static_cast<int64_t>(raw.size()) < s.e * rows_buf * s.w) raw.resize(s.e * rows_buf * s.w);
    if (static_cast<int64_t>(padded.size()) < s.e * rows_buf * pw) padded.resize(s.e * rows_buf * pw);
    if (static_cast<int64_t>(dw.size()) < s.e * band * s.wo) dw.resize(s.e * band * s.wo);
    // Each thread takes a contiguous run of bands, so that the (3 - S) input rows a band shares with the previous
    // one are moved, not expanded again.
    int64_t first, last;
    cf_threads::Split(items, t, threads, &first, &last);
    for (int64_t item = first; item < last; ++item) {
      const int64_t n = item / bands, o0 = (item % bands) * band;
      const int64_t o1 = o0 + band < s.ho ? o0 + band : s.ho;
      const int64_t rows_out = o1 - o0;
      const int64_t i_lo = o0 * S - 1;                  // first input row of the band (may be -1)
      const int64_t rows_in = (rows_out - 1) * S + 3;   // input rows i_lo .. i_lo + rows_in - 1
      // rows kept from the previous band of the same image: buffer rows S*band .. S*band + 2 - S
      const int64_t keep = (item > first && item % bands != 0) ? 3 - S : 0;
      if (keep > 0) {
        for (int64_t e = 0; e < s.e; ++e) {
          float *base = padded.data() + e * rows_buf * pw;
          std::memmove(base, base + S * band * pw, sizeof(float) * keep * pw);
        }
      }
      // new input rows i_lo + keep .. i_lo + rows_in - 1; those inside the valid image: [v0, v1)
      const int64_t v0 = i_lo + keep < 0 ? 0 : i_lo + keep;
      int64_t v1 = i_lo + rows_in;
      if (v1 > s.valid_h) v1 = s.valid_h;
      const int64_t nv = v1 > v0 ? v1 - v0 : 0;
      const float *xn = x + n * s.cin * hw;
      // 1. expansion of the new valid input rows: raw (E x nv*W) = we . x[:, v0:v1 rows]
      if (X == kPointwise && nv > 0)
        cf_blas::Gemm(false, false, s.e, nv * s.w, s.cin, we, s.cin, xn + v0 * s.w, hw, raw.data(), nv * s.w);
      // 2. bias + activation into zero-padded rows (rows / columns outside the valid image are zero)
      for (int64_t e = 0; e < s.e; ++e) {
        for (int64_t r = keep; r < rows_in; ++r) {
          float *dst = padded.data() + (e * rows_buf + r) * pw;
          const int64_t ir = i_lo + r;
          if (ir < v0 || ir >= v1) {
            std::memset(dst, 0, sizeof(float) * pw);
          } else if (X) {
            PadRow<A, S>(raw.data() + e * nv * s.w + (ir - v0) * s.w, dst, be[e], s.w, s.valid_w);
          } else {
            PadCopy<S>(xn + e * hw + ir * s.w, dst, s.w, s.valid_w);
          }
        }
      }
      // 3. depthwise 3x3 + bias + activation
      for (int64_t e = 0; e < s.e; ++e) {
        const float *base = padded.data() + e * rows_buf * pw;
        for (int64_t o = 0; o < rows_out; ++o) {
          const float *r0 = base + (o * S) * pw;
          DwRow<A, S>(r0, r0 + pw, r0 + 2 * pw, wd + 9 * e, bd[e], s.w, s.wo,
                      dw.data() + (e * rows_out + o) * s.wo);
        }
      }
      // 4. projection straight into the output rows, + bias (+ residual)
      float *yn = y + n * s.cout * howo + o0 * s.wo;
      cf_blas::Gemm(false, false, s.cout, rows_out * s.wo, s.e, wp, s.e, dw.data(), rows_out * s.wo, yn, howo);
      AddBias(yn, bp, R ? xn + o0 * s.wo : nullptr, s.cout, rows_out * s.wo, howo);
    }
  });
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// The network's stem fused with its first block: 3x3 stride-2 conv (Cin -> C, padding 1) + bias + activation ->
// 3x3 depthwise (stride 1) + bias + activation -> 1x1 projection (C -> Cout) + bias. At full resolution the stem's
// output (C = 32 channels at half the input size, ~10 MB at 640x480) would be written to memory and read back; here
// it exists only as a band of rows in cache. The stem runs directly (not as im2col + GEMM, whose K = 27 is too
// small for a GEMM and whose stride-2 gather is slow): every input row is split once into its even and odd columns,
// so each of the 27 taps is a unit-stride row, and 8 channels x 16 outputs are accumulated in vector registers.

// Vectors of L floats: L = 16 (one AVX-512 register) or 8 (one AVX2 register). The width is a template argument,
// not one wide type for every clone: GCC lowers a 16-float vector on AVX2 through the stack, not into register
// pairs, which made the stem 4x slower there. The stem is tiled in 16 output pixels (kJ = 16 / L vectors).
template <int L>
struct Vec;
template <>
struct Vec<8> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct Vec<16> {
  typedef float type __attribute__((vector_size(64)));
};

template <int L>
inline typename Vec<L>::type Load(const float *p) {
  typename Vec<L>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <int L>
inline void Store(float *p, typename Vec<L>::type v) {
  std::memcpy(p, &v, sizeof(v));
}

template <int A, int L>
inline typename Vec<L>::type ActivateVec(typename Vec<L>::type v) {
  typedef typename Vec<L>::type V;
  const V zero = {};
  v = v > zero ? v : zero;
  if (A == kRelu6) {
    const V six = zero + 6.0f;
    v = v < six ? v : six;
  }
  return v;
}

// One stem output row for all C channels: out[c * ld + 1 + j] = act(bs[c] + sum_t ws[c * 27 + t] * taps[t][j]) for
// j < vwo, zero for vwo <= j < wo, and zero borders out[c * ld] and out[c * ld + wo + 1]. taps[t], t = (ci * 3 + ki) *
// 3 + kj, is the input row of channel ci and kernel row ki shifted to kernel column kj (Cin = ntaps / 9). kC
// channels x 16 pixels are accumulated in registers at a time.
template <int A, int L, int kC>
CF_CLONES void StemRow(const float *const *taps, int ntaps, const float *ws, const float *bs, int64_t c_out,
                       int64_t wo, int64_t vwo, float *out, int64_t ld) {
  typedef typename Vec<L>::type V;
  constexpr int kJ = 16 / L;
  int64_t c0 = 0;
  for (; c0 + kC <= c_out; c0 += kC) {
    int64_t j = 0;
    for (; j + 16 <= vwo; j += 16) {
      V acc[kC][kJ];
#pragma GCC unroll 16
      for (int k = 0; k < kC; ++k)
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) acc[k][q] = V{} + bs[c0 + k];
      for (int t = 0; t < ntaps; ++t) {
        V v[kJ];
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) v[q] = Load<L>(taps[t] + j + q * L);
        const float *wt = ws + c0 * ntaps + t;
#pragma GCC unroll 16
        for (int k = 0; k < kC; ++k) {
          const float w = wt[k * ntaps];
#pragma GCC unroll 2
          for (int q = 0; q < kJ; ++q) acc[k][q] += w * v[q];
        }
      }
#pragma GCC unroll 16
      for (int k = 0; k < kC; ++k)
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) Store<L>(out + (c0 + k) * ld + 1 + j + q * L, ActivateVec<A, L>(acc[k][q]));
    }
    for (; j < vwo; ++j) {
      for (int k = 0; k < kC; ++k) {
        float a = bs[c0 + k];
        for (int t = 0; t < ntaps; ++t) a += ws[(c0 + k) * ntaps + t] * taps[t][j];
        out[(c0 + k) * ld + 1 + j] = Activate<A>(a);
      }
    }
  }
  for (; c0 < c_out; ++c0) {  // channels past a multiple of kC
    for (int64_t j = 0; j < vwo; ++j) {
      float a = bs[c0];
      for (int t = 0; t < ntaps; ++t) a += ws[c0 * ntaps + t] * taps[t][j];
      out[c0 * ld + 1 + j] = Activate<A>(a);
    }
  }
  for (int64_t c = 0; c < c_out; ++c) {
    float *row = out + c * ld;
    row[0] = 0.0f;
    for (int64_t j = vwo; j <= wo; ++j) row[1 + j] = 0.0f;
  }
}

// Depthwise 3x3 (stride 1) + bias + activation of C channels, then the 1x1 projection to Cout channels + bias, for
// one output row, 16 pixels at a time: the depthwise values of the 16 pixels for all C channels go to `tile` (C x 16
// floats, stays in L1), then kCo projection outputs x 16 pixels are accumulated in registers per pass over it.
// stem: C planes `ld` floats apart, each a padded row block of `pw` floats per row whose first row is the output
// row's top neighbour. wpt: the projection weight transposed, (C, Cout). y: Cout rows `ldy` floats apart.
template <int A, int L, int kCo>
CF_CLONES void DwProjectRow(const float *stem, int64_t ld, int64_t pw, int64_t c, const float *wd, const float *bd,
                            const float *wpt, const float *bp, int64_t cout, int64_t wo, float *y, int64_t ldy,
                            float *tile) {
  typedef typename Vec<L>::type V;
  constexpr int kJ = 16 / L;
  int64_t j = 0;
  if (cout % kCo == 0) {
    for (; j + 16 <= wo; j += 16) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const float *k9 = wd + 9 * ch;
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) {
          const float *p = stem + ch * ld + j + q * L;
          V d = V{} + bd[ch];
          d += k9[0] * Load<L>(p) + k9[1] * Load<L>(p + 1) + k9[2] * Load<L>(p + 2);
          d += k9[3] * Load<L>(p + pw) + k9[4] * Load<L>(p + pw + 1) + k9[5] * Load<L>(p + pw + 2);
          d += k9[6] * Load<L>(p + 2 * pw) + k9[7] * Load<L>(p + 2 * pw + 1) + k9[8] * Load<L>(p + 2 * pw + 2);
          Store<L>(tile + 16 * ch + q * L, ActivateVec<A, L>(d));
        }
      }
      for (int64_t co0 = 0; co0 < cout; co0 += kCo) {
        V acc[kCo][kJ];
#pragma GCC unroll 16
        for (int k = 0; k < kCo; ++k)
#pragma GCC unroll 2
          for (int q = 0; q < kJ; ++q) acc[k][q] = V{} + bp[co0 + k];
        for (int64_t ch = 0; ch < c; ++ch) {
          V d[kJ];
#pragma GCC unroll 2
          for (int q = 0; q < kJ; ++q) d[q] = Load<L>(tile + 16 * ch + q * L);
          const float *wk = wpt + ch * cout + co0;
#pragma GCC unroll 16
          for (int k = 0; k < kCo; ++k) {
            const float w = wk[k];
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) acc[k][q] += w * d[q];
          }
        }
#pragma GCC unroll 16
        for (int k = 0; k < kCo; ++k)
#pragma GCC unroll 2
          for (int q = 0; q < kJ; ++q) Store<L>(y + (co0 + k) * ldy + j + q * L, acc[k][q]);
      }
    }
  }
  for (; j < wo; ++j) {  // the rest (or every pixel when Cout is not a multiple of kCo)
    for (int64_t co = 0; co < cout; ++co) y[co * ldy + j] = bp[co];
    for (int64_t ch = 0; ch < c; ++ch) {
      const float *p = stem + ch * ld + j, *k9 = wd + 9 * ch;
      const float d = Activate<A>(bd[ch] + k9[0] * p[0] + k9[1] * p[1] + k9[2] * p[2] + k9[3] * p[pw] +
                                  k9[4] * p[pw + 1] + k9[5] * p[pw + 2] + k9[6] * p[2 * pw] + k9[7] * p[2 * pw + 1] +
                                  k9[8] * p[2 * pw + 2]);
      for (int64_t co = 0; co < cout; ++co) y[co * ldy + j] += wpt[ch * cout + co] * d;
    }
  }
}

// The stem's vector width and register tiles for this CPU, chosen once per process: with AVX-512 (32 registers of
// 16 floats) 8 stem channels and 16 projection outputs are accumulated at once, with AVX2 (16 registers of 8 floats)
// 4 and 4, each as 2 vectors of 8 pixels; a tile that does not fit in registers spills on every multiply-add.
// CENTERFACE_STEM_TILES=wide|narrow overrides the choice (both are correct on any CPU; the tests run both).
inline bool WideVectors() {
  static const bool wide = [] {
    const char *forced = std::getenv("CENTERFACE_STEM_TILES");
    if (forced != nullptr && std::strcmp(forced, "wide") == 0) return true;
    if (forced != nullptr && std::strcmp(forced, "narrow") == 0) return false;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    return static_cast<bool>(__builtin_cpu_supports("avx512f"));
#else
    return false;
#endif
  }();
  return wide;
}

template <int A, int L, int kC, int kCo>
int StemBlockTiled(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr int64_t kMaxTaps = 64;
  if (nparam != 9) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  if (ndims[0] != 4 || ndims[1] != 4 || ndims[8] != 4) return 1;
  const int64_t n = shapes[0][0], cin = shapes[0][1], h = shapes[0][2], w = shapes[0][3];
  const int64_t c = shapes[1][0], cout = Count(ndims[6], shapes[6]);
  if (n < 0 || cin < 1 || h < 1 || w < 1 || c < 1 || cout < 1 || cin * 9 > kMaxTaps) return 1;
  if (shapes[1][1] != cin || shapes[1][2] != 3 || shapes[1][3] != 3 || Count(ndims[2], shapes[2]) != c ||
      Count(ndims[3], shapes[3]) != c * 9 || Count(ndims[4], shapes[4]) != c ||
      Count(ndims[5], shapes[5]) != cout * c || Count(ndims[7], shapes[7]) != 4)
    return 1;
  const int64_t ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1;
  if (shapes[8][0] != n || shapes[8][1] != cout || shapes[8][2] != ho || shapes[8][3] != wo) return 1;
  int64_t vh, vw;
  if (!ValidPlane(static_cast<const float *>(params[7]), h, w, &vh, &vw)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *ws = static_cast<const float *>(params[1]);
  const float *bs = static_cast<const float *>(params[2]);
  const float *wd = static_cast<const float *>(params[3]);
  const float *bd = static_cast<const float *>(params[4]);
  const float *wp = static_cast<const float *>(params[5]);
  const float *bp = static_cast<const float *>(params[6]);
  float *y = static_cast<float *>(params[8]);
  const int64_t vho = (vh - 1) / 2 + 1, vwo = (vw - 1) / 2 + 1;  // the stem output's valid part
  const int64_t pw = wo + 2, howo = ho * wo;
  // Output rows per band: the band's stem rows (band + 2, padded) within BandBytes(), and at most an even share of
  // the image per thread.
  int64_t band = BandBytes() / (c * 4 * pw);
  const int64_t share = (ho + cf_threads::Threads() - 1) / cf_threads::Threads();
  if (band > share) band = share;
  if (band < 1) band = 1;
  const int64_t bands = (ho + band - 1) / band, items = n * bands;
  const int64_t ld = (band + 2) * pw;  // channel stride of the stem buffer
  std::vector<float> wpt(c * cout);     // the projection weight transposed: (C, Cout)
  for (int64_t co = 0; co < cout; ++co)
    for (int64_t ch = 0; ch < c; ++ch) wpt[ch * cout + co] = wp[co * c + ch];
  cf_threads::Parallel([&](int t, int threads) {
    static thread_local std::vector<float> stem, split, zeros, tile;
    if (static_cast<int64_t>(stem.size()) < c * ld) stem.resize(c * ld);
    if (static_cast<int64_t>(tile.size()) < c * 16) tile.resize(c * 16);
    if (static_cast<int64_t>(split.size()) < cin * 3 * (2 * wo + 1)) split.resize(cin * 3 * (2 * wo + 1));
    if (static_cast<int64_t>(zeros.size()) < wo + 1) zeros.assign(wo + 1, 0.0f);
    const float *taps[kMaxTaps];
    // contiguous runs of bands per thread: the 2 stem rows a band shares with the previous one are moved, not
    // computed again
    int64_t first, last;
    cf_threads::Split(items, t, threads, &first, &last);
    for (int64_t item = first; item < last; ++item) {
      const int64_t img = item / bands, o0 = (item % bands) * band;
      const int64_t rows_out = (o0 + band < ho ? o0 + band : ho) - o0;
      const int64_t keep = (item > first && item % bands != 0) ? 2 : 0;
      for (int64_t ch = 0; ch < c && keep > 0; ++ch)
        std::memmove(stem.data() + ch * ld, stem.data() + ch * ld + band * pw, sizeof(float) * 2 * pw);
      const float *xn = x + img * cin * h * w;
      for (int64_t r = keep; r < rows_out + 2; ++r) {
        const int64_t i = o0 - 1 + r;  // stem output row held in buffer row r
        float *dst = stem.data() + r * pw;
        if (i < 0 || i >= vho) {
          for (int64_t ch = 0; ch < c; ++ch) std::memset(dst + ch * ld, 0, sizeof(float) * pw);
          continue;
        }
        for (int64_t ci = 0; ci < cin; ++ci) {
          for (int ki = 0; ki < 3; ++ki) {
            const int64_t row = 2 * i - 1 + ki, tap = (ci * 3 + ki) * 3;
            if (row < 0 || row >= vh) {
              taps[tap] = taps[tap + 1] = taps[tap + 2] = zeros.data();
              continue;
            }
            float *even = split.data() + (ci * 3 + ki) * (2 * wo + 1), *odd = even + wo;
            SplitRow(xn + (ci * h + row) * w, vw, wo, even, odd);
            taps[tap] = odd;          // column 2j - 1
            taps[tap + 1] = even;     // column 2j
            taps[tap + 2] = odd + 1;  // column 2j + 1
          }
        }
        StemRow<A, L, kC>(taps, static_cast<int>(cin * 9), ws, bs, c, wo, vwo, dst, ld);
      }
      for (int64_t o = 0; o < rows_out; ++o)
        DwProjectRow<A, L, kCo>(stem.data() + o * pw, ld, pw, c, wd, bd, wpt.data(), bp, cout, wo,
                                y + img * cout * howo + (o0 + o) * wo, howo, tile.data());
    }
  });
  return 0;
}

template <int A>
int StemBlock(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (WideVectors()) return StemBlockTiled<A, 16, 8, 16>(nparam, params, ndims, shapes, dtypes);
  return StemBlockTiled<A, 8, 4, 4>(nparam, params, ndims, shapes, dtypes);
}

}  // namespace

#define CF_SIG int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *
#define CF_ARGS nparam, params, ndims, shapes, dtypes

extern "C" {
int CfIrS1Relu(CF_SIG) { return Block<kRelu, 1, false, kPointwise>(CF_ARGS); }
int CfIrS2Relu(CF_SIG) { return Block<kRelu, 2, false, kPointwise>(CF_ARGS); }
int CfIrS1Relu6(CF_SIG) { return Block<kRelu6, 1, false, kPointwise>(CF_ARGS); }
int CfIrS2Relu6(CF_SIG) { return Block<kRelu6, 2, false, kPointwise>(CF_ARGS); }
int CfIrS1ReluRes(CF_SIG) { return Block<kRelu, 1, true, kPointwise>(CF_ARGS); }
int CfIrS1Relu6Res(CF_SIG) { return Block<kRelu6, 1, true, kPointwise>(CF_ARGS); }
int CfIrDwS1Relu(CF_SIG) { return Block<kRelu, 1, false, kNoExpand>(CF_ARGS); }
int CfIrDwS2Relu(CF_SIG) { return Block<kRelu, 2, false, kNoExpand>(CF_ARGS); }
int CfIrDwS1Relu6(CF_SIG) { return Block<kRelu6, 1, false, kNoExpand>(CF_ARGS); }
int CfIrDwS2Relu6(CF_SIG) { return Block<kRelu6, 2, false, kNoExpand>(CF_ARGS); }
int CfStemIrDwRelu(CF_SIG) { return StemBlock<kRelu>(CF_ARGS); }
int CfStemIrDwRelu6(CF_SIG) { return StemBlock<kRelu6>(CF_ARGS); }
}
