// Helpers shared by the native kernels (header-only): the load-time ISA dispatch macro, activations, argument checks.
#ifndef CENTERFACE_KERNELS_CF_COMMON_H_
#define CENTERFACE_KERNELS_CF_COMMON_H_

#include <cstdint>
#include <cstring>

// Hot loops are built for AVX-512, AVX2+FMA and baseline x86-64 and chosen at load time (GCC target_clones), so a
// library runs on any x86-64 CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CF_CLONES
#endif

namespace cf_common {

enum Act { kNone = 0, kRelu = 1, kRelu6 = 2 };

// MindSpore names float32 "float32" (or "float" in some versions).
inline bool IsF32(const char *dtype) { return std::strcmp(dtype, "float32") == 0 || std::strcmp(dtype, "float") == 0; }

// Number of elements of a tensor shape.
inline int64_t Count(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

}  // namespace cf_common

#endif  // CENTERFACE_KERNELS_CF_COMMON_H_
