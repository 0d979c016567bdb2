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

// One kernel call of the program: its inputs (kind 0 slot, 1 weight, 2 live tensor; index) and output slots.
struct Input {
  int64_t kind, index;
};
struct Output {
  int64_t slot, channels, source, rule_h, rule_w;
};
struct Op {
  int64_t name;
  std::vector<Input> inputs;
  std::vector<Output> outputs;
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
      n_outputs > n_words || n_ops > n_words || n_slots > n_words || n_weights > n_words)
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
  // The ops, checked, before any runs: which slots each reads and writes.
  std::vector<Op> ops(n_ops);
  for (Op &op : ops) {
    op.name = prog.Next();
    const int64_t n_in = prog.Next();
    if (!prog.ok() || op.name < 0 || op.name >= n_names || n_in < 0 || n_in > n_words) return 1;
    op.inputs.resize(n_in);
    for (Input &in : op.inputs) {
      in.kind = prog.Next();
      in.index = prog.Next();
      const int64_t limit = in.kind == 0 ? n_slots : in.kind == 1 ? n_weights : in.kind == 2 ? n_live : 0;
      if (!prog.ok() || in.index < 0 || in.index >= limit) return 1;
    }
    const int64_t n_out = prog.Next();
    if (!prog.ok() || n_out < 1 || n_out > n_words) return 1;
    op.outputs.resize(n_out);
    for (Output &out : op.outputs) {
      out.slot = prog.Next();
      out.channels = prog.Next();
      out.source = prog.Next();
      out.rule_h = prog.Next();
      out.rule_w = prog.Next();
      if (!prog.ok() || out.slot < 1 || out.slot >= n_slots || out.source < 0 || out.source >= n_slots ||
          out.channels < 1)
        return 1;
    }
  }
  std::vector<int64_t> output_slots(n_outputs);
  for (int64_t &slot : output_slots) {
    slot = prog.Next();
    if (!prog.ok() || slot < 1 || slot >= n_slots) return 1;
  }
  // The last op that reads each slot: after it, the slot's buffer can take a later op's output.
  std::vector<int64_t> last_read(n_slots, -1);
  for (int64_t i = 0; i < n_ops; ++i)
    for (const Input &in : ops[i].inputs)
      if (in.kind == 0) last_read[in.index] = i;

  // The intermediate tensors live in buffers kept across calls (grown when a larger input comes). A tensor takes the
  // buffer freed last (by the last reader of an earlier tensor), memory the kernels have just read and still in
  // cache; a buffer per tensor would have been last written a whole call earlier, and each line the kernel writes
  // would come from memory first. The program's outputs are written straight into the operator's outputs.
  static std::vector<std::vector<float>> buffers;
  std::vector<int> free_buffers;  // most recently freed last
  std::vector<int> slot_buffer(n_slots, -1);
  int used_buffers = 0;
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
  for (int64_t i = 0; i < n_ops; ++i) {
    const Op &op = ops[i];
    args.clear();
    arg_ndims.clear();
    arg_shapes.clear();
    for (const Input &in : op.inputs) {
      if (in.kind == 0) {
        if (slots[in.index].data == nullptr) return 1;  // read before written
        args.push_back(slots[in.index].data);
        arg_ndims.push_back(4);
        arg_shapes.push_back(slots[in.index].shape);
      } else if (in.kind == 1) {
        Weight &wt = weights[in.index];
        args.push_back(blob + wt.offset);
        arg_ndims.push_back(static_cast<int>(wt.ndim));
        arg_shapes.push_back(wt.dims);
      } else {
        args.push_back(params[3 + in.index]);
        arg_ndims.push_back(ndims[3 + in.index]);
        arg_shapes.push_back(shapes[3 + in.index]);
      }
    }
    for (const Output &out : op.outputs) {
      if (slots[out.source].data == nullptr) return 1;
      Slot &s = slots[out.slot];
      s.shape[0] = slots[0].shape[0];
      s.shape[1] = out.channels;
      s.shape[2] = ApplyRule(slots[out.source].shape[2], out.rule_h);
      s.shape[3] = ApplyRule(slots[out.source].shape[3], out.rule_w);
      if (s.shape[2] < 1 || s.shape[3] < 1) return 1;
      const int64_t count = s.shape[0] * s.shape[1] * s.shape[2] * s.shape[3];
      s.data = nullptr;
      for (int64_t k = 0; k < n_outputs; ++k) {  // a network output: the operator's own output tensor
        if (output_slots[k] == out.slot) {
          if (out_ndims[k] != 4 || std::memcmp(out_shapes[k], s.shape, sizeof(s.shape)) != 0) return 1;
          s.data = outputs[k];
        }
      }
      if (s.data == nullptr) {
        if (slot_buffer[out.slot] < 0) {
          if (free_buffers.empty()) {
            slot_buffer[out.slot] = used_buffers++;
          } else {
            slot_buffer[out.slot] = free_buffers.back();
            free_buffers.pop_back();
          }
        }
        if (static_cast<int>(buffers.size()) < used_buffers) buffers.resize(used_buffers);
        s.data = cf_common::AlignedFloats(&buffers[slot_buffer[out.slot]], count);
      }
      args.push_back(s.data);
      arg_ndims.push_back(4);
      arg_shapes.push_back(s.shape);
    }
    arg_dtypes.assign(args.size(), "float32");
    const int status = kernels[op.name](static_cast<int>(args.size()), args.data(), arg_ndims.data(),
                                        arg_shapes.data(), arg_dtypes.data(), nullptr, nullptr);
    if (status != 0) return status;
    for (const Input &in : op.inputs) {  // tensors no later op reads give their buffers back
      if (in.kind == 0 && last_read[in.index] == i && slot_buffer[in.index] >= 0) {
        free_buffers.push_back(slot_buffer[in.index]);
        slot_buffer[in.index] = -1;
      }
    }
  }
  for (int64_t k = 0; k < n_outputs; ++k)
    if (slots[output_slots[k]].data != outputs[k]) return 1;
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
