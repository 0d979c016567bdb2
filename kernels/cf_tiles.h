// Vectors, register tiles and weight panels shared by the native kernels that compute 1x1 (and direct 3x3)
// convolutions as register-tiled matrix products (header-only; kernels/block.cc, kernels/dense.cc).
#ifndef CENTERFACE_KERNELS_CF_TILES_H_
#define CENTERFACE_KERNELS_CF_TILES_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cf_common.h"

namespace cf_tiles {

using cf_common::Count;
using cf_common::kNone;
using cf_common::kRelu;
using cf_common::kRelu6;

template <int A>
inline float Activate(float v) {
  if (A == kNone) return v;
  if (A == kRelu) return v > 0.0f ? v : 0.0f;
  return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
}

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
  if (A == kNone) return v;
  v = v > zero ? v : zero;
  if (A == kRelu6) {
    const V six = zero + 6.0f;
    v = v < six ? v : six;
  }
  return v;
}

// Whether this CPU has AVX-512 (the code paths that need it check this, not WideVectors, which can be forced).
inline bool HasAvx512() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

// The vector width and register tiles for this CPU, chosen once per process: with AVX-512 (32 registers of 16
// floats) one vector of 16 pixels per channel, 8 stem channels and 12 outputs of a 1x1 convolution at once; with
// AVX2 (16 registers of 8 floats) two vectors per channel, 4 stem channels and 6 outputs. A tile that does not fit
// in registers spills on every multiply-add. CENTERFACE_TILES=wide|narrow overrides the choice (both are correct
// on any CPU; the tests run both).
inline bool WideVectors() {
  static const bool wide = [] {
    const char *forced = std::getenv("CENTERFACE_TILES");
    if (forced != nullptr && std::strcmp(forced, "wide") == 0) return true;
    if (forced != nullptr && std::strcmp(forced, "narrow") == 0) return false;
    return HasAvx512();
  }();
  return wide;
}

// ---------------------------------------------------------------------------------------------------------------
// Register tiles of the 1x1 convolutions: kM output channels x kTile pixels (kTile / L vectors per channel) are
// accumulated in registers over all input channels; the caller applies bias, activation, residual and layout on
// the way out. kM is 6 with AVX2 (12 accumulators, 2 vectors of B and a broadcast: 15 of the 16 registers) and 12
// with AVX-512.

constexpr int64_t kTile = 16;  // pixels per tile

template <int L>
using VecOf = typename Vec<L>::type;

#define CF_INLINE __attribute__((always_inline)) inline

// A 1x1 convolution's weight matrix (rows x k: output channels x input channels) as the tiles read it: panels of
// kM rows, panel p holding, input channel by input channel, the kM weights of its rows (k x kM floats, contiguous;
// rows past the matrix repeat its last row, so that a short last panel needs no code of its own). One pointer
// walks a panel front to back, where the matrix's own rows would be kM streams a row apart.
inline void PackPanels(const float *a, int64_t rows, int64_t k, int km, float *out) {
  const int64_t panels = (rows + km - 1) / km;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t kk = 0; kk < k; ++kk)
      for (int i = 0; i < km; ++i) {
        const int64_t r = p * km + i < rows ? p * km + i : rows - 1;
        *out++ = a[r * k + kk];
      }
}

// A weight input given either as panels, a 3-D tensor (panels, k, kM), used where it is, or in MindSpore's layout
// (rows, k, 1, 1), packed into `scratch` (on every call: a caller that calls often packs once and passes panels,
// see kernels/program.cc). nullptr if the shape is neither.
template <int kM>
const float *Panels(const void *param, int ndim, const int64_t *shape, int64_t rows, int64_t k,
                    std::vector<float> *scratch) {
  const float *a = static_cast<const float *>(param);
  const int64_t panels = (rows + kM - 1) / kM;
  if (ndim == 3) return shape[0] == panels && shape[1] == k && shape[2] == kM ? a : nullptr;
  if (Count(ndim, shape) != rows * k) return nullptr;
  scratch->resize(panels * k * kM);
  PackPanels(a, rows, k, kM, scratch->data());
  return scratch->data();
}

// acc[i] = bias[i] for i < kR, rows i >= m (past a short last panel) taking bias[m - 1]: a tile's start.
template <int L, int kM, int kR = kM, int64_t kP = kTile>
CF_INLINE void StartTile(const float *bias, int m, VecOf<L> (&acc)[kM][kP / L]) {
#pragma GCC unroll 16
  for (int i = 0; i < kR; ++i) {
    const int r = i < m ? i : m - 1;
#pragma GCC unroll 2
    for (int q = 0; q < kP / L; ++q) acc[i][q] = VecOf<L>{} + bias[r];
  }
}

// acc[i] += sum_kk pa[kk * kM + i] * b[kk * ldb .. + kP) for i < kR (kR <= kM rows of the panel are computed; the
// rest of acc is left as it is): panel pa (see PackPanels) times a kP-pixel tile of B (kP readable floats per row,
// kTile unless the caller says otherwise). TileProduct starts from the bias: rows i >= m (the short last panel)
// take bias[m - 1].
template <int L, int kM, int kR = kM, int64_t kP = kTile>
CF_INLINE void TileAccumulate(int64_t k, const float *pa, const float *b, int64_t ldb, VecOf<L> (&acc)[kM][kP / L]) {
  constexpr int kJ = kP / L;
  for (int64_t kk = 0; kk < k; ++kk) {
    VecOf<L> v[kJ];
#pragma GCC unroll 2
    for (int q = 0; q < kJ; ++q) v[q] = Load<L>(b + kk * ldb + q * L);
#pragma GCC unroll 16
    for (int i = 0; i < kR; ++i) {
      const float w = pa[kk * kM + i];
#pragma GCC unroll 2
      for (int q = 0; q < kJ; ++q) acc[i][q] += w * v[q];
    }
  }
}

template <int L, int kM, int kR = kM, int64_t kP = kTile>
CF_INLINE void TileProduct(int64_t k, const float *pa, const float *b, int64_t ldb, const float *bias, int m,
                           VecOf<L> (&acc)[kM][kP / L]) {
  StartTile<L, kM, kR, kP>(bias, m, acc);
  TileAccumulate<L, kM, kR, kP>(k, pa, b, ldb, acc);
}

// TileProduct for the first m rows of a panel: a short last panel (a matrix whose rows are not a multiple of kM,
// e.g. 64 = 5 x 12 + 4) computes a third or two thirds of the panel's rows instead of all of them.
template <int L, int kM, int64_t kP = kTile>
CF_INLINE void PanelProduct(int64_t k, const float *pa, const float *b, int64_t ldb, const float *bias, int m,
                            VecOf<L> (&acc)[kM][kP / L]) {
  static_assert(kM % 3 == 0, "panels are cut in thirds");
  if (m > 2 * kM / 3) {
    TileProduct<L, kM, kM, kP>(k, pa, b, ldb, bias, m, acc);
  } else if (m > kM / 3) {
    TileProduct<L, kM, 2 * kM / 3, kP>(k, pa, b, ldb, bias, m, acc);
  } else {
    TileProduct<L, kM, kM / 3, kP>(k, pa, b, ldb, bias, m, acc);
  }
}

}  // namespace cf_tiles

#endif  // CENTERFACE_KERNELS_CF_TILES_H_
