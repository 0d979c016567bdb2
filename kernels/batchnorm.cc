// Training-mode BatchNorm (batch statistics) with the activation after it fused in, forward and backward, on NCHW
// float32 tensors, as MindSpore AOT custom-operator entry points (ops.Custom(func_type="aot")).
//
// MindSpore's CPU backend runs BatchNorm, the activation and their two gradients as four operators with several
// passes over every activation tensor each; in training they take about as long as all the convolutions together.
// Here the forward is two passes (statistics; normalise + scale + shift + activation) and the backward two (the two
// per-channel sums; the input gradient), with the activation's gradient mask taken from the saved output.
//
// Entry points (MindSpore's AOT signature, see kernels/depthwise.cc; inputs then outputs, 0 = success):
//   CfBnTrain{,Relu,Relu6}(x (N,C,H,W), gamma (C,), beta (C,), eps (1,)) -> y (N,C,H,W), mean (C,), var (C,)
//       y = act(gamma * (x - mean) / sqrt(v + eps) + beta) with the batch mean and biased variance v per channel;
//       the output var is the unbiased variance v * M / (M - 1) (M = N*H*W values per channel; v when M == 1),
//       the one MindSpore folds into the running variance
//   CfBnTrainBack{,Relu,Relu6}(x, gamma, mean, var, eps, y, dy) -> dx (N,C,H,W), dgamma (C,), dbeta (C,)
//       (mean, var: the forward's outputs)
//       the gradient of the forward through the activation (mask from y: relu y > 0, relu6 0 < y < 6)
// Work is split over channels between the worker threads (cf_threads.h); sums are accumulated in double precision.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cf_common.h"
#include "cf_threads.h"

namespace {

using namespace cf_common;  // NOLINT(build/namespaces): IsF32, Count, activations

struct Dims {
  int64_t n, c, hw;
};

bool GetDims(int ndim, const int64_t *shape, Dims *d) {
  if (ndim != 4) return false;
  d->n = shape[0];
  d->c = shape[1];
  d->hw = shape[2] * shape[3];
  return d->n > 0 && d->c > 0 && d->hw > 0;
}

// Sums run in float over blocks of kBlock values (vectorised) and are carried across blocks in double.
constexpr int64_t kBlock = 2048;

// sum and sum of squares of (x - pivot) over one plane of n floats (a pivot near the mean avoids the cancellation
// of the one-pass variance formula).
CF_CLONES void PlaneSums(const float *x, int64_t n, float pivot, double *sum, double *sq) {
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t i1 = i0 + kBlock < n ? i0 + kBlock : n;
    float s = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s, s2)
    for (int64_t i = i0; i < i1; ++i) {
      const float v = x[i] - pivot;
      s += v;
      s2 += v * v;
    }
    *sum += s;
    *sq += s2;
  }
}

// The activation and its gradient mask as branch-free expressions (compile-time activation).
template <int A>
inline float Activate(float v) {
  if (A == kRelu) return v > 0.0f ? v : 0.0f;
  if (A == kRelu6) return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
  return v;
}

template <int A>
inline float Masked(float dy, float y) {
  if (A == kRelu) return y > 0.0f ? dy : 0.0f;
  if (A == kRelu6) return (y > 0.0f && y < 6.0f) ? dy : 0.0f;
  return dy;
}

template <int A>
CF_CLONES void PlaneApply(const float *x, float *y, int64_t n, float scale, float shift) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = Activate<A>(x[i] * scale + shift);
}

// sum of g and of g * (x - mean) over one plane, g = dy * mask(y).
template <int A>
CF_CLONES void PlaneGradSums(const float *x, const float *y, const float *dy, int64_t n, float mean, double *sum_g,
                             double *sum_gx) {
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t i1 = i0 + kBlock < n ? i0 + kBlock : n;
    float s = 0.0f, sx = 0.0f;
#pragma omp simd reduction(+ : s, sx)
    for (int64_t i = i0; i < i1; ++i) {
      const float g = Masked<A>(dy[i], y[i]);
      s += g;
      sx += g * (x[i] - mean);
    }
    *sum_g += s;
    *sum_gx += sx;
  }
}

// dx = k * (g - a - (x - mean) * b) with g = dy * mask(y).
template <int A>
CF_CLONES void PlaneGradInput(const float *x, const float *y, const float *dy, float *dx, int64_t n, float k,
                              float a, float mean, float b) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dx[i] = k * (Masked<A>(dy[i], y[i]) - a - (x[i] - mean) * b);
}

