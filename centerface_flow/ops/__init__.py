"""Native operators (C++ kernels loaded by MindSpore as custom ops) and their numpy twins."""
