// A whole MobileNetV2 inverted-residual block for inference (BatchNorm folded) in one MindSpore AOT custom
// operator: 1x1 expansion + bias + activation -> 3x3 depthwise (stride 1 or 2, padding 1) + bias + activation ->
// 1x1 projection + bias (+ the block input, when the block has a residual connection); and the network's stem
// fused with its first block.
//
// Run layer by layer, the expanded tensor (6x the block's input channels, at the input resolution) is written to
// memory by the expansion and read back by the depthwise convolution, and the depthwise output again by the
// projection; at the high-resolution blocks of the network this memory traffic, not arithmetic, is the cost. Here
// each thread takes a contiguous run of output rows and keeps only the three expanded input rows the current output
// row needs, in a ring of rows that stays in its cache (each input row is expanded once per thread); the depthwise
// output of one row goes to a buffer in cache and the projection reads it from there: neither the expanded nor the
// depthwise tensor exists in full (RunBlock).
//
// Both 1x1 convolutions are register-tiled matrix products written here rather than BLAS calls: their bias,
// activation, zero padding and (for stride 2) even/odd column split are applied while a tile is still in registers
// (separate bias / padding passes over the expanded rows cost about as much as the small-K products themselves),
// and their weights are read as panels (PackPanels), which a caller that runs the network many times packs once
// (CfPanelRows; a BLAS GEMM packs both operands again on every call). Small, low-resolution blocks, and those whose
// ring of rows would crowd a core's L2 (UseWholeImage), run on whole images instead, each thread taking a share of
// the expanded channels from the expansion to its partial sums of the projection (WholeImage).
//
// Entry points (MindSpore's AOT signature, see kernels/depthwise.cc; inputs then the output, 0 = success):
//   CfIrS{1,2}{Relu,Relu6}{,Res}(x (N,Cin,H,W), we (E,Cin,1,1), be (E,), wd (E,1,3,3), bd (E,),
//                                wp (Cout,E,1,1), bp (Cout,), valid (4,)) -> y (N,Cout,Ho,Wo)
//       (we and wp, and the stem block's wp, may also come as panels: see CfPanelRows)
//   CfIrDwS{1,2}{Relu,Relu6}(x, wd (Cin,1,3,3), bd, wp (Cout,Cin,1,1), bp, valid) -> y
//       a block without expansion (MobileNetV2's first, t = 1): depthwise on x itself, then the projection
//   CfStemIrDw{Relu,Relu6}(x (N,Cin,H,W), ws (C,Cin,3,3), bs (C,), wd (C,1,3,3), bd, wp (Cout,C,1,1), bp, valid)
//       -> y (N,Cout,Ho,Wo): the stem (3x3 stride 2) and the first block (no expansion, stride 1)
// with Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1; `Res` adds x (needs s == 1 and Cin == Cout). `valid` is the
// valid-region input of kernels/depthwise.cc: expanded values at input rows / columns outside the image are taken as
// zero (the depthwise convolution's own zero padding of the unpadded image), so the valid part of the output equals
// the unpadded network's; outside it the output is finite but meaningless (later layers ignore it the same way).
// Status code: 1 bad arguments.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cf_common.h"
#include "cf_threads.h"
#include "cf_tiles.h"

namespace {

using namespace cf_common;  // NOLINT(build/namespaces): IsF32, Count, activations
using namespace cf_tiles;   // NOLINT(build/namespaces): vectors, register tiles, panels

// A zero-padded input row of the depthwise convolution: padded column c (0 <= c < w + 2) holds v(c) = 0 for c == 0
// and c > valid_w, else the input column c - 1 (after the expansion, ExpandRow). With stride 1
// the row is stored as it is; with stride 2 it is stored split, the even columns first and then the odd ones
// (SplitEven(w) of them, then the rest, from OddOffset(w)), so that each of the three taps of a stride-2 output row
// is a unit-stride run (output j reads columns 2j, 2j + 1, 2j + 2: even[j], odd[j], even[j + 1]; for an even w the
// last odd column, the right padding, is never read). Rows start on a cache line and are Pitch(w) floats apart, the
// odd half on a cache line too, so that DwRowWide reads every tap with aligned loads: an unaligned 64-byte load
// spans two cache lines and costs two, which made the 9 loads per 16 outputs, not the multiply-adds, the limit.
constexpr int64_t kAlign = 16;  // floats per cache line
// Pixels of the blocks' 1x1 register tiles: two vectors, so that each input value loaded is used by two
// multiply-adds per weight broadcast (12 outputs x 32 pixels, 24 accumulators, with AVX-512; 6 x 16 with AVX2).
// With one 16-float vector per tile the loads, not the multiply-adds, were the limit on cores that issue two
// 512-bit multiply-adds per cycle (an Intel Xeon with AVX-512: 1x1 products ran at ~60% of its peak, ~70-75% with
// two vectors); the other kernels keep cf_tiles' kTile. Each function that lays out tiles names it kTile locally.
template <int L>
constexpr int64_t kBlockTile = 2 * L;

// A two-vector tile `acc` whose pixels fit in its first vector (a run's last <= L pixels): `product` fills a
// one-vector tile, half the multiply-adds; the second vector is zero (its lanes are never stored).
template <int L, int kM, typename Product>
CF_INLINE void HalfTile(VecOf<L> (&acc)[kM][2], Product product) {
  VecOf<L> half[kM][1];
  product(half);
#pragma GCC unroll 16
  for (int i = 0; i < kM; ++i) {
    acc[i][0] = half[i][0];
    acc[i][1] = VecOf<L>{};
  }
}

inline int64_t RoundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }
inline int64_t SplitEven(int64_t w) { return (w + 3) / 2; }
inline int64_t OddOffset(int64_t w) { return RoundUp(SplitEven(w), kAlign); }
template <int S>
int64_t Pitch(int64_t w) {
  return S == 1 ? RoundUp(w + 2, kAlign) : OddOffset(w) + RoundUp(w + 2 - SplitEven(w), kAlign);
}

// A padded row of zeros (`pw` floats, on a cache line): the depthwise convolution's input rows outside the image,
// read in place of ring or plane rows (zeroing those took ~1% of a 640x480 network call).
inline const float *ZeroRow(std::vector<float> *buffer, int64_t pw) {
  float *row = AlignedFloats(buffer, pw);
  std::fill(row, row + pw, 0.0f);
  return row;
}

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
  SplitRow(src, valid_w, (w + 1) / 2, dst + OddOffset(w), dst);
}

// dst[0 .. count) = src[0 .. count) for count <= 32, as at most two fixed-size copies that may overlap: a tile that
// crosses row ends is stored in pieces of any length, and a memcpy of a variable length is a library call (the
// 15x20 and 30x40 blocks, where most or a fifth of the tiles cross, ran 1-2% slower with it).
CF_INLINE void CopyFew(float *dst, const float *src, int64_t count) {
  if (count >= 16) {
    std::memcpy(dst, src, 64);
    std::memcpy(dst + count - 16, src + count - 16, 64);
  } else if (count >= 8) {
    std::memcpy(dst, src, 32);
    std::memcpy(dst + count - 8, src + count - 8, 32);
  } else if (count >= 4) {
    std::memcpy(dst, src, 16);
    std::memcpy(dst + count - 4, src + count - 4, 16);
  } else {
    for (int64_t u = 0; u < count; ++u) dst[u] = src[u];
  }
}

