// The native kernels' worker threads (header-only; one pool per process, since all kernels are one library).
//
// Why not OpenMP: a MindSpore graph runs the kernels one after another with ~20 us of framework work in between.
// With OMP_WAIT_POLICY=PASSIVE (needed so that idle OpenMP threads do not starve MindSpore's own threads) every
// parallel region had to wake a sleeping thread, which costs ~75 us on this kind of VM (measured: 20 tiny kernel
// calls took 2.4 ms with two threads and 0.34 ms with one). libgomp's spinning cannot be limited to the short gaps
// between kernels either: it keeps one team per calling thread, and MindSpore calls kernels from several threads.
//
// This pool keeps Threads() - 1 workers. After a job they spin for SpinMicros() (CENTERFACE_SPIN_US, default 200)
// waiting for the next one, then sleep on a condition variable; so the kernels of one network call find them awake,
// and an idle process uses no CPU. Jobs are run one at a time; a kernel called while another one holds the pool (two
// MindSpore threads at once) runs on its calling thread alone, split as it would be across the pool. A forked child
// builds a new pool on first use.
//
// Threads(): CENTERFACE_NUM_THREADS (centerface_flow.runtime sets it before MindSpore is imported), else the CPUs
// this process may run on. OMP_NUM_THREADS cannot serve: MindSpore sets it to 1 in the environment on import.
#ifndef CENTERFACE_KERNELS_CF_THREADS_H_
#define CENTERFACE_KERNELS_CF_THREADS_H_

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "cf_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace cf_threads {

// A hint to the CPU inside a spin loop.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline int Threads() {
  static const int n = [] {
    const int64_t v = cf_common::EnvInt("CENTERFACE_NUM_THREADS", 0);
    if (v > 0) return static_cast<int>(v);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? static_cast<int>(online) : 1;
  }();
  return n;
}

// How long idle workers wait actively for the next job before sleeping (CENTERFACE_SPIN_US; 0 = never spin).
inline int64_t SpinMicros() {
  static const int64_t us = [] {
    const int64_t v = cf_common::EnvInt("CENTERFACE_SPIN_US", 200);
    return v > 0 ? v : int64_t{0};
  }();
  return us;
}

// [*begin, *end) of `count` items for thread t of n (contiguous, sizes differ by at most one).
inline void Split(int64_t count, int t, int n, int64_t *begin, int64_t *end) {
  const int64_t base = count / n, extra = count % n;
  *begin = t * base + (t < extra ? t : extra);
  *end = *begin + base + (t < extra ? 1 : 0);
}

// Split() of `count` items in whole chunks of `chunk` items (the last chunk may be short).
inline void SplitChunks(int64_t count, int64_t chunk, int t, int n, int64_t *begin, int64_t *end) {
  int64_t b, e;
  Split((count + chunk - 1) / chunk, t, n, &b, &e);
  *begin = b * chunk < count ? b * chunk : count;
  *end = e * chunk < count ? e * chunk : count;
}

class Pool {
 public:
  explicit Pool(int threads) : threads_(threads < 1 ? 1 : threads) {
    for (int t = 1; t < threads_; ++t) workers_.emplace_back([this, t] { Work(t); });
  }
  Pool(const Pool &) = delete;
  Pool &operator=(const Pool &) = delete;

  // Calls fn(t, n) for t = 0 .. n-1, n = threads(), on n threads (the caller is thread 0); returns when all calls
  // have returned. When another job holds the pool, the caller makes the n calls itself, one after another: the
  // work is split the same way whoever runs it, so a kernel's result (its reductions' order) does not depend on
  // whether MindSpore ran another kernel at the same time.
  template <typename Fn>
  void Run(Fn &fn) {
    std::unique_lock<std::mutex> job(job_mu_, std::try_to_lock);
    if (threads_ == 1 || !job.owns_lock()) {
      for (int t = 0; t < threads_; ++t) fn(t, threads_);
      return;
    }
    call_ = [](void *ctx, int t, int n) { (*static_cast<Fn *>(ctx))(t, n); };
    ctx_ = &fn;
    pending_.store(threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(sleep_mu_);
      wake_.notify_all();
    }
    fn(0, threads_);
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 4096) {
        CpuRelax();
      } else {
        sched_yield();  // a worker was descheduled: let it run
      }
    }
  }

 private:
  void Work(int t) {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), "cf_kernels");  // else it inherits its creator's name (a MindSpore thread's)
#endif
    uint64_t seen = 0;
    for (;;) {
      uint64_t now = generation_.load(std::memory_order_acquire);
      if (now == seen) now = Wait(seen);
      seen = now;
      call_(ctx_, t, threads_);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  // Waits until the generation differs from `seen` (spinning first, then sleeping); returns the new generation.
  uint64_t Wait(uint64_t seen) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::microseconds(SpinMicros());
    for (int i = 1;; ++i) {
      const uint64_t now = generation_.load(std::memory_order_acquire);
      if (now != seen) return now;
      CpuRelax();
      if (i % 64 == 0 && Clock::now() >= deadline) break;
    }
    std::unique_lock<std::mutex> lock(sleep_mu_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    uint64_t now;
    while ((now = generation_.load(std::memory_order_seq_cst)) == seen) wake_.wait(lock);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return now;
  }

  const int threads_;
  std::vector<std::thread> workers_;  // never joined: the pool lives until the process exits
  std::mutex job_mu_, sleep_mu_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0}, sleepers_{0};
  void (*call_)(void *, int, int) = nullptr;
  void *ctx_ = nullptr;
};

// The process's pool (created on first use, and again in a forked child, whose copy has no worker threads).
inline Pool &GetPool() {
  static std::mutex mu;
  static Pool *pool = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(mu);
  if (pool == nullptr || owner != getpid()) {
    pool = new Pool(Threads());  // a parent's pool inherited through fork() is abandoned, not destroyed
    owner = getpid();
  }
  return *pool;
}

// fn(t, n) on the pool's threads (see Pool::Run).
template <typename Fn>
void Parallel(Fn &&fn) {
  GetPool().Run(fn);
}

// fn(begin, end) on every thread for its contiguous run [begin, end) of `count` items (Split; empty runs skipped).
template <typename Fn>
void ParallelRange(int64_t count, Fn &&fn) {
  if (count <= 0) return;
  Parallel([&](int t, int n) {
    int64_t begin, end;
    Split(count, t, n, &begin, &end);
    if (end > begin) fn(begin, end);
  });
}

// fn(i) for i in [0, count), contiguous runs of items per thread.
template <typename Fn>
void ParallelFor(int64_t count, Fn &&fn) {
  ParallelRange(count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(i);
  });
}

}  // namespace cf_threads

#endif  // CENTERFACE_KERNELS_CF_THREADS_H_
