// 3x3 depthwise convolution (padding 1, stride 1 or 2) on NCHW float32 tensors, forward and backward, as
// MindSpore AOT custom-operator entry points (ops.Custom(func_type="aot")).
//
// Every entry point has MindSpore's AOT signature
//     extern "C" int Name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
//                         void *stream, void *extra)
// where params holds the inputs then the output, and returns 0 on success, non-zero on bad arguments.
//
//   CfDw3x3S{1,2}(x (N,C,H,W), w (C,1,3,3)) -> y (N,C,Ho,Wo)                      forward, no bias
//   CfDw3x3S{1,2}Bias{,Relu,Relu6}(x, w, b (C,)) -> y                              forward + bias (+ activation)
//   CfDw3x3S{1,2}Bias{,Relu,Relu6}Valid(x, w, b, valid (4,)) -> y                  same on the valid region only
//   CfMaskValid(x (N,C,H,W), valid (4,)) -> y                                      x with the padded region zeroed
//   CfDw3x3S{1,2}Pre{Relu,Relu6}Bias{Relu,Relu6}Valid(x, w, b, valid, b_in (C,)) -> y
//       the same on act(x + b_in): the bias and activation of the preceding 1x1 conv fused in (inference)
//   CfDw3x3BackInputS{1,2}(x, w, dy (N,C,Ho,Wo)) -> dx (N,C,H,W)                   x is read for its shape only
//   CfDw3x3BackWeightS{1,2}(x, dy) -> dw (C,1,3,3)
// with Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1 (zero padding of 1 on every side).
//
// Valid-region variants serve networks run on inputs zero-padded at the bottom / right (to share compiled graphs
// between image sizes): valid = (H0, W0, h0, w0) float32 is the padded network-input size and the size of the
// image inside it. A layer whose input is H x W (H0 / H = W0 / W = its input stride r) treats input rows >= h0 / r
// and columns >= w0 / r as zero -- exactly the convolution's own zero padding of the unpadded image -- and writes
// zeros outside its valid output, so the valid region equals the unpadded network's outputs bit for bit.
// valid[0] <= 0 means "not padded" (the whole tensor is valid).
//
// Work is split over (n, c) planes (over c for the weight gradient) between the worker threads. Inner loops run over
// contiguous rows; stride-2 rows are de-interleaved into even / odd buffers first so that every inner loop is a
// unit-stride loop the compiler vectorises. The hot functions are built for AVX-512, AVX2+FMA and baseline x86-64
// and chosen at load time (GCC target_clones), so the library runs on any x86-64 CPU.
#include <cstdint>
#include <cstring>
#include <vector>

#include "cf_common.h"
#include "cf_threads.h"

