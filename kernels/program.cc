// A whole inference network as one MindSpore AOT custom operator: a recorded sequence of this library's kernel
// calls (a "program", built in centerface_flow/fused/program.py by tracing the folded network once) run one after
// the other, with the intermediate tensors in buffers this operator keeps between calls.
//
// Why: run as 24 operators, every kernel call of a pynative network costs ~0.2 ms of Python and framework work on
// the calling thread while the kernels' worker thread waits, about a third of a 640x480 call on a 2-core machine.
// Here the framework sees one operator; the kernels, their order, arguments and threads are exactly those of the
// per-operator network, so the outputs are identical.
//
// Entry point (MindSpore's AOT signature, see kernels/depthwise.cc):
//   CfProgram(x (N,C,H,W) float32, program (L,) int64, weights (W,) float32, live_0 .. live_{K-1} float32)
//       -> the program's outputs
// `weights` holds the frozen weights one after the other (passing ~130 tensors one by one cost ~3 ms of framework
// work per call); `live` tensors are read where they are on every call (the network's valid region).
// Program layout (int64): [version, n_names, n_slots, n_ops, n_outputs, n_weights,
//   names: (length, chars...) x n_names,
//   weights: (offset in `weights`, ndim, 4 dims) x n_weights,
//   ops: (name index, n_in, (kind, index) x n_in, n_out, (slot, channels, source slot, rule_h, rule_w) x n_out)
//        x n_ops,
//   outputs: slot x n_outputs]
// An input (kind, index) is kind 0: slot `index` (slot 0 is x), kind 1: weight `index`, kind 2: live tensor
// `index`. An output slot has shape (N, channels, rule_h(H_src), rule_w(W_src)) with H_src, W_src those of
// `source slot` and rule 0 = same, 1 = halved by a stride-2 convolution ((v - 1) / 2 + 1), 2 = doubled.
// Status codes: 1 bad arguments or program, 3 a kernel of the program could not be found, otherwise the status of
// the first kernel that failed.

#include <dlfcn.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cf_common.h"

namespace {

using cf_common::IsF32;

using KernelFn = int (*)(int, void **, int *, int64_t **, const char **, void *, void *);

constexpr int64_t kVersion = 2;

struct Weight {
  int64_t offset, ndim, dims[4];
};

struct Slot {
  int64_t shape[4] = {0, 0, 0, 0};
  float *data = nullptr;
};

// Reads the program's int64 words one by one; any read past the end marks it bad.
class Reader {
 public:
  Reader(const int64_t *words, int64_t count) : words_(words), count_(count) {}
  int64_t Next() {
    if (pos_ >= count_) {
      ok_ = false;
      return -1;
    }
    return words_[pos_++];
  }
  bool ok() const { return ok_; }

 private:
  const int64_t *words_;
  int64_t count_, pos_ = 0;
  bool ok_ = true;
};

KernelFn FindKernel(const std::string &name) {
  static void *self = [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&FindKernel), &info) == 0 || info.dli_fname == nullptr) return (void *)nullptr;
    return dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  }();
  if (self == nullptr) return nullptr;
  return reinterpret_cast<KernelFn>(dlsym(self, name.c_str()));
}

int64_t ApplyRule(int64_t v, int64_t rule) {
  if (rule == 0) return v;
  if (rule == 1) return (v - 1) / 2 + 1;
  if (rule == 2) return 2 * v;
  return -1;
}

