// OpenBLAS's single-precision GEMM for the native kernels, loaded at run time (header-only).
//
// The `scipy-openblas32` wheel (a dependency of the package) provides libscipy_openblas.so; centerface_flow sets
// CENTERFACE_OPENBLAS_LIB to its path before the first operator is built, and LoadBlas() dlopen's it once per
// process and sets it single-threaded (the kernels parallelise with cf_threads.h and call one GEMM per thread).
#ifndef CENTERFACE_KERNELS_CF_BLAS_H_
#define CENTERFACE_KERNELS_CF_BLAS_H_

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace cf_blas {

// CBLAS enumerations (cblas.h).
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using SgemmFn = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                         int lda, const float *b, int ldb, float beta, float *c, int ldc);
using SetThreadsFn = void (*)(int);

inline SgemmFn &Sgemm() {
  static SgemmFn fn = nullptr;
  return fn;
}

// Loads OpenBLAS once; false when CENTERFACE_OPENBLAS_LIB is unset or the library / symbol cannot be loaded.
inline bool LoadBlas() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char *path = std::getenv("CENTERFACE_OPENBLAS_LIB");
    if (path == nullptr || *path == '\0') return;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return;
    auto set_threads = reinterpret_cast<SetThreadsFn>(dlsym(lib, "scipy_openblas_set_num_threads"));
    auto sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "scipy_cblas_sgemm"));
    if (sgemm == nullptr) return;
    if (set_threads != nullptr) set_threads(1);
    Sgemm() = sgemm;
  });
  return Sgemm() != nullptr;
}

// Row-major C (m x n, ldc) = A (m x k, lda; transposed if trans_a) . B (k x n, ldb; transposed if trans_b)
// [+ C if accumulate].
inline void Gemm(bool trans_a, bool trans_b, long m, long n, long k, const float *a, long lda, const float *b,
                 long ldb, float *c, long ldc, bool accumulate = false) {
  Sgemm()(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, static_cast<int>(m),
          static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb),
          accumulate ? 1.0f : 0.0f, c, static_cast<int>(ldc));
}

}  // namespace cf_blas

#endif  // CENTERFACE_KERNELS_CF_BLAS_H_