// Stores `count` consecutive pixels t[0 .. count) of one channel, input columns j .. j + count of one row, into
// the row's padded depthwise input `out` (see SplitEven): input column c is padded column c + 1, for S = 2 in the
// half of its parity.
template <int S>
CF_INLINE void StoreSegment(const float *t, int64_t count, float *out, int64_t j, int64_t w) {
  if (S == 1) {
    CopyFew(out + 1 + j, t, count);
    return;
  }
  float *even = out, *odd = out + OddOffset(w);
  float *first = ((j + 1) % 2 == 0 ? even : odd) + (j + 1) / 2;   // padded columns j + 1, j + 3, ...
  float *second = ((j + 2) % 2 == 0 ? even : odd) + (j + 2) / 2;  // padded columns j + 2, j + 4, ...
  for (int64_t u = 0; u + 1 < count; u += 2) {
    first[u / 2] = t[u];
    second[u / 2] = t[u + 1];
  }
  if (count % 2 == 1) first[count / 2] = t[count - 1];
}

// Stores the even lanes of a two-vector tile (lo, hi: lanes 0 .. 2L) at `even_lanes` and its odd lanes at
// `odd_lanes`, L floats each (one two-source permute per half, straight from registers).
template <int L>
CF_INLINE void StoreSplit(VecOf<L> lo, VecOf<L> hi, float *even_lanes, float *odd_lanes) {
  if constexpr (L == 8) {
    typedef int Index __attribute__((vector_size(32)));
    Store<8>(even_lanes, __builtin_shuffle(lo, hi, Index{0, 2, 4, 6, 8, 10, 12, 14}));
    Store<8>(odd_lanes, __builtin_shuffle(lo, hi, Index{1, 3, 5, 7, 9, 11, 13, 15}));
  } else {
    typedef int Index __attribute__((vector_size(64)));
    Store<16>(even_lanes, __builtin_shuffle(lo, hi, Index{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}));
    Store<16>(odd_lanes, __builtin_shuffle(lo, hi, Index{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}));
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CF_HAVE_MASKED_STORE 1
// StoreSegment for S = 1 on AVX-512, all rows of a tile at once: row i of `t` (m rows of 32 activated floats, 64
// bytes apart and aligned) goes, segment by segment, to out[g] + i * ldc (segment g: lanes at[g] .. + count[g]) with
// two masked stores per segment, straight from registers. Through a copy on the stack (StoreSegment), each
// segment's loads straddle the two vector stores of the row and wait for them; the 15x20 blocks, where every tile
// crosses row ends, ran 3-4% faster this way (bench_kernels at 640x480, with the copies of the short last tile
// below).
__attribute__((target("avx512f"))) void StoreSegmentsWide(const float *t, int m, int64_t segments, const int64_t *at,
                                                          const int64_t *count, float *const *out, int64_t ldc) {
  for (int i = 0; i < m; ++i) {
    const __m512 lo = _mm512_load_ps(t + i * 32), hi = _mm512_load_ps(t + i * 32 + 16);
    for (int64_t g = 0; g < segments; ++g) {
      const uint32_t lanes = (count[g] >= 32 ? ~0u : (1u << count[g]) - 1) << at[g];
      float *dst = out[g] + i * ldc - at[g];  // lane u lands at dst + u; the lanes before at[g] are masked off
      _mm512_mask_storeu_ps(dst, static_cast<__mmask16>(lanes & 0xffffu), lo);
      _mm512_mask_storeu_ps(dst + 16, static_cast<__mmask16>(lanes >> 16), hi);
    }
  }
}

// The same for S = 2, segment g going to the split row rows[g] + i * ldc (see SplitEven). Lane u of segment g is
// padded column k0 + u, k0 = out_col[g] - at[g] (out_col: the padded column of the segment's first pixel), which
// is stored at (even or odd half by its parity) + its column / 2: the tile's even lanes (E) and odd lanes (O),
// deinterleaved once per row, each go to one half, which depends on the parity of k0.
__attribute__((target("avx512f"))) void StoreSegmentsSplitWide(const float *t, int m, int64_t segments,
                                                               const int64_t *at, const int64_t *count,
                                                               const int64_t *out_col, float *const *rows,
                                                               int64_t ldc, int64_t odd_offset) {
  const __m512i even_lanes = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd_lanes = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int i = 0; i < m; ++i) {
    const __m512 lo = _mm512_load_ps(t + i * 32), hi = _mm512_load_ps(t + i * 32 + 16);
    const __m512 e = _mm512_permutex2var_ps(lo, even_lanes, hi), o = _mm512_permutex2var_ps(lo, odd_lanes, hi);
    for (int64_t g = 0; g < segments; ++g) {
      const int64_t first = at[g], last = at[g] + count[g] - 1, k0 = out_col[g] - at[g];
      // lanes 2v in [first, last] for E, 2v + 1 for O
      const int64_t e0 = (first + 1) / 2, e1 = last / 2, o0 = first / 2, o1 = (last - 1) / 2;
      const __mmask16 e_mask = e1 >= e0 ? static_cast<__mmask16>(((2u << e1) - 1) & ~((1u << e0) - 1)) : 0;
      const __mmask16 o_mask = o1 >= o0 && last >= 1 ? static_cast<__mmask16>(((2u << o1) - 1) & ~((1u << o0) - 1)) : 0;
      float *row = rows[g] + i * ldc;
      // padded column c is at (c even ? row : row + odd_offset) + c / 2 (c >= 0 for every stored lane)
      float *e_dst = k0 % 2 == 0 ? row + k0 / 2 : row + odd_offset + (k0 - 1) / 2;
      float *o_dst = k0 % 2 == 0 ? row + odd_offset + k0 / 2 : row + (k0 + 1) / 2;
      _mm512_mask_storeu_ps(e_dst, e_mask, e);
      _mm512_mask_storeu_ps(o_dst, o_mask, o);
    }
  }
}
#endif

// The 1x1 expansion of input rows [r0, r0 + rows) (valid ones) into the padded depthwise input rows of all `ne`
// expanded channels: ring row (r + R) % R of channel e (at ring + e * ldc, rows Pitch floats apart) becomes the padded
// row of act(be[e] + sum_k we(e, k) * x[k * ldx + r * w + col]) over the valid columns col < vw, zero
// elsewhere (`we`: the expansion weights as panels, see PackPanels; `ne` a multiple of kM or the matrix's end).
// The rows' pixels are taken as one run (rows of x are contiguous), in tiles of kTile, so narrow rows
// waste nothing but the last tile; a tile that crosses a row end is stored in two segments. `scratch` (cin x kTile
// floats) takes a short last tile.
template <int A, int S, int L, int kM>
CF_CLONES void ExpandRows(const float *x, int64_t ldx, int64_t cin, const float *we, const float *be, int64_t ne,
                          int64_t w, int64_t vw, int64_t r0, int64_t rows, float *ring, int64_t ldc, int64_t ring_rows,
                          float *scratch) {
  constexpr int64_t kTile = kBlockTile<L>;
  constexpr int kJ = kTile / L;
  static_assert(kJ == 2, "StoreSplit takes two vectors");
  const int64_t pw = Pitch<S>(w), total = rows * w;
  const float *xr = x + r0 * w;
  for (int64_t p = 0; p < total; p += kTile) {
    const int64_t cols = total - p < kTile ? total - p : kTile;
    const float *b = xr + p;
    int64_t ldb = ldx;
    if (cols < kTile) {
      // whole kTile-float copies (the floats past the run are the next channel's, computed and never stored), the
      // last channel's as its `cols` floats only, since x may end there: a memcpy and a memset of a variable length
      // per channel (rep movs / rep stos) took ~4% of the 15x20 blocks' expansion time
      for (int64_t k = 0; k + 1 < cin; ++k)
#pragma GCC unroll 4
        for (int q = 0; q < kJ; ++q) Store<L>(scratch + k * kTile + q * L, Load<L>(xr + k * ldx + p + q * L));
      CopyFew(scratch + (cin - 1) * kTile, xr + (cin - 1) * ldx + p, cols);
      b = scratch;
      ldb = kTile;
    } else {
      // a tile's rows are cin cache lines a plane apart: too many streams for the hardware prefetcher
      for (int64_t k = 0; k < cin && p + 4 * kTile < total; ++k) __builtin_prefetch(xr + k * ldx + p + 4 * kTile);
    }
    // the tile row by row: one segment, or more where it crosses row ends (pixel offset, count, ring row, column)
    int64_t seg_at[kTile], seg_count[kTile], seg_col[kTile], segments = 0;
    float *seg_row[kTile];
    for (int64_t done = 0, q = p; done < cols; ++segments) {
      const int64_t rr = r0 + q / w, cc = q % w, count = w - cc < cols - done ? w - cc : cols - done;
      seg_at[segments] = done;
      seg_count[segments] = count;
      seg_col[segments] = cc;
      seg_row[segments] = ring + ((rr + ring_rows) % ring_rows) * pw;
      done += count;
      q += count;
    }
    // a whole tile in one row is stored as vectors: for S = 2 its even and odd lanes to their halves of the row
    const bool whole = segments == 1 && cols == kTile;
    const int64_t c = seg_col[0], half = OddOffset(w);
    const int64_t lanes_even = S == 1 ? 1 + c : ((c + 1) % 2 == 0 ? 0 : half) + (c + 1) / 2;  // padded c + 1, c + 3..
    const int64_t lanes_odd = ((c + 2) % 2 == 0 ? 0 : half) + (c + 2) / 2;                   // padded c + 2, c + 4..
    for (int64_t e0 = 0; e0 < ne; e0 += kM) {
      const int m = ne - e0 < kM ? static_cast<int>(ne - e0) : kM;
      VecOf<L> acc[kM][kJ];
      if (cols <= L) {
        HalfTile<L, kM>(acc, [&](VecOf<L>(&half)[kM][1]) {
          TileProduct<L, kM, kM, L>(cin, we + e0 * cin, b, ldb, be + e0, m, half);
        });
      } else {
        TileProduct<L, kM, kM, kTile>(cin, we + e0 * cin, b, ldb, be + e0, m, acc);
      }
#ifdef CF_HAVE_MASKED_STORE
      if constexpr (L == 16) {
        if (!whole && HasAvx512()) {
          alignas(64) float t[kM][kTile];
#pragma GCC unroll 16
          for (int i = 0; i < kM; ++i)
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) Store<L>(t[i] + q * L, ActivateVec<A, L>(acc[i][q]));
          float *out[kTile];
          if (S == 1) {
            for (int64_t g = 0; g < segments; ++g) out[g] = seg_row[g] + e0 * ldc + 1 + seg_col[g];
            StoreSegmentsWide(&t[0][0], m, segments, seg_at, seg_count, out, ldc);
          } else {
            int64_t out_col[kTile];
            for (int64_t g = 0; g < segments; ++g) {
              out[g] = seg_row[g] + e0 * ldc;
              out_col[g] = seg_col[g] + 1;
            }
            StoreSegmentsSplitWide(&t[0][0], m, segments, seg_at, seg_count, out_col, out, ldc, half);
          }
          continue;
        }
      }
#endif
#pragma GCC unroll 16
      for (int i = 0; i < kM; ++i) {
        if (i >= m) break;
        if (whole) {
          float *out = seg_row[0] + (e0 + i) * ldc;
          if (S == 1) {
#pragma GCC unroll 2
            for (int q = 0; q < kJ; ++q) Store<L>(out + lanes_even + q * L, ActivateVec<A, L>(acc[i][q]));
          } else {
            StoreSplit<L>(ActivateVec<A, L>(acc[i][0]), ActivateVec<A, L>(acc[i][kJ - 1]), out + lanes_even,
                          out + lanes_odd);
          }
          continue;
        }
        float t[kTile];
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) Store<L>(t + q * L, ActivateVec<A, L>(acc[i][q]));
        for (int64_t g = 0; g < segments; ++g)
          StoreSegment<S>(t + seg_at[g], seg_count[g], seg_row[g] + (e0 + i) * ldc, seg_col[g], w);
      }
    }
  }
  for (int64_t r = r0; r < r0 + rows; ++r) {  // the zero padding: column 0 and the columns past the valid ones
    float *row = ring + ((r + ring_rows) % ring_rows) * pw;
    for (int64_t e = 0; e < ne; ++e) {
      float *even = row + e * ldc, *odd = even + OddOffset(w);
      even[0] = 0.0f;
      for (int64_t col = vw + 1; col <= w + 1; ++col) {
        if (S == 1) {
          even[col] = 0.0f;
        } else if (col % 2 == 0) {
          even[col / 2] = 0.0f;
        } else {
          odd[col / 2] = 0.0f;
        }
      }
    }
  }
}

