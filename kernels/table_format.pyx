# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fixed-point text for tables of numbers: the prediction files' ``x y w h score`` rows and ``landmarks.tsv``.

``format_rows(values, decimals, sep)`` gives the same text as Python's ``"%.{d}f"`` for every value (C ``snprintf``
rounds correctly, as Python does), fields joined by ``sep`` and every row ending in a newline. The pure-Python twin
is ``centerface_flow.postprocess.predictions.format_rows_python``; ``tests/test_postprocess.py`` checks that both agree.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.math cimport fabs, floor, signbit
from libc.stdint cimport int64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc

cdef double[10] POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]


cdef inline int fixed(char* out, double x, int d, const char* fmt) noexcept nogil:
    """Write ``x`` with ``d`` decimals, as ``"%.{d}f"`` would; returns the length (< 32) or -1.

    Fast path: scale, round, print the integer's digits. Where the scaled value is within 1e-3 of a rounding tie
    (the product may then be off by an ulp) or too large for exact arithmetic, ``snprintf`` decides.
    """
    cdef double a = fabs(x) * POW10[d]
    cdef double f, frac
    cdef int64_t r, p
    cdef int n = 0, k, digits
    cdef char tmp[24]
    if not a < 1e12:  # also NaN and inf
        return snprintf(out, 32, fmt, x)
    f = floor(a)
    frac = a - f
    if fabs(frac - 0.5) < 1e-3:
        return snprintf(out, 32, fmt, x)
    r = <int64_t>f + (1 if frac > 0.5 else 0)
    if signbit(x):
        out[n] = b'-'
        n += 1
    digits = 0
    while r > 0 or digits <= d:
        tmp[digits] = <char>(48 + r % 10)  # '0' + digit
        r //= 10
        digits += 1
    for k in range(digits - 1, -1, -1):
        out[n] = tmp[k]
        n += 1
        if k == d and d > 0:
            out[n] = b'.'
            n += 1
    return n


def format_rows(const double[:, ::1] values, const int[::1] decimals, bytes sep):
    """(R, C) float64 values, (C,) decimals per column (0-9) -> the rows as bytes."""
    cdef Py_ssize_t rows = values.shape[0], cols = values.shape[1], r, c, pos = 0
    if decimals.shape[0] != cols:
        raise ValueError(f"decimals has {decimals.shape[0]} entries for {cols} columns")
    if len(sep) != 1:
        raise ValueError("sep must be one byte")
    cdef char s = (<const char*>sep)[0]
    cdef char fmt[10][8]
    cdef int d, n
    for c in range(cols):
        if not 0 <= decimals[c] <= 9:
            raise ValueError("decimals must be in 0..9")
    for d in range(10):
        snprintf(fmt[d], 8, "%%.%df", d)
    # 32 characters cover any finite float64 with up to 9 decimals below 1e20; longer values fall back below
    cdef Py_ssize_t cap = rows * cols * 32 + rows + 1
    cdef char* buf = <char*>malloc(cap)
    if buf == NULL:
        raise MemoryError()
    cdef bint overflow = False
    try:
        with nogil:
            for r in range(rows):
                for c in range(cols):
                    n = fixed(buf + pos, values[r, c], decimals[c], fmt[decimals[c]])
                    if n < 0 or n >= 31:
                        overflow = True
                        break
                    pos += n
                    buf[pos] = s if c + 1 < cols else b'\n'
                    pos += 1
                if overflow:
                    break
        if overflow:
            raise OverflowError("a value is too long to format (|x| >= 1e20 or not finite?)")
        return PyBytes_FromStringAndSize(buf, pos)
    finally:
        free(buf)
