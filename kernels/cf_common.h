// Helpers shared by the native kernels (header-only): the load-time ISA dispatch macro, activations, argument checks.
#ifndef CENTERFACE_KERNELS_CF_COMMON_H_
#define CENTERFACE_KERNELS_CF_COMMON_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

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

// The integer in the environment variable `name`, or `fallback` when it is unset or not an integer (the kernels'
// tuning knobs; each kernel clamps the value to its own range).
inline int64_t EnvInt(const char *name, int64_t fallback) {
  const char *value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  char *end = nullptr;
  const long long v = std::strtoll(value, &end, 10);
  return *end == '\0' ? static_cast<int64_t>(v) : fallback;
}

// The valid (vh x vw) part of an H x W layer input inside a network input zero-padded at the bottom / right:
// valid = (H0, W0, h0, w0) float32 is the padded network-input size and the image inside it (H0 <= 0: not padded,
// all valid); a layer at 1/r of the input resolution has ceil(h0 / r) valid rows. False if `valid` does not fit.
inline bool ValidPlane(const float *valid, int64_t h, int64_t w, int64_t *vh, int64_t *vw) {
  *vh = h;
  *vw = w;
  const double big_h = valid[0], big_w = valid[1], img_h = valid[2], img_w = valid[3];
  if (big_h <= 0) return true;
  if (big_h < h || big_w < w || img_h < 1 || img_w < 1 || img_h > big_h || img_w > big_w) return false;
  const int64_t rh = static_cast<int64_t>(big_h) / h, rw = static_cast<int64_t>(big_w) / w;
  if (rh < 1 || rw < 1 || rh * h != static_cast<int64_t>(big_h) || rw * w != static_cast<int64_t>(big_w)) return false;
  const int64_t ch = (static_cast<int64_t>(img_h) + rh - 1) / rh, cw = (static_cast<int64_t>(img_w) + rw - 1) / rw;
  *vh = ch < h ? ch : h;
  *vw = cw < w ? cw : w;
  return true;
}

// The first cache-line-aligned float of `buffer`, grown to hold `count` floats from there and a line more (which the
// depthwise loads past a row's end may read). A std::vector's data is only 16-byte aligned (malloc), and a 64-byte
// vector load or store there spans two cache lines and costs two: buffers that the register tiles read or write
// take their floats from here.
inline float *AlignedFloats(std::vector<float> *buffer, int64_t count) {
  constexpr int64_t kLine = 16;  // floats per cache line
  if (static_cast<int64_t>(buffer->size()) < count + 2 * kLine) buffer->resize(count + 2 * kLine);
  const uintptr_t address = reinterpret_cast<uintptr_t>(buffer->data());
  return buffer->data() + (64 - address % 64) % 64 / 4;
}

// Scratch memory of the calling thread shared by all kernels: buffer `index` (0 <= index < kScratchBuffers), aligned
// as AlignedFloats, grown to hold `count` floats; its contents are whatever the last user left. A network runs its
// kernels one after the other on the same threads, so a kernel's scratch is memory the previous kernel has just
// used, still in the core's cache; buffers of its own were last touched a whole network call earlier and every
// line written came from memory again (a 640x480 call took ~0.5 ms, 3%, longer that way). Within a kernel, each live
// buffer needs its own index, and a thread that runs a parallel region's share must not use an index its caller
// still holds: the kernels take 0 .. kScratchShared - 1 inside parallel regions and kScratchShared .. for buffers the
// caller sets up before one (and the workers read).
constexpr int kScratchBuffers = 8, kScratchShared = 5;
inline float *ThreadScratch(int index, int64_t count) {
  static thread_local std::vector<float> buffers[kScratchBuffers];
  return AlignedFloats(&buffers[index], count);
}

}  // namespace cf_common

#endif  // CENTERFACE_KERNELS_CF_COMMON_H_