// One depthwise output row (3x3, stride S, + bias + activation) of one channel, `count` pixels from three padded
// input rows (split for S = 2, see SplitEven). The three kernel rows are summed separately: three chains of 3
// multiply-adds are shorter than one of 9.
template <int A, int S>
CF_CLONES void DwRow(const float *__restrict r0, const float *__restrict r1, const float *__restrict r2,
                     const float *k, float b, int64_t w, int64_t count, float *__restrict out) {
  const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
  const int64_t mid = S == 1 ? 1 : OddOffset(w), right = S == 1 ? 2 : 1;  // offsets of the 2nd and 3rd taps
#pragma omp simd
  for (int64_t j = 0; j < count; ++j) {
    const float top = b + k0 * r0[j] + k1 * r0[j + mid] + k2 * r0[j + right];
    const float centre = k3 * r1[j] + k4 * r1[j + mid] + k5 * r1[j + right];
    const float bottom = k6 * r2[j] + k7 * r2[j + mid] + k8 * r2[j + right];
    out[j] = Activate<A>(top + (centre + bottom));
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CF_HAVE_DW_WIDE 1
// Columns j + kBy .. j + kBy + 16 of a row from its vectors at j (a) and j + 16 (n).
template <int kBy>
__attribute__((target("avx512f"), always_inline)) inline __m512 Shifted(__m512 n, __m512 a) {
  return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(n), _mm512_castps_si512(a), kBy));
}