template <int A>
int Forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 7) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  Dims d;
  if (!GetDims(ndims[0], shapes[0], &d)) return 1;
  if (Count(ndims[1], shapes[1]) != d.c || Count(ndims[2], shapes[2]) != d.c || Count(ndims[3], shapes[3]) != 1 ||
      Count(ndims[4], shapes[4]) != d.n * d.c * d.hw || Count(ndims[5], shapes[5]) != d.c ||
      Count(ndims[6], shapes[6]) != d.c)
    return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *gamma = static_cast<const float *>(params[1]);
  const float *beta = static_cast<const float *>(params[2]);
  const float eps = *static_cast<const float *>(params[3]);
  float *y = static_cast<float *>(params[4]);
  float *mean_out = static_cast<float *>(params[5]);
  float *var_out = static_cast<float *>(params[6]);
  const double count = static_cast<double>(d.n * d.hw);
  cf_threads::ParallelFor(d.c, [&](int64_t c) {
    double sum = 0.0, sq = 0.0;
    const float pivot = x[c * d.hw];  // the channel's first value
    for (int64_t n = 0; n < d.n; ++n) PlaneSums(x + (n * d.c + c) * d.hw, d.hw, pivot, &sum, &sq);
    const double shifted_mean = sum / count;
    const double mean = pivot + shifted_mean;
    double var = sq / count - shifted_mean * shifted_mean;
    if (var < 0.0) var = 0.0;
    const double invstd = 1.0 / std::sqrt(var + eps);
    const float scale = static_cast<float>(gamma[c] * invstd);
    const float shift = static_cast<float>(beta[c] - mean * gamma[c] * invstd);
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t off = (n * d.c + c) * d.hw;
      PlaneApply<A>(x + off, y + off, d.hw, scale, shift);
    }
    mean_out[c] = static_cast<float>(mean);
    var_out[c] = static_cast<float>(count > 1.0 ? var * count / (count - 1.0) : var);
  });
  return 0;
}

template <int A>
int Backward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 10) return 1;
  for (int i = 0; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  Dims d;
  if (!GetDims(ndims[0], shapes[0], &d)) return 1;
  const int64_t total = d.n * d.c * d.hw;
  if (Count(ndims[1], shapes[1]) != d.c || Count(ndims[2], shapes[2]) != d.c || Count(ndims[3], shapes[3]) != d.c ||
      Count(ndims[4], shapes[4]) != 1 || Count(ndims[5], shapes[5]) != total || Count(ndims[6], shapes[6]) != total ||
      Count(ndims[7], shapes[7]) != total || Count(ndims[8], shapes[8]) != d.c || Count(ndims[9], shapes[9]) != d.c)
    return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *gamma = static_cast<const float *>(params[1]);
  const float *mean = static_cast<const float *>(params[2]);
  const float *var = static_cast<const float *>(params[3]);
  const float eps = *static_cast<const float *>(params[4]);
  const float *y = static_cast<const float *>(params[5]);
  const float *dy = static_cast<const float *>(params[6]);
  float *dx = static_cast<float *>(params[7]);
  float *dgamma = static_cast<float *>(params[8]);
  float *dbeta = static_cast<float *>(params[9]);
  const double count = static_cast<double>(d.n * d.hw);
  cf_threads::ParallelFor(d.c, [&](int64_t c) {
    double sum_g = 0.0, sum_gx = 0.0;
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t off = (n * d.c + c) * d.hw;
      PlaneGradSums<A>(x + off, y + off, dy + off, d.hw, mean[c], &sum_g, &sum_gx);
    }
    const double biased = count > 1.0 ? static_cast<double>(var[c]) * (count - 1.0) / count : var[c];
    const double invstd = 1.0 / std::sqrt(biased + eps);
    const double m = mean[c];
    const double sum_gxhat = sum_gx * invstd;  // sum of g * xhat
    dbeta[c] = static_cast<float>(sum_g);
    dgamma[c] = static_cast<float>(sum_gxhat);
    // dx = gamma * invstd * (g - sum_g / M - xhat * sum_gxhat / M), xhat = (x - mean) * invstd
    const float k = static_cast<float>(gamma[c] * invstd);
    const float a = static_cast<float>(sum_g / count);
    const float b = static_cast<float>(sum_gxhat / count * invstd);
    for (int64_t n = 0; n < d.n; ++n) {
      const int64_t off = (n * d.c + c) * d.hw;
      PlaneGradInput<A>(x + off, y + off, dy + off, dx + off, d.hw, k, a, static_cast<float>(m), b);
    }
  });
  return 0;
}

}  // namespace

#define CF_SIG int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *
#define CF_ARGS nparam, params, ndims, shapes, dtypes

extern "C" {
int CfBnTrain(CF_SIG) { return Forward<kNone>(CF_ARGS); }
int CfBnTrainRelu(CF_SIG) { return Forward<kRelu>(CF_ARGS); }
int CfBnTrainRelu6(CF_SIG) { return Forward<kRelu6>(CF_ARGS); }
int CfBnTrainBack(CF_SIG) { return Backward<kNone>(CF_ARGS); }
int CfBnTrainBackRelu(CF_SIG) { return Backward<kRelu>(CF_ARGS); }
int CfBnTrainBackRelu6(CF_SIG) { return Backward<kRelu6>(CF_ARGS); }
}