namespace {

using namespace cf_common;  // NOLINT(build/namespaces): IsF32, Count, activations

struct Dims {
  int64_t n, c, h, w, ho, wo;
  int64_t ldx, ldy;  // row strides of the input / output planes (w / wo unless computing on a valid sub-plane)
};

// Checks a 4-D input (N,C,H,W) and a weight of C*9 elements; fills dims for the given stride.
bool InputDims(int ndim, const int64_t *shape, int stride, Dims *d) {
  if (ndim != 4) return false;
  d->n = shape[0];
  d->c = shape[1];
  d->h = shape[2];
  d->w = shape[3];
  if (d->h < 1 || d->w < 1) return false;
  d->ho = (d->h - 1) / stride + 1;
  d->wo = (d->w - 1) / stride + 1;
  d->ldx = d->w;
  d->ldy = d->wo;
  return true;
}

// The valid sub-plane of a padded input (cf_common.h ValidPlane) and its output size: false if ``valid`` does not
// describe this tensor.
// valid[0] <= 0 means no padding: the whole tensor is valid.
bool ValidDims(const float *valid, int stride, Dims *d) {
  if (!ValidPlane(valid, d->h, d->w, &d->h, &d->w)) return false;
  d->ho = (d->h - 1) / stride + 1;
  d->wo = (d->w - 1) / stride + 1;
  return true;
}

bool WeightOk(int ndim, const int64_t *shape, int64_t c) {
  int64_t count = 1;
  for (int i = 0; i < ndim; ++i) count *= shape[i];
  return count == c * 9;
}

// y[0:wo] += k0 * a[j] + k1 * b[j] + k2 * e[j] for contiguous rows a, b, e.
CF_CLONES void Axpy3(float *__restrict y, const float *__restrict a, const float *__restrict b,
                     const float *__restrict e, float k0, float k1, float k2, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += k0 * a[j] + k1 * b[j] + k2 * e[j];
}

CF_CLONES void Activate(float *__restrict y, int64_t n, int act) {
  if (act == kRelu) {
    for (int64_t j = 0; j < n; ++j) y[j] = y[j] > 0.f ? y[j] : 0.f;
  } else if (act == kRelu6) {
    for (int64_t j = 0; j < n; ++j) y[j] = y[j] < 0.f ? 0.f : (y[j] > 6.f ? 6.f : y[j]);
  }
}

// De-interleave a row of w samples: even[j] = x[2j] (j < wo), oddp[0] = 0, oddp[j + 1] = x[2j + 1] or 0.
CF_CLONES void Deinterleave(const float *__restrict x, int64_t w, int64_t wo, float *__restrict even,
                            float *__restrict oddp) {
  oddp[0] = 0.f;
  for (int64_t j = 0; j < wo; ++j) {
    even[j] = x[2 * j];
    oddp[j + 1] = (2 * j + 1 < w) ? x[2 * j + 1] : 0.f;
  }
}

// One output row of the depthwise convolution, `count` pixels, bias included, before the activation: y[j] = b +
// sum over ki, kj of k[3ki + kj] * tap(ki, kj, j), the taps as in RowBackWeight (stride 1: row ki itself, zero
// outside [0, count); stride 2: its even / odd halves). One pass over y for all nine taps.
template <int S>
CF_CLONES void RowForward(float *__restrict y, const float *__restrict e0, const float *__restrict o0,
                          const float *__restrict e1, const float *__restrict o1, const float *__restrict e2,
                          const float *__restrict o2, const float *k, float b, int64_t count) {
  const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
  if (S == 1) {  // e_k is row k itself; the first and last columns miss one tap each
    const int64_t last = count - 1;
    float first = b + k1 * e0[0] + k4 * e1[0] + k7 * e2[0];
    if (count > 1) {
      first += k2 * e0[1] + k5 * e1[1] + k8 * e2[1];
      y[last] = b + k0 * e0[last - 1] + k3 * e1[last - 1] + k6 * e2[last - 1] + k1 * e0[last] + k4 * e1[last] +
                k7 * e2[last];
    }
#pragma omp simd
    for (int64_t j = 1; j < last; ++j)
      y[j] = b + (k0 * e0[j - 1] + k1 * e0[j] + k2 * e0[j + 1]) + (k3 * e1[j - 1] + k4 * e1[j] + k5 * e1[j + 1]) +
             (k6 * e2[j - 1] + k7 * e2[j] + k8 * e2[j + 1]);
    y[0] = first;
  } else {
#pragma omp simd
    for (int64_t j = 0; j < count; ++j)
      y[j] = b + (k0 * o0[j] + k1 * e0[j] + k2 * o0[j + 1]) + (k3 * o1[j] + k4 * e1[j] + k5 * o1[j + 1]) +
             (k6 * o2[j] + k7 * e2[j] + k8 * o2[j + 1]);
  }
}

// act(x + bias) of one input row into out (the activation of the preceding 1x1 conv, fused into this kernel).
CF_CLONES void BiasActRow(const float *__restrict x, float bias, int act, int64_t n, float *__restrict out) {
  for (int64_t j = 0; j < n; ++j) out[j] = x[j] + bias;
  Activate(out, n, act);
}

// Floats of the `buf` that PlaneForward needs: per kernel row a pre-activated row and its even / odd halves, and
// an all-zero row as long (more than PlaneBackInputS2's 3 * wo + 2).
inline int64_t ForwardBufFloats(const Dims &d) { return 4 * (d.w + 2 * d.wo + 2); }

// Floats of the `buf` that PlaneBackWeight needs: per kernel row the even / odd halves (wo + 1 each), and an
// all-zero row of w floats.
inline int64_t BackWeightBufFloats(const Dims &d) { return 6 * (d.wo + 1) + d.w; }

// Forward on one (H, W) plane; k = 9 weights; the output plane is overwritten. pre_act != kNone first maps every
// input value to pre_act(x + pre_bias) (the zero padding stays zero, as for the unfused layers).
void PlaneForward(const float *x, const float *k, float bias, int act, int stride, const Dims &d, float *y,
                  std::vector<float> &buf, int pre_act = kNone, float pre_bias = 0.f) {
  const int64_t part = d.w + 2 * d.wo + 2;  // one kernel row's floats in buf: pre-activated row, even, odd halves
  float *zero = buf.data() + 3 * part;
  std::memset(zero, 0, sizeof(float) * part);
  for (int64_t i = 0; i < d.ho; ++i) {
    const float *even[3], *odd[3];
    for (int ki = 0; ki < 3; ++ki) {
      const int64_t r = stride * i + ki - 1;
      float *pre = buf.data() + ki * part, *e = pre + d.w, *o = e + d.wo;
      if (r < 0 || r >= d.h) {
        even[ki] = zero;
        odd[ki] = zero;
        continue;
      }
      const float *xr = x + r * d.ldx;
      if (pre_act != kNone) {
        BiasActRow(xr, pre_bias, pre_act, d.w, pre);
        xr = pre;
      }
      if (stride == 1) {
        even[ki] = xr;
        odd[ki] = nullptr;
      } else {
        Deinterleave(xr, d.w, d.wo, e, o);
        even[ki] = e;
        odd[ki] = o;
      }
    }
    float *yr = y + i * d.ldy;
    if (stride == 1) {
      RowForward<1>(yr, even[0], odd[0], even[1], odd[1], even[2], odd[2], k, bias, d.wo);
    } else {
      RowForward<2>(yr, even[0], odd[0], even[1], odd[1], even[2], odd[2], k, bias, d.wo);
    }
    Activate(yr, d.wo, act);
  }
}

// Stride-2 input gradient on one plane: gather form, one dx row at a time.
void PlaneBackInputS2(const float *dy, const float *k, const Dims &d, float *dx, std::vector<float> &buf) {
  float *ev = buf.data(), *od = buf.data() + d.wo, *pad = buf.data() + 2 * d.wo;  // pad: wo + 1 floats
  const int64_t n_odd = d.w / 2;
  for (int64_t r = 0; r < d.h; ++r) {
    std::memset(ev, 0, sizeof(float) * d.wo);
    std::memset(od, 0, sizeof(float) * d.wo);
    // (dy row, kernel row) pairs with 2 * i + ki - 1 == r
    int64_t rows[2];
    int kis[2];
    int m = 0;
    if (r % 2 == 0) {
      rows[m] = r / 2;
      kis[m++] = 1;
    } else {
      rows[m] = (r - 1) / 2;
      kis[m++] = 2;
      if ((r + 1) / 2 < d.ho) {
        rows[m] = (r + 1) / 2;
        kis[m++] = 0;
      }
    }
    for (int t = 0; t < m; ++t) {
      const float *dr = dy + rows[t] * d.wo;
      const float *kr = k + 3 * kis[t];
      std::memcpy(pad, dr, sizeof(float) * d.wo);
      pad[d.wo] = 0.f;
      // even columns 2j: k1 * dy[j]; odd columns 2j + 1: k2 * dy[j] + k0 * dy[j + 1]
      Axpy3(ev, pad, pad, pad, 0.f, kr[1], 0.f, d.wo);
      Axpy3(od, pad, pad + 1, pad, kr[2], kr[0], 0.f, n_odd);
    }
    float *xr = dx + r * d.w;
    for (int64_t j = 0; j < d.wo; ++j) xr[2 * j] = ev[j];
    for (int64_t j = 0; j < n_odd; ++j) xr[2 * j + 1] = od[j];
  }
}

// The nine weight-gradient sums of one output row of `count` pixels, added to acc: acc[3ki + kj] += sum_j g[j] *
// tap(ki, kj, j), where for stride 1 tap(ki, kj, j) = row_ki[j + kj - 1] (zero outside [0, count)), and for stride 2
// (rows de-interleaved, see Deinterleave) tap(ki, 0, j) = odd_ki[j], tap(ki, 1, j) = even_ki[j], tap(ki, 2, j) =
// odd_ki[j + 1]. Rows outside the image are all-zero rows. One pass reads g once for all nine taps (nine separate
// dot products read it nine times, and reduced each to a scalar row by row).
template <int S>
CF_CLONES void RowBackWeight(const float *__restrict g, const float *__restrict e0, const float *__restrict o0,
                             const float *__restrict e1, const float *__restrict o1, const float *__restrict e2,
                             const float *__restrict o2, int64_t count, double *acc) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f, s4 = 0.f, s5 = 0.f, s6 = 0.f, s7 = 0.f, s8 = 0.f;
  if (S == 1) {  // e_k is row k itself (o_k unused); the first and last columns miss one tap each
    const int64_t last = count - 1;
    s1 += g[0] * e0[0];
    s4 += g[0] * e1[0];
    s7 += g[0] * e2[0];
    if (count > 1) {
      s2 += g[0] * e0[1];
      s5 += g[0] * e1[1];
      s8 += g[0] * e2[1];
      s0 += g[last] * e0[last - 1];
      s3 += g[last] * e1[last - 1];
      s6 += g[last] * e2[last - 1];
      s1 += g[last] * e0[last];
      s4 += g[last] * e1[last];
      s7 += g[last] * e2[last];
    }
#pragma omp simd reduction(+ : s0, s1, s2, s3, s4, s5, s6, s7, s8)
    for (int64_t j = 1; j < last; ++j) {
      const float v = g[j];
      s0 += v * e0[j - 1];
      s1 += v * e0[j];
      s2 += v * e0[j + 1];
      s3 += v * e1[j - 1];
      s4 += v * e1[j];
      s5 += v * e1[j + 1];
      s6 += v * e2[j - 1];
      s7 += v * e2[j];
      s8 += v * e2[j + 1];
    }
  } else {
#pragma omp simd reduction(+ : s0, s1, s2, s3, s4, s5, s6, s7, s8)
    for (int64_t j = 0; j < count; ++j) {
      const float v = g[j];
      s0 += v * o0[j];
      s1 += v * e0[j];
      s2 += v * o0[j + 1];
      s3 += v * o1[j];
      s4 += v * e1[j];
      s5 += v * o1[j + 1];
      s6 += v * o2[j];
      s7 += v * e2[j];
      s8 += v * o2[j + 1];
    }
  }
  const float sums[9] = {s0, s1, s2, s3, s4, s5, s6, s7, s8};
  for (int t = 0; t < 9; ++t) acc[t] += sums[t];
}