// DwRow on AVX-512 for rows on cache lines (see SplitEven): each tap row is read as aligned vectors, the taps one
// and two columns to the right of a vector are made from it and the next one with valignd, which keeps each vector
// in registers for the next 16 outputs. The loads may read up to 31 floats past a row's last column; lanes past
// `count` are computed from them and not stored.
template <int A, int S>
__attribute__((target("avx512f"))) void DwRowWide(const float *r0, const float *r1, const float *r2, const float *k,
                                                  float b, int64_t w, int64_t count, float *out) {
  const __m512 k0 = _mm512_set1_ps(k[0]), k1 = _mm512_set1_ps(k[1]), k2 = _mm512_set1_ps(k[2]),
               k3 = _mm512_set1_ps(k[3]), k4 = _mm512_set1_ps(k[4]), k5 = _mm512_set1_ps(k[5]),
               k6 = _mm512_set1_ps(k[6]), k7 = _mm512_set1_ps(k[7]), k8 = _mm512_set1_ps(k[8]);
  const __m512 bias = _mm512_set1_ps(b), zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  const int64_t odd = OddOffset(w);
  __m512 a0 = _mm512_load_ps(r0), a1 = _mm512_load_ps(r1), a2 = _mm512_load_ps(r2);
  for (int64_t j = 0; j < count; j += 16) {
    const __m512 n0 = _mm512_load_ps(r0 + j + 16), n1 = _mm512_load_ps(r1 + j + 16), n2 = _mm512_load_ps(r2 + j + 16);
    __m512 top, centre, bottom;
    if (S == 1) {
      top = _mm512_fmadd_ps(k2, Shifted<2>(n0, a0), _mm512_fmadd_ps(k1, Shifted<1>(n0, a0), _mm512_fmadd_ps(k0, a0, bias)));
      centre = _mm512_fmadd_ps(k5, Shifted<2>(n1, a1), _mm512_fmadd_ps(k4, Shifted<1>(n1, a1), _mm512_mul_ps(k3, a1)));
      bottom = _mm512_fmadd_ps(k8, Shifted<2>(n2, a2), _mm512_fmadd_ps(k7, Shifted<1>(n2, a2), _mm512_mul_ps(k6, a2)));
    } else {  // even[j], odd[j], even[j + 1]
      top = _mm512_fmadd_ps(k2, Shifted<1>(n0, a0),
                            _mm512_fmadd_ps(k1, _mm512_load_ps(r0 + odd + j), _mm512_fmadd_ps(k0, a0, bias)));
      centre = _mm512_fmadd_ps(k5, Shifted<1>(n1, a1),
                               _mm512_fmadd_ps(k4, _mm512_load_ps(r1 + odd + j), _mm512_mul_ps(k3, a1)));
      bottom = _mm512_fmadd_ps(k8, Shifted<1>(n2, a2),
                               _mm512_fmadd_ps(k7, _mm512_load_ps(r2 + odd + j), _mm512_mul_ps(k6, a2)));
    }
    __m512 v = _mm512_add_ps(top, _mm512_add_ps(centre, bottom));
    if (A != kNone) v = _mm512_max_ps(v, zero);
    if (A == kRelu6) v = _mm512_min_ps(v, six);
    if (j + 16 <= count) {
      _mm512_storeu_ps(out + j, v);
    } else {
      _mm512_mask_storeu_ps(out + j, static_cast<__mmask16>((1u << (count - j)) - 1), v);
    }
    a0 = n0;
    a1 = n1;
    a2 = n2;
  }
}
#endif

// DwRow for rows laid out as SplitEven says, with L-float vectors: DwRowWide where the CPU has AVX-512 (checked
// on its own: CENTERFACE_TILES=wide runs 16-float tiles on any CPU).
template <int A, int S, int L>
CF_INLINE void DwRowAligned(const float *r0, const float *r1, const float *r2, const float *k, float b, int64_t w,
                            int64_t count, float *out) {
#ifdef CF_HAVE_DW_WIDE
  if (L == 16 && HasAvx512()) return DwRowWide<A, S>(r0, r1, r2, k, b, w, count, out);
#endif
  DwRow<A, S>(r0, r1, r2, k, b, w, count, out);
}

// The `cout` projection outputs of kTile pixels (columns j .. j + cols of y) from the depthwise values b (ne rows
// ldb apart, kTile readable floats each), + bias (+ the residual res, rows ldr apart), into y (rows ldy apart); kM
// outputs at a time.
template <bool R, int L, int kM>
CF_INLINE void ProjectPanels(int64_t cout, const float *b, int64_t ldb, int64_t ne, const float *wp, const float *bp,
                             const float *res, int64_t ldr, float *y, int64_t ldy, int64_t j, int64_t cols) {
  constexpr int64_t kTile = kBlockTile<L>;
  constexpr int kJ = kTile / L;
  for (int64_t co0 = 0; co0 < cout; co0 += kM) {
    const int m = cout - co0 < kM ? static_cast<int>(cout - co0) : kM;
    VecOf<L> acc[kM][kJ];
    if (cols <= L) {
      HalfTile<L, kM>(acc, [&](VecOf<L>(&half)[kM][1]) {
        PanelProduct<L, kM, L>(ne, wp + co0 * ne, b, ldb, bp + co0, m, half);
      });
    } else {
      PanelProduct<L, kM, kTile>(ne, wp + co0 * ne, b, ldb, bp + co0, m, acc);
    }
#pragma GCC unroll 16
    for (int i = 0; i < kM; ++i) {
      if (i >= m) break;
      float *out = y + (co0 + i) * ldy + j;
      const float *r = R ? res + (co0 + i) * ldr + j : nullptr;
      if (cols == kTile) {
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) Store<L>(out + q * L, R ? acc[i][q] + Load<L>(r + q * L) : acc[i][q]);
      } else {
        float t[kTile];
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) Store<L>(t + q * L, acc[i][q]);
        for (int64_t u = 0; u < cols; ++u) out[u] = R ? t[u] + r[u] : t[u];
      }
    }
  }
}