int Run(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam < 4 || ndims[0] != 4 || ndims[1] != 1 || ndims[2] != 1 || !IsF32(dtypes[0]) ||
      std::strcmp(dtypes[1], "int64") != 0)
    return 1;
  const int64_t *words = static_cast<const int64_t *>(params[1]);
  const int64_t n_words = shapes[1][0];
  Reader prog(words, n_words);
  if (prog.Next() != kVersion) return 1;
  const int64_t n_names = prog.Next(), n_slots = prog.Next(), n_ops = prog.Next(), n_outputs = prog.Next(),
                n_weights = prog.Next();
  if (!prog.ok() || n_names < 1 || n_slots < 1 || n_ops < 1 || n_outputs < 1 || n_weights < 0 ||
      n_outputs > n_words)
    return 1;
  const int n_live = nparam - 3 - static_cast<int>(n_outputs);
  if (n_live < 0) return 1;
  for (int i = 2; i < nparam; ++i)
    if (!IsF32(dtypes[i])) return 1;
  std::vector<KernelFn> kernels;
  for (int64_t i = 0; i < n_names; ++i) {
    const int64_t length = prog.Next();
    if (!prog.ok() || length < 1 || length > 128) return 1;
    std::string name;
    for (int64_t c = 0; c < length; ++c) name.push_back(static_cast<char>(prog.Next()));
    KernelFn fn = FindKernel(name);
    if (fn == nullptr) return 3;
    kernels.push_back(fn);
  }
  float *blob = static_cast<float *>(params[2]);
  const int64_t blob_size = shapes[2][0];
  std::vector<Weight> weights(n_weights);
  for (Weight &wt : weights) {
    wt.offset = prog.Next();
    wt.ndim = prog.Next();
    int64_t count = 1;
    for (int64_t &d : wt.dims) {
      d = prog.Next();
      if (d < 0) return 1;
    }
    for (int64_t d = 0; d < wt.ndim && d < 4; ++d) count *= wt.dims[d];
    if (!prog.ok() || wt.ndim < 1 || wt.ndim > 4 || wt.offset < 0 || wt.offset + count > blob_size) return 1;
  }
  // The intermediate tensors live in buffers kept across calls (grown when a larger input comes); the program's
  // outputs are written straight into the operator's outputs.
  static std::vector<std::vector<float>> buffers;
  if (static_cast<int64_t>(buffers.size()) < n_slots) buffers.resize(n_slots);
  std::vector<Slot> slots(n_slots);
  for (int d = 0; d < 4; ++d) slots[0].shape[d] = shapes[0][d];
  slots[0].data = static_cast<float *>(params[0]);
  float **outputs = reinterpret_cast<float **>(params + 3 + n_live);
  int64_t *const *out_shapes = shapes + 3 + n_live;
  const int *out_ndims = ndims + 3 + n_live;

  std::vector<void *> args;
  std::vector<int> arg_ndims;
  std::vector<int64_t *> arg_shapes;
  std::vector<const char *> arg_dtypes;
  for (int64_t op = 0; op < n_ops; ++op) {
    const int64_t name = prog.Next(), n_in = prog.Next();
    if (!prog.ok() || name < 0 || name >= n_names || n_in < 0) return 1;
    args.clear();
    arg_ndims.clear();
    arg_shapes.clear();
    for (int64_t i = 0; i < n_in; ++i) {
      const int64_t kind = prog.Next(), index = prog.Next();
      if (!prog.ok()) return 1;
      if (kind == 0 && index >= 0 && index < n_slots && slots[index].data != nullptr) {
        args.push_back(slots[index].data);
        arg_ndims.push_back(4);
        arg_shapes.push_back(slots[index].shape);
      } else if (kind == 1 && index >= 0 && index < n_weights) {
        Weight &wt = weights[index];
        args.push_back(blob + wt.offset);
        arg_ndims.push_back(static_cast<int>(wt.ndim));
        arg_shapes.push_back(wt.dims);
      } else if (kind == 2 && index >= 0 && index < n_live) {
        args.push_back(params[3 + index]);
        arg_ndims.push_back(ndims[3 + index]);
        arg_shapes.push_back(shapes[3 + index]);
      } else {
        return 1;
      }
    }
    const int64_t n_out = prog.Next();
    if (!prog.ok() || n_out < 1) return 1;
    for (int64_t o = 0; o < n_out; ++o) {
      const int64_t slot = prog.Next(), channels = prog.Next(), source = prog.Next(), rule_h = prog.Next(),
                    rule_w = prog.Next();
      if (!prog.ok() || slot < 1 || slot >= n_slots || source < 0 || source >= n_slots ||
          slots[source].data == nullptr || channels < 1)
        return 1;
      Slot &s = slots[slot];
      s.shape[0] = slots[0].shape[0];
      s.shape[1] = channels;
      s.shape[2] = ApplyRule(slots[source].shape[2], rule_h);
      s.shape[3] = ApplyRule(slots[source].shape[3], rule_w);
      if (s.shape[2] < 1 || s.shape[3] < 1) return 1;
      const int64_t count = s.shape[0] * s.shape[1] * s.shape[2] * s.shape[3];
      s.data = nullptr;
      for (int64_t k = 0; k < n_outputs; ++k) {  // a network output: the operator's own output tensor
        if (words[n_words - n_outputs + k] == slot) {
          if (out_ndims[k] != 4 || std::memcmp(out_shapes[k], s.shape, sizeof(s.shape)) != 0) return 1;
          s.data = outputs[k];
        }
      }
      if (s.data == nullptr) {
        s.data = cf_common::AlignedFloats(&buffers[slot], count);
      }
      args.push_back(s.data);
      arg_ndims.push_back(4);
      arg_shapes.push_back(s.shape);
    }
    arg_dtypes.assign(args.size(), "float32");
    const int status = kernels[name](static_cast<int>(args.size()), args.data(), arg_ndims.data(),
                                     arg_shapes.data(), arg_dtypes.data(), nullptr, nullptr);
    if (status != 0) return status;
  }
  for (int64_t k = 0; k < n_outputs; ++k) {
    const int64_t slot = prog.Next();
    if (!prog.ok() || slot < 1 || slot >= n_slots || slots[slot].data != outputs[k]) return 1;
  }
  return 0;
}

}  // namespace

extern "C" {
int CfProgram(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, void *) {
  static std::mutex mu;  // the intermediate buffers are shared: one program run at a time
  std::lock_guard<std::mutex> lock(mu);
  return Run(nparam, params, ndims, shapes, dtypes);
}
}