// Weight gradient contributions of one (x plane, dy plane) pair, added to acc[9]. `buf`: BackWeightBufFloats.
void PlaneBackWeight(const float *x, const float *dy, int stride, const Dims &d, double *acc,
                     std::vector<float> &buf) {
  const int64_t part = d.wo + 1;
  float *zero = buf.data() + 6 * part;  // an all-zero row (w floats) for rows outside the image
  std::memset(zero, 0, sizeof(float) * d.w);
  for (int64_t i = 0; i < d.ho; ++i) {
    const float *even[3], *odd[3];
    for (int ki = 0; ki < 3; ++ki) {
      const int64_t r = stride * i + ki - 1;
      const bool inside = r >= 0 && r < d.h;
      if (stride == 1) {
        even[ki] = inside ? x + r * d.w : zero;
        odd[ki] = nullptr;
      } else {
        float *e = buf.data() + 2 * ki * part, *o = e + part;
        if (inside) {
          Deinterleave(x + r * d.w, d.w, d.wo, e, o);
        } else {
          std::memset(e, 0, sizeof(float) * 2 * part);
        }
        even[ki] = e;
        odd[ki] = o;
      }
    }
    const float *g = dy + i * d.wo;
    if (stride == 1) {
      RowBackWeight<1>(g, even[0], odd[0], even[1], odd[1], even[2], odd[2], d.wo, acc);
    } else {
      RowBackWeight<2>(g, even[0], odd[0], even[1], odd[1], even[2], odd[2], d.wo, acc);
    }
  }
}

int Forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int stride, bool has_bias,
            int act, bool valid_only = false, int pre_act = kNone) {
  const int n_pre = pre_act != kNone ? 1 : 0;  // the pre-activation bias is the last input
  const int n_in = (has_bias ? 3 : 2) + (valid_only ? 1 : 0) + n_pre;
  if (nparam != n_in + 1) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 2;
  Dims d;
  if (!InputDims(ndims[0], shapes[0], stride, &d) || !WeightOk(ndims[1], shapes[1], d.c)) return 3;
  if (ndims[n_in] != 4 || shapes[n_in][2] != d.ho || shapes[n_in][3] != d.wo) return 4;
  const float *x = static_cast<const float *>(params[0]);
  const float *k = static_cast<const float *>(params[1]);
  const float *b = has_bias ? static_cast<const float *>(params[2]) : nullptr;
  float *y = static_cast<float *>(params[n_in]);
  const int64_t planes = d.n * d.c;
  const int64_t in_plane = d.h * d.w, out_plane = d.ho * d.wo;
  Dims v = d;  // the computed (valid) sub-plane; the rest of the output is zero
  if (valid_only) {
    const int r = n_in - 1 - n_pre;
    if (ndims[r] != 1 || shapes[r][0] != 4) return 5;
    if (!ValidDims(static_cast<const float *>(params[r]), stride, &v)) return 6;
  }
  const float *pre_b = n_pre ? static_cast<const float *>(params[n_in - 1]) : nullptr;
  if (n_pre) {
    int64_t count = 1;
    for (int i = 0; i < ndims[n_in - 1]; ++i) count *= shapes[n_in - 1][i];
    if (count != d.c) return 7;
  }
  const bool partial = v.ho != d.ho || v.wo != d.wo;
  cf_threads::ParallelRange(planes, [&](int64_t first, int64_t last) {
    std::vector<float> buf(ForwardBufFloats(d));
    for (int64_t p = first; p < last; ++p) {
      const int64_t c = p % d.c;
      float *yp = y + p * out_plane;
      if (partial) std::memset(yp, 0, sizeof(float) * out_plane);
      // rows < v.ho, cols < v.wo
      PlaneForward(x + p * in_plane, k + 9 * c, b ? b[c] : 0.f, act, stride, v, yp, buf, pre_act,
                   pre_b ? pre_b[c] : 0.f);
    }
  });
  return 0;
}