// `rows` output rows of depthwise 3x3 (stride S) + bias + activation of `ne` channels into `dw` (per
// channel the rows' wo-pixel runs one after the other, channels ldd >= rows * wo rounded up to kTile apart; in
// cache), then the 1x1 projection to `cout` channels + bias (+ residual) from there, kTile pixels of the run at a
// time (y's rows are contiguous too). Channel 0's padded input row i (0 <= i < valid_h) is at
// ring + ((i + R) % R) * Pitch, channels ldc apart; rows outside the image are `zero` (one padded row of zeros, for
// every channel). Output row o0 + g reads input rows i0 + g * S .. + 2. Tiles past the run's end read, and never
// store, the buffer's last floats.
template <int A, int S, bool R, int L, int kM>
CF_CLONES void DwProjectRows(const float *ring, int64_t ring_rows, int64_t ldc, int64_t i0, int64_t rows, int64_t ne,
                             int64_t w, const float *wd, const float *bd, const float *wp, const float *bp,
                             int64_t cout, int64_t wo, const float *res, int64_t ldr, float *y, int64_t ldy,
                             float *dw, int64_t ldd, int64_t valid_h, const float *zero) {
  constexpr int64_t kTile = kBlockTile<L>;
  const int64_t pw = Pitch<S>(w);
  for (int64_t g = 0; g < rows; ++g) {
    const int64_t i = i0 + g * S;  // the first of the three input rows
    const float *t[3];
    int64_t ld[3];
    for (int k = 0; k < 3; ++k) {
      const bool inside = i + k >= 0 && i + k < valid_h;
      t[k] = inside ? ring + ((i + k + ring_rows) % ring_rows) * pw : zero;
      ld[k] = inside ? ldc : 0;
    }
    for (int64_t ch = 0; ch < ne; ++ch)
      DwRowAligned<A, S, L>(t[0] + ch * ld[0], t[1] + ch * ld[1], t[2] + ch * ld[2], wd + 9 * ch, bd[ch], w, wo,
                            dw + ch * ldd + g * wo);
  }
  const int64_t total = rows * wo;
  for (int64_t p = 0; p < total; p += kTile)
    ProjectPanels<R, L, kM>(cout, dw + p, ldd, ne, wp, bp, res, ldr, y, ldy, p, total - p < kTile ? total - p : kTile);
}

// Output pixels per group of rows that RunBlock computes together: rows narrower than this are grouped, so that the
// projection's tiles are not mostly padding.
constexpr int64_t kGroupPixels = 64;

struct Shape {
  int64_t n, cin, h, w, e, cout, ho, wo, valid_h, valid_w;
};

// Expansion kinds: none (inputs x, wd, bd, wp, bp, valid) or 1x1 (x, we, be, wd, bd, wp, bp, valid).
enum Expand { kNoExpand = 0, kPointwise = 1 };

// Output rows that RunBlock computes together, and the rows of its per-thread ring of expanded input rows.
inline int64_t GroupRows(const Shape &s) { return (kGroupPixels + s.wo - 1) / s.wo; }
template <int S>
int64_t RingRows(const Shape &s) {
  return (GroupRows(s) - 1) * S + 3;
}

// Whether a block runs on whole images (WholeImage) rather than row by row (RunBlock): when its expanded image
// (E x H x W floats) is at most 1200 KB, or when the ring of expanded rows RunBlock keeps per thread would be more
// than 768 KB, most of a core's 1 MB L2, so that the weights read again for every group of rows would come from
// L3 (a stride-2 block with narrow output rows groups many input rows: 576 channels x 9 rows of 42 floats,
// 870 KB, for 30x40 -> 15x20). Measured on a 2-core Zen 4: the 30x40 blocks of a 640x480 input (1.8-2.7 MB,
// rings of 260-390 KB) ran 10-15% faster row by row; the 15x20 ones (1.15 MB) and the stride-2 30x40 -> 15x20
// block 10-15% faster whole. CENTERFACE_BLOCK_WHOLE_KB (read on every call, so that tests can cover both ways)
// replaces the rule by "expanded image at most that many KB".
template <int S>
bool UseWholeImage(const Shape &s) {
  const int64_t expanded = s.e * s.h * s.w * 4;
  const int64_t kb = EnvInt("CENTERFACE_BLOCK_WHOLE_KB", -1);
  if (kb >= 0) return expanded <= kb * 1024;
  return expanded <= 1200 * 1024 || s.e * RingRows<S>(s) * Pitch<S>(s.w) * 4 > 768 * 1024;
}

// One thread's share of the projection, kept as partial sums over its expanded channels: for each of `ntiles`
// kTile-pixel tiles of depthwise values (`tiles`: for each tile its ne x kTile values, channel by channel, see
// PlaneToTiles) and each of `panels` panels of kM projection outputs, the products with the panel's weights of
// input channels [c0, c0 + ne) (`wp`: panels of ne_total input channels, see PackPanels) are added to the
// (panel, tile) block of `partial` ([panel][tile][kM][kTile] floats), or stored there for the thread's first
// chunk. `pixels` is the image's pixel count (a last tile of at most L pixels takes a one-vector product);
// `cout` the projection's outputs (a short last panel computes only the thirds of its rows it has).
template <int L, int kM>
CF_CLONES void ProjectPartial(const float *tiles, int64_t ntiles, int64_t ne, const float *wp, int64_t ne_total,
                              int64_t c0, int64_t cout, int64_t pixels, bool first, float *partial) {
  constexpr int64_t kTile = kBlockTile<L>;
  constexpr int kJ = kTile / L;
  const int64_t panels = (cout + kM - 1) / kM;
  for (int64_t t = 0; t < ntiles; ++t) {
    const float *b = tiles + t * ne * kTile;
    const bool half = pixels - t * kTile <= L;
    for (int64_t pn = 0; pn < panels; ++pn) {
      const int m = cout - pn * kM < kM ? static_cast<int>(cout - pn * kM) : kM;
      const float *pa = wp + (pn * ne_total + c0) * kM;
      float *out = partial + (pn * ntiles + t) * kM * kTile;
      VecOf<L> acc[kM][kJ];
#pragma GCC unroll 16
      for (int i = 0; i < kM; ++i)
#pragma GCC unroll 2
        for (int q = 0; q < kJ; ++q) acc[i][q] = first ? VecOf<L>{} : Load<L>(out + i * kTile + q * L);
      auto product = [&](auto &tile, auto pixels_tag) {
        constexpr int64_t kP = decltype(pixels_tag)::value;
        if (m > 2 * kM / 3) {
          TileAccumulate<L, kM, kM, kP>(ne, pa, b, kTile, tile);
        } else if (m > kM / 3) {
          TileAccumulate<L, kM, 2 * kM / 3, kP>(ne, pa, b, kTile, tile);
        } else {
          TileAccumulate<L, kM, kM / 3, kP>(ne, pa, b, kTile, tile);
        }
      };
      if (half) {
        VecOf<L> one[kM][1];
#pragma GCC unroll 16
        for (int i = 0; i < kM; ++i) one[i][0] = acc[i][0];
        product(one, std::integral_constant<int64_t, L>{});
#pragma GCC unroll 16
        for (int i = 0; i < kM; ++i) Store<L>(out + i * kTile, one[i][0]);
      } else {
        product(acc, std::integral_constant<int64_t, kTile>{});
#pragma GCC unroll 16
        for (int i = 0; i < kM; ++i)
#pragma GCC unroll 2
          for (int q = 0; q < kJ; ++q) Store<L>(out + i * kTile + q * L, acc[i][q]);
      }
    }
  }
}

