"""Build the native kernels in kernels/ as part of the centerface_flow package.

* every ``kernels/*.pyx`` -> Cython extension module ``centerface_flow._kernels.<stem>``;
* all ``kernels/*.cc`` -> one plain shared library ``centerface_flow/_kernels/native.<ext suffix>`` (C++17, -O3)
  holding the MindSpore AOT custom-operator entry points; it is never imported by Python, MindSpore loads it
  through ``ops.Custom(func_type="aot")`` (see ``centerface_flow/ops/native.py``, which finds it at run time). One
  library, so that all kernels share one worker-thread pool (``kernels/cf_threads.h``) and one OpenBLAS handle.

Everything else about the package lives in pyproject.toml; setuptools needs this file only for ext_modules.
"""
import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        f"centerface_flow._kernels.{pyx.stem}",
        [str(pyx.as_posix())],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for pyx in sorted(Path("kernels").glob("*.pyx"))
]

# CENTERFACE_NATIVE_CFLAGS adds compiler flags (e.g. -march=native); the default build is portable and picks
# AVX-512 / AVX2 code paths at load time (GCC target_clones in the sources).
native = [
    Extension(
        "centerface_flow._kernels.native",
        [str(cc.as_posix()) for cc in sorted(Path("kernels").glob("*.cc"))],
        depends=[str(h.as_posix()) for h in sorted(Path("kernels").glob("*.h"))],
        language="c++",
        # -fno-wrapv undoes the -fwrapv of Python's own CFLAGS, which setuptools puts first: with wrapping
        # int64 index arithmetic GCC keeps more address computations in the hot loops (the stride-2 blocks and
        # the stem ran 8-20% slower).
        extra_compile_args=["-std=c++17", "-O3", "-fno-wrapv", "-fopenmp-simd", "-pthread", "-Wno-psabi",
                            *os.environ.get("CENTERFACE_NATIVE_CFLAGS", "").split()],
        extra_link_args=["-pthread", "-ldl"],
    )
]

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False,
                                                                               "wraparound": False}) + native)
