"""Compiled Cython kernels (built from kernels/*.pyx at install time)."""