int MaskValid(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 3) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 2;
  Dims d;
  if (!InputDims(ndims[0], shapes[0], 1, &d)) return 3;
  if (ndims[1] != 1 || shapes[1][0] != 4) return 5;
  Dims v = d;
  if (!ValidDims(static_cast<const float *>(params[1]), 1, &v)) return 6;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[2]);
  const int64_t planes = d.n * d.c, plane = d.h * d.w;
  cf_threads::ParallelFor(planes, [&](int64_t p) {
    const float *xp = x + p * plane;
    float *yp = y + p * plane;
    for (int64_t i = 0; i < d.h; ++i) {
      const int64_t keep = i < v.h ? v.w : 0;
      std::memcpy(yp + i * d.w, xp + i * d.w, sizeof(float) * keep);
      std::memset(yp + i * d.w + keep, 0, sizeof(float) * (d.w - keep));
    }
  });
  return 0;
}

int BackInput(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int stride) {
  if (nparam != 4) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 2;
  Dims d;
  if (!InputDims(ndims[0], shapes[0], stride, &d) || !WeightOk(ndims[1], shapes[1], d.c)) return 3;
  if (ndims[2] != 4 || shapes[2][2] != d.ho || shapes[2][3] != d.wo) return 4;
  const float *k = static_cast<const float *>(params[1]);
  const float *dy = static_cast<const float *>(params[2]);
  float *dx = static_cast<float *>(params[3]);
  const int64_t planes = d.n * d.c;
  cf_threads::ParallelRange(planes, [&](int64_t first, int64_t last) {
    std::vector<float> buf(ForwardBufFloats(d));  // PlaneForward's or PlaneBackInputS2's
    for (int64_t p = first; p < last; ++p) {
      const int64_t c = p % d.c;
      const float *kc = k + 9 * c;
      if (stride == 1) {
        // the stride-1 input gradient is the forward pass with the kernel rotated by 180 degrees
        float rot[9];
        for (int t = 0; t < 9; ++t) rot[t] = kc[8 - t];
        PlaneForward(dy + p * d.ho * d.wo, rot, 0.f, kNone, 1, d, dx + p * d.h * d.w, buf);
      } else {
        PlaneBackInputS2(dy + p * d.ho * d.wo, kc, d, dx + p * d.h * d.w, buf);
      }
    }
  });
  return 0;
}