// y = bias + the threads' partial sums (ProjectPartial; `partials[k]`, `count` of them) (+ res, planes alike) for
// (panel, tile) blocks [i0, i1) of an image of `pixels` pixels (`plane` floats apart in y).
template <bool R, int L, int kM>
CF_CLONES void SumPartials(const float *const *partials, int count, int64_t ntiles, int64_t cout, const float *bp,
                           const float *res, float *y, int64_t pixels, int64_t i0, int64_t i1) {
  constexpr int64_t kTile = kBlockTile<L>;
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t pn = item / ntiles, t = item % ntiles, p = t * kTile;
    const int64_t cols = pixels - p < kTile ? pixels - p : kTile;
    for (int64_t i = 0; i < kM && pn * kM + i < cout; ++i) {
      const int64_t co = pn * kM + i;
      float sum[kTile];
      for (int64_t q = 0; q < kTile; q += L) {
        VecOf<L> v = VecOf<L>{} + bp[co];
        for (int k = 0; k < count; ++k) v += Load<L>(partials[k] + item * kM * kTile + i * kTile + q);
        Store<L>(sum + q, v);
      }
      float *out = y + co * pixels + p;
      const float *r = R ? res + co * pixels + p : nullptr;
      for (int64_t u = 0; u < cols; ++u) out[u] = R ? sum[u] + r[u] : sum[u];
    }
  }
}

// One channel's depthwise plane (`count` floats, contiguous) into its rows of the tile-major buffer (see
// ProjectPartial; channel e of tile t at tiles + (t * ne + e) * kTile). Lanes past `count` in the last tile take
// whatever the plane buffer holds after it (never stored: lanes do not mix).
template <int L>
CF_CLONES void PlaneToTiles(const float *plane, int64_t count, int64_t ne, float *tiles) {
  constexpr int64_t kTile = kBlockTile<L>;
  constexpr int kJ = kTile / L;
  for (int64_t t = 0; t * kTile < count; ++t)
#pragma GCC unroll 2
    for (int q = 0; q < kJ; ++q) Store<L>(tiles + t * ne * kTile + q * L, Load<L>(plane + t * kTile + q * L));
}

// The block on whole images, for the small (low-resolution) ones: row by row, each thread would expand the input
// rows next to its share again and read both weight matrices for a few rows only. The threads split the expanded
// channels, and each works on its own share from the expansion to the projection: a chunk of channels at a time
// (whole padded planes in cache) is expanded, convolved plane by plane into a tile-major buffer (PlaneToTiles) and
// projected into the thread's partial sums of all outputs (ProjectPartial); the partial sums are then added up
// (SumPartials). So each core reads only its share of both weight matrices, and the depthwise values never leave
// the core that computed them: with the projection split by pixels instead, every core read all its weights and
// half of the depthwise values came from the other core's cache.
template <int A, int S, bool R, int X, int L, int kM>
void WholeImage(const Shape &s, const float *x, const float *we, const float *be, const float *wd, const float *bd,
                const float *wp, const float *bp, float *y) {
  constexpr int64_t kTile = kBlockTile<L>;
  const int64_t hw = s.h * s.w, howo = s.ho * s.wo, pw = Pitch<S>(s.w), ph = s.h + 2, plane = ph * pw;
  const int64_t tiles = (howo + kTile - 1) / kTile, panels = (s.cout + kM - 1) / kM;
  const int64_t partial_floats = panels * tiles * kM * kTile;  // per image
  // channels per chunk: a multiple of kM whose padded planes fill about 256 KB
  int64_t chunk = (256 * 1024 / 4 / plane) / kM * kM;
  if (chunk < kM) chunk = kM;
  // each thread's partial sums, in its own scratch (read by all threads when they are added up)
  std::vector<float *> partials(cf_threads::Threads(), nullptr);
  cf_threads::Parallel([&](int t, int n_threads) {
    int64_t e0, e1;
    cf_threads::SplitChunks(s.e, kM, t, n_threads, &e0, &e1);
    if (e1 <= e0) return;
    partials[t] = ThreadScratch(0, s.n * partial_floats);
    float *const padded = ThreadScratch(1, chunk * plane + 2 * kTile);  // the chunk's padded planes
    float *const scratch = X ? ThreadScratch(2, s.cin * kTile) : nullptr;
    float *const out_at = ThreadScratch(3, tiles * kTile);  // one channel's depthwise plane, read by whole tiles
    float *const dw = ThreadScratch(4, tiles * chunk * kTile);
    static thread_local std::vector<float> zeros;
    const float *const zero = ZeroRow(&zeros, pw);
    for (int64_t n = 0; n < s.n; ++n) {
      const float *xn = x + n * s.cin * hw;
      for (int64_t c0 = e0; c0 < e1; c0 += chunk) {
        const int64_t ne = e1 - c0 < chunk ? e1 - c0 : chunk;
        // padded input row i (0 <= i < valid_h) of a channel is its plane's row i; rows outside are read from
        // the zero row
        for (int64_t e = 0; e < ne && !X; ++e)
          for (int64_t i = 0; i < s.valid_h; ++i)
            PadCopy<S>(xn + (c0 + e) * hw + i * s.w, padded + e * plane + i * pw, s.w, s.valid_w);
        if (X)
          ExpandRows<A, S, L, kM>(xn, hw, s.cin, we + c0 * s.cin, be + c0, ne, s.w, s.valid_w, 0, s.valid_h,
                                  padded, plane, ph, scratch);
        for (int64_t e = 0; e < ne; ++e) {
          const float *p = padded + e * plane;
          auto row = [&](int64_t i) { return i >= 0 && i < s.valid_h ? p + i * pw : zero; };
          for (int64_t o = 0; o < s.ho; ++o) {
            const int64_t i = o * S - 1;  // the first of the output row's three input rows
            DwRowAligned<A, S, L>(row(i), row(i + 1), row(i + 2), wd + 9 * (c0 + e), bd[c0 + e], s.w, s.wo,
                                  out_at + o * s.wo);
          }
          PlaneToTiles<L>(out_at, howo, ne, dw + e * kTile);
        }
        ProjectPartial<L, kM>(dw, tiles, ne, wp, s.e, c0, s.cout, howo, c0 == e0, partials[t] + n * partial_floats);
      }
    }
  });
  int count = 0;
  for (float *partial : partials)
    if (partial != nullptr) partials[count++] = partial;
  cf_threads::Parallel([&](int t, int n_threads) {
    int64_t i0, i1;
    cf_threads::Split(panels * tiles, t, n_threads, &i0, &i1);
    for (int64_t n = 0; n < s.n; ++n) {
      std::vector<const float *> image(count);
      for (int k = 0; k < count; ++k) image[k] = partials[k] + n * partial_floats;
      SumPartials<R, L, kM>(image.data(), count, tiles, s.cout, bp, R ? x + n * s.cin * hw : nullptr,
                            y + n * s.cout * howo, howo, i0, i1);
    }
  });
}

