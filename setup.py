"""Build the Cython kernels in kernels/ as extension modules of the centerface_flow package.

Everything else about the package lives in pyproject.toml; setuptools needs this file only for ext_modules.
"""
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

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}))