int BackWeight(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int stride) {
  if (nparam != 3) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 2;
  Dims d;
  if (!InputDims(ndims[0], shapes[0], stride, &d)) return 3;
  if (ndims[1] != 4 || shapes[1][0] != d.n || shapes[1][1] != d.c || shapes[1][2] != d.ho || shapes[1][3] != d.wo)
    return 4;
  if (!WeightOk(ndims[2], shapes[2], d.c)) return 5;
  const float *x = static_cast<const float *>(params[0]);
  const float *dy = static_cast<const float *>(params[1]);
  float *dw = static_cast<float *>(params[2]);
  cf_threads::ParallelRange(d.c, [&](int64_t first, int64_t last) {
    std::vector<float> buf(BackWeightBufFloats(d));
    for (int64_t c = first; c < last; ++c) {
      double acc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t n = 0; n < d.n; ++n) {
        const int64_t p = n * d.c + c;
        PlaneBackWeight(x + p * d.h * d.w, dy + p * d.ho * d.wo, stride, d, acc, buf);
      }
      for (int t = 0; t < 9; ++t) dw[9 * c + t] = static_cast<float>(acc[t]);
    }
  });
  return 0;
}

}  // namespace

#define CF_SIG int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *
#define CF_ARGS nparam, params, ndims, shapes, dtypes

extern "C" {
int CfDw3x3S1(CF_SIG) { return Forward(CF_ARGS, 1, false, kNone); }
int CfDw3x3S2(CF_SIG) { return Forward(CF_ARGS, 2, false, kNone); }
int CfDw3x3S1Bias(CF_SIG) { return Forward(CF_ARGS, 1, true, kNone); }
int CfDw3x3S2Bias(CF_SIG) { return Forward(CF_ARGS, 2, true, kNone); }
int CfDw3x3S1BiasRelu(CF_SIG) { return Forward(CF_ARGS, 1, true, kRelu); }
int CfDw3x3S2BiasRelu(CF_SIG) { return Forward(CF_ARGS, 2, true, kRelu); }
int CfDw3x3S1BiasRelu6(CF_SIG) { return Forward(CF_ARGS, 1, true, kRelu6); }
int CfDw3x3S2BiasRelu6(CF_SIG) { return Forward(CF_ARGS, 2, true, kRelu6); }
int CfDw3x3S1BiasValid(CF_SIG) { return Forward(CF_ARGS, 1, true, kNone, true); }
int CfDw3x3S2BiasValid(CF_SIG) { return Forward(CF_ARGS, 2, true, kNone, true); }
int CfDw3x3S1BiasReluValid(CF_SIG) { return Forward(CF_ARGS, 1, true, kRelu, true); }
int CfDw3x3S2BiasReluValid(CF_SIG) { return Forward(CF_ARGS, 2, true, kRelu, true); }
int CfDw3x3S1BiasRelu6Valid(CF_SIG) { return Forward(CF_ARGS, 1, true, kRelu6, true); }
int CfDw3x3S2BiasRelu6Valid(CF_SIG) { return Forward(CF_ARGS, 2, true, kRelu6, true); }
int CfMaskValid(CF_SIG) { return MaskValid(CF_ARGS); }
int CfDw3x3S1PreReluBiasReluValid(CF_SIG) { return Forward(CF_ARGS, 1, true, kRelu, true, kRelu); }
int CfDw3x3S2PreReluBiasReluValid(CF_SIG) { return Forward(CF_ARGS, 2, true, kRelu, true, kRelu); }
int CfDw3x3S1PreRelu6BiasRelu6Valid(CF_SIG) { return Forward(CF_ARGS, 1, true, kRelu6, true, kRelu6); }
int CfDw3x3S2PreRelu6BiasRelu6Valid(CF_SIG) { return Forward(CF_ARGS, 2, true, kRelu6, true, kRelu6); }
int CfDw3x3BackInputS1(CF_SIG) { return BackInput(CF_ARGS, 1); }
int CfDw3x3BackInputS2(CF_SIG) { return BackInput(CF_ARGS, 2); }
int CfDw3x3BackWeightS1(CF_SIG) { return BackWeight(CF_ARGS, 1); }
int CfDw3x3BackWeightS2(CF_SIG) { return BackWeight(CF_ARGS, 2); }
// Version tag, so the Python side can check that the library matches the package.
int CfNativeVersion() { return 3; }
}