template <int A, int S, bool R, int X, int L, int kM>
void RunBlock(const Shape &s, const float *x, const float *we, const float *be, const float *wd, const float *bd,
              const float *wp, const float *bp, float *y) {
  constexpr int64_t kTile = kBlockTile<L>;
  const int64_t hw = s.h * s.w, howo = s.ho * s.wo, pw = Pitch<S>(s.w);
  const int64_t group = GroupRows(s);  // output rows computed together
  // per channel a ring of the padded input rows a group needs: input row i is in ring row (i + R) % R
  const int64_t ring_rows = RingRows<S>(s), ldc = ring_rows * pw;
  const int64_t ldd = (group * s.wo + kTile - 1) / kTile * kTile;  // channel stride of the depthwise buffer
  cf_threads::Parallel([&](int t, int threads) {
    float *const rows_at = ThreadScratch(0, s.e * ldc + 2 * kTile);
    float *const dw_at = ThreadScratch(1, s.e * ldd + kTile);
    float *const scratch = X ? ThreadScratch(2, s.cin * kTile) : nullptr;
    static thread_local std::vector<float> zeros;
    const float *const zero = ZeroRow(&zeros, pw);
    // a contiguous run of output rows per thread, so that each thread expands an input row once
    int64_t first, last;
    cf_threads::Split(s.n * s.ho, t, threads, &first, &last);
    int64_t next = 0;  // the next input row of the current image to put in the ring
    for (int64_t item = first; item < last;) {
      const int64_t n = item / s.ho, o0 = item % s.ho;
      int64_t rows = group;  // this group's output rows: within the thread's run and the image
      if (rows > last - item) rows = last - item;
      if (rows > s.ho - o0) rows = s.ho - o0;
      const float *xn = x + n * s.cin * hw;
      if (item == first || o0 == 0) next = o0 * S - 1;
      const int64_t need = (o0 + rows - 1) * S + 1;  // the group's last input row
      // the valid rows are expanded in one run; rows outside the image are read from the zero row instead
      const int64_t v0 = next > 0 ? next : 0, v1 = need + 1 < s.valid_h ? need + 1 : s.valid_h;
      if (v1 > v0) {
        if (X) {
          ExpandRows<A, S, L, kM>(xn, hw, s.cin, we, be, s.e, s.w, s.valid_w, v0, v1 - v0, rows_at, ldc,
                                  ring_rows, scratch);
        } else {
          for (int64_t i = v0; i < v1; ++i) {
            float *slot = rows_at + ((i + ring_rows) % ring_rows) * pw;
            for (int64_t e = 0; e < s.e; ++e) PadCopy<S>(xn + e * hw + i * s.w, slot + e * ldc, s.w, s.valid_w);
          }
        }
      }
      next = need + 1;
      DwProjectRows<A, S, R, L, kM>(rows_at, ring_rows, ldc, o0 * S - 1, rows, s.e, s.w, wd, bd, wp, bp, s.cout,
                                    s.wo, R ? xn + o0 * s.w : nullptr, hw, y + n * s.cout * howo + o0 * s.wo, howo,
                                    dw_at, ldd, s.valid_h, zero);
      item += rows;
    }
  });
}

// Block() once the shapes are checked, with this CPU's tiles: the weights as panels, then whole images or rows.
template <int A, int S, bool R, int X, int L, int kM>
int TiledBlock(const Shape &s, void **params, int *ndims, int64_t **shapes) {
  const int off = X ? 2 : 0;
  static thread_local std::vector<float> we_panels, wp_panels;
  const float *we = X ? Panels<kM>(params[1], ndims[1], shapes[1], s.e, s.cin, &we_panels) : nullptr;
  const float *wp = Panels<kM>(params[3 + off], ndims[3 + off], shapes[3 + off], s.cout, s.e, &wp_panels);
  if ((X && we == nullptr) || wp == nullptr) return 1;
  if (s.n == 0) return 0;
  const float *x = static_cast<const float *>(params[0]);
  const float *be = X ? static_cast<const float *>(params[2]) : nullptr;
  const float *wd = static_cast<const float *>(params[1 + off]);
  const float *bd = static_cast<const float *>(params[2 + off]);
  const float *bp = static_cast<const float *>(params[4 + off]);
  float *y = static_cast<float *>(params[6 + off]);
  if (UseWholeImage<S>(s)) {
    WholeImage<A, S, R, X, L, kM>(s, x, we, be, wd, bd, wp, bp, y);
  } else {
    RunBlock<A, S, R, X, L, kM>(s, x, we, be, wd, bd, wp, bp, y);
  }
  return 0;
}

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
  if (Count(ndims[1 + off], shapes[1 + off]) != s.e * 9 || Count(ndims[2 + off], shapes[2 + off]) != s.e ||
      Count(ndims[5 + off], shapes[5 + off]) != 4)
    return 1;
  if (shapes[out][0] != s.n || shapes[out][1] != s.cout || shapes[out][2] != s.ho || shapes[out][3] != s.wo) return 1;
  if (R && (S != 1 || s.cin != s.cout)) return 1;
  // valid region (cf_common.h ValidPlane)
  if (!ValidPlane(static_cast<const float *>(params[5 + off]), s.h, s.w, &s.valid_h, &s.valid_w)) return 1;
  if (WideVectors()) return TiledBlock<A, S, R, X, 16, 12>(s, params, ndims, shapes);
  return TiledBlock<A, S, R, X, 8, 6>(s, params, ndims, shapes);
}

// ---------------------------------------------------------------------------------------------------------------
// The network's stem fused with its first block: 3x3 stride-2 conv (Cin -> C, padding 1) + bias + activation ->
// 3x3 depthwise (stride 1) + bias + activation -> 1x1 projection (C -> Cout) + bias. At full resolution the stem's
// output (C = 32 channels at half the input size, ~10 MB at 640x480) would be written to memory and read back; here
// it exists only as a band of rows in cache. The stem runs directly (not as im2col + GEMM, whose K = 27 is too
// small for a GEMM and whose stride-2 gather is slow): every input row is split once into its even and odd columns,
// so each of the 27 taps is a unit-stride row, and kC channels x 16 outputs are accumulated in vector registers.

// Bytes of the stem's band buffer per thread: CENTERFACE_BLOCK_BAND_KB (a tuning knob), default 1 MB.
inline int64_t BandBytes() {
  static const int64_t bytes = [] {
    const int64_t kb = EnvInt("CENTERFACE_BLOCK_BAND_KB", 0);
    return (kb > 0 ? kb : 1024) * 1024;
  }();
  return bytes;
}


