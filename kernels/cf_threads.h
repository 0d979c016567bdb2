// How many threads the native kernels' OpenMP regions use (header-only).
//
// MindSpore sets OMP_NUM_THREADS=1 in the process environment when it is imported (and child processes inherit
// it), so OpenMP's default team in our kernels would be one thread (measured: half the speed on a 2-core machine).
// Every parallel region therefore asks for Threads(): CENTERFACE_NUM_THREADS (centerface_flow.runtime sets it before
// MindSpore is imported), else the number of CPUs this process may run on.
#ifndef CENTERFACE_KERNELS_CF_THREADS_H_
#define CENTERFACE_KERNELS_CF_THREADS_H_

#include <omp.h>
#include <sched.h>

#include <cstdlib>

namespace cf_threads {

inline int FromEnv(const char *name) {
  const char *value = std::getenv(name);
  if (value == nullptr) return 0;
  const int n = std::atoi(value);
  return n > 0 ? n : 0;
}

inline int Threads() {
  static const int n = [] {
    if (int v = FromEnv("CENTERFACE_NUM_THREADS")) return v;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return omp_get_num_procs();
  }();
  return n;
}

}  // namespace cf_threads

#endif  // CENTERFACE_KERNELS_CF_THREADS_H_
