# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Strict parser for one WIDER FACE prediction file (``<event>/<image>.txt``).

Format: line 1 the image name, line 2 the number of detections ``N``, then exactly ``N`` rows ``x y w h score``
(whitespace separated, finite numbers, ``w >= 0``, ``h >= 0``). Trailing blank lines are allowed. A file with no
non-blank character means "no detections". Anything else raises ``ValueError("line L: ...")``; the caller adds the
file name. Numbers are read with C ``strtod`` (correctly rounded, like Python's ``float``).
"""
import numpy as np

cimport numpy as cnp
from libc.math cimport isfinite, isnan
from libc.stdlib cimport strtod

cnp.import_array()


cdef inline bint is_space(char c) noexcept nogil:
    return c == b' ' or c == b'\t' or c == b'\r' or c == b'\v' or c == b'\f'


cdef inline Py_ssize_t line_end(const char* buf, Py_ssize_t pos, Py_ssize_t size) noexcept nogil:
    while pos < size and buf[pos] != b'\n':
        pos += 1
    return pos


def parse_prediction(bytes data):
    """Parse the bytes of one prediction file.

    Parameters
    ----------
    data : the whole file

    Returns
    -------
    name : str or None, line 1 stripped (None for a blank file)
    rows : (N, 5) float64, ``x y w h score`` in file order ((0, 5) for a blank file or ``N = 0``)
    """
    cdef const char* buf = data
    cdef Py_ssize_t size = len(data), pos = 0, end, start, count = 0, row, col, line_no
    cdef char* stop
    cdef double value
    cdef bint too_large = False
    while pos < size and (is_space(buf[pos]) or buf[pos] == b'\n'):
        pos += 1
    if pos == size:
        return None, np.empty((0, 5), dtype=np.float64)
    # line 1: image name
    end = line_end(buf, 0, size)
    name = data[:end].decode("utf-8", "replace").strip()
    if not name:
        raise ValueError("line 1: empty image name")
    if end >= size:
        raise ValueError("line 2: missing the detection count line")
    # line 2: count
    start = end + 1
    end = line_end(buf, start, size)
    pos = start
    while pos < end and is_space(buf[pos]):
        pos += 1
    if pos == end:
        raise ValueError("line 2: expected the number of detections, found an empty line")
    while pos < end and 48 <= buf[pos] <= 57:  # ASCII digits
        if count <= size:  # a row takes at least 10 bytes, so a count above the file size is wrong anyway
            count = count * 10 + (buf[pos] - 48)  # 48 == ord('0')
        else:
            too_large = True
        pos += 1
    while pos < end and is_space(buf[pos]):
        pos += 1
    if pos != end or too_large or count > size:
        text = data[start:end].decode("utf-8", "replace").strip()
        if pos == end:
            raise ValueError(f"line 2: the detection count {text} is larger than the file can hold")
        raise ValueError(f"line 2: expected the number of detections (a non-negative integer), found {text!r}")
    rows = np.empty((count, 5), dtype=np.float64)
    cdef double[:, ::1] out = rows
    line_no = 2
    pos = end + 1
    for row in range(count):
        line_no += 1
        if pos >= size:
            raise ValueError(f"line {line_no}: the count line says {count} detections but the file has {row} rows")
        end = line_end(buf, pos, size)
        start = pos
        for col in range(5):
            while pos < end and is_space(buf[pos]):
                pos += 1
            if pos == end:
                if col == 0:
                    raise ValueError(f"line {line_no}: empty row (the count line says {count} detections)")
                raise ValueError(f"line {line_no}: expected 5 numbers 'x y w h score', found {col}")
            value = strtod(buf + pos, &stop)
            if stop == buf + pos or (stop < buf + end and not is_space(stop[0])):
                raise ValueError(f"line {line_no}: not a number in column {col + 1}: "
                                 f"{data[start:end].decode('utf-8', 'replace').strip()!r}")
            pos = stop - buf
            if col == 4 and isnan(value):
                raise ValueError(f"line {line_no}: the score is NaN")
            if not isfinite(value):
                raise ValueError(f"line {line_no}: column {col + 1} is not finite")
            if (col == 2 or col == 3) and value < 0:
                raise ValueError(f"line {line_no}: negative {'width' if col == 2 else 'height'} {value!r}")
            out[row, col] = value
        while pos < end and is_space(buf[pos]):
            pos += 1
        if pos != end:
            raise ValueError(f"line {line_no}: expected 5 numbers 'x y w h score', found more")
        pos = end + 1
    # only blank lines may follow
    while pos < size:
        line_no += 1
        end = line_end(buf, pos, size)
        while pos < end and is_space(buf[pos]):
            pos += 1
        if pos != end:
            raise ValueError(f"line {line_no}: the count line says {count} detections but more rows follow")
        pos = end + 1
    return name, rows