// kC stem channels (from c0) x kJ vectors of L pixels (from column j) of StemRow, accumulated in registers.
template <int A, int L, int kC, int kJ>
CF_INLINE void StemTile(const float *const *taps, int ntaps, const float *ws, const float *bs, int64_t c0, int64_t j,
                        float *out, int64_t ld) {
  typedef typename Vec<L>::type V;
  V acc[kC][kJ];
#pragma GCC unroll 16
  for (int k = 0; k < kC; ++k)
#pragma GCC unroll 4
    for (int q = 0; q < kJ; ++q) acc[k][q] = V{} + bs[c0 + k];
  for (int t = 0; t < ntaps; ++t) {
    V v[kJ];
#pragma GCC unroll 4
    for (int q = 0; q < kJ; ++q) v[q] = Load<L>(taps[t] + j + q * L);
    const float *wt = ws + c0 * ntaps + t;
#pragma GCC unroll 16
    for (int k = 0; k < kC; ++k) {
      const float w = wt[k * ntaps];
#pragma GCC unroll 4
      for (int q = 0; q < kJ; ++q) acc[k][q] += w * v[q];
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < kC; ++k)
#pragma GCC unroll 4
    for (int q = 0; q < kJ; ++q) Store<L>(out + (c0 + k) * ld + 1 + j + q * L, ActivateVec<A, L>(acc[k][q]));
}

// One stem output row for all C channels: out[c * ld + 1 + j] = act(bs[c] + sum_t ws[c * 27 + t] * taps[t][j]) for
// j < vwo, zero for vwo <= j < wo, and zero borders out[c * ld] and out[c * ld + wo + 1]. taps[t], t = (ci * 3 + ki) *
// 3 + kj, is the input row of channel ci and kernel row ki shifted to kernel column kj (Cin = ntaps / 9). kC
// channels x two vectors of pixels (each weight broadcast serves two multiply-adds) are accumulated in registers at
// a time, then one vector, then single pixels.
template <int A, int L, int kC>
CF_CLONES void StemRow(const float *const *taps, int ntaps, const float *ws, const float *bs, int64_t c_out,
                       int64_t wo, int64_t vwo, float *out, int64_t ld) {
  int64_t c0 = 0;
  for (; c0 + kC <= c_out; c0 += kC) {
    int64_t j = 0;
    for (; j + 2 * L <= vwo; j += 2 * L) StemTile<A, L, kC, 2>(taps, ntaps, ws, bs, c0, j, out, ld);
    for (; j + L <= vwo; j += L) StemTile<A, L, kC, 1>(taps, ntaps, ws, bs, c0, j, out, ld);
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

template <int A, int L, int kC, int kM>
int StemBlockTiled(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr int64_t kTile = kBlockTile<L>;
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
      Count(ndims[7], shapes[7]) != 4)
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
  static thread_local std::vector<float> wp_panels;
  const float *wp = Panels<kM>(params[5], ndims[5], shapes[5], cout, c, &wp_panels);
  if (wp == nullptr) return 1;
  const float *bp = static_cast<const float *>(params[6]);
  float *y = static_cast<float *>(params[8]);
  const int64_t vho = (vh - 1) / 2 + 1, vwo = (vw - 1) / 2 + 1;  // the stem output's valid part
  const int64_t pw = Pitch<1>(wo), howo = ho * wo;
  // Output rows per band: the band's stem rows (band + 2, padded) within BandBytes(), and at most an even share of
  // the image per thread.
  int64_t band = BandBytes() / (c * 4 * pw);
  const int64_t share = (ho + cf_threads::Threads() - 1) / cf_threads::Threads();
  if (band > share) band = share;
  if (band < 1) band = 1;
  const int64_t bands = (ho + band - 1) / band, items = n * bands;
  const int64_t ld = (band + 2) * pw;  // channel stride of the stem buffer
  const int64_t ldd = (wo + kTile - 1) / kTile * kTile;  // channel stride of the depthwise buffer
  cf_threads::Parallel([&](int t, int threads) {
    float *const stem_at = ThreadScratch(0, c * ld + 2 * kTile + 4);
    float *const tile_at = ThreadScratch(1, c * ldd + kTile);
    static thread_local std::vector<float> zeros;
    // split input rows: even columns, then odd ones, each on a cache line (2 of a tap triple's loads aligned)
    const int64_t odd_at = RoundUp(wo, kAlign), split_row = odd_at + RoundUp(wo + 1, kAlign);
    float *const split_at = ThreadScratch(2, cin * 3 * split_row);
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
        std::memmove(stem_at + ch * ld, stem_at + ch * ld + band * pw, sizeof(float) * 2 * pw);
      const float *xn = x + img * cin * h * w;
      for (int64_t r = keep; r < rows_out + 2; ++r) {
        const int64_t i = o0 - 1 + r;  // stem output row held in buffer row r
        float *dst = stem_at + r * pw;
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
            float *even = split_at + (ci * 3 + ki) * split_row, *odd = even + odd_at;
            SplitRow(xn + (ci * h + row) * w, vw, wo, even, odd);
            taps[tap] = odd;          // column 2j - 1
            taps[tap + 1] = even;     // column 2j
            taps[tap + 2] = odd + 1;  // column 2j + 1
          }
        }
        StemRow<A, L, kC>(taps, static_cast<int>(cin * 9), ws, bs, c, wo, vwo, dst, ld);
      }
      for (int64_t o = 0; o < rows_out; ++o) {
        // the band's rows outside the image are zero already: every band row counts as inside
        DwProjectRows<A, 1, false, L, kM>(stem_at, band + 2, ld, o, 1, c, wo, wd, bd, wp, bp, cout, wo, nullptr, 0,
                                          y + img * cout * howo + (o0 + o) * wo, howo, tile_at, ldd, band + 2,
                                          nullptr);
      }
    }
  });
  return 0;
}

template <int A>
int StemBlock(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (WideVectors()) return StemBlockTiled<A, 16, 8, 12>(nparam, params, ndims, shapes, dtypes);
  return StemBlockTiled<A, 8, 4, 6>(nparam, params, ndims, shapes, dtypes);
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

// For callers that pack the weights once (centerface_flow/fused/program.py): the panel height kM of this process's
// tiles if input `input` of kernel `name` may be given as panels (a (panels, k, kM) tensor, see PackPanels) instead
// of MindSpore's layout, else 0. The 1x1 convolutions' weights of the blocks: expansion and projection.
int CfPanelRows(const char *name, int input) {
  const int km = WideVectors() ? 12 : 6;
  if (std::strncmp(name, "CfStemIrDw", 10) == 0) return input == 5 ? km : 0;
  if (std::strncmp(name, "CfIrDw", 6) == 0) return input == 3 ? km : 0;
  if (std::strncmp(name, "CfIr", 4) == 0) return input == 1 || input == 5 ? km : 0;
  return 0;
}
}
