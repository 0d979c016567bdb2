"""A small reader for MATLAB v5 ``.mat`` files (cells, char and numeric arrays), for the WIDER ground truth.

``scipy.io.loadmat`` reads these files too, but importing it (it pulls in ``scipy.sparse``) costs more than the
whole evaluation. This reader supports what the official ground truth uses — compressed and uncompressed
variables, cell arrays, char arrays, real numeric arrays — and raises ``MatFormatError`` on anything else
(structs, sparse, complex, v7.3/HDF5 files), in which case the caller falls back to scipy.

Values come back like ``loadmat`` gives them, except char arrays: a cell is an object array of its MATLAB shape,
a numeric array an ndarray of its MATLAB shape and class, a 1 x n char array a ``str``.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["MatFormatError", "read_mat5"]

# data types of MAT v5 elements
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8",
              16: "u1", 17: "u2", 18: "u4"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
# array classes
_MX_CELL, _MX_CHAR = 1, 4
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}


class MatFormatError(ValueError):
    """The file uses a MAT feature this reader does not support (or is not a MAT v5 file)."""


class _Reader:
    def __init__(self, data: bytes, endian: str):
        self.data = data
        self.e = endian
        self.u32x2 = struct.Struct(endian + "II").unpack_from

    def tag(self, pos: int) -> tuple[int, int, int, int]:
        """(type, nbytes, data position, next element position) of the element at ``pos``."""
        first, second = self.u32x2(self.data, pos)
        if first >> 16:  # small data element: nbytes in the upper half, data in the next 4 bytes
            return first & 0xFFFF, first >> 16, pos + 4, pos + 8
        return first, second, pos + 8, pos + 8 + ((second + 7) & ~7)

    def element(self, pos: int) -> tuple[int, bytes, int]:
        """(type, raw bytes, position of the next element)."""
        mtype, nbytes, start, after = self.tag(pos)
        return mtype, self.data[start:start + nbytes], after

    def matrix(self, pos: int, nbytes: int):
        """Parse the body of a miMATRIX element (``nbytes`` from ``pos``)."""
        if nbytes == 0:
            return np.zeros((0, 0))
        data, e, tag = self.data, self.e, self.tag
        _, _, start, pos = tag(pos)
        flag_word = struct.unpack_from(e + "I", data, start)[0]
        mx_class, complex_flag = flag_word & 0xFF, flag_word & 0x0800
        _, n, start, pos = tag(pos)
        dims = struct.unpack_from(f"{e}{n // 4}i", data, start)
        pos = tag(pos)[3]  # name (empty inside cells)
        if mx_class == _MX_CELL:
            count = 1
            for d in dims:
                count *= d
            out = np.empty(count, dtype=object)
            for k in range(count):
                mtype, sub_nbytes, start, pos = tag(pos)
                if mtype != _MI_MATRIX:
                    raise MatFormatError(f"cell element of type {mtype}")
                out[k] = self.matrix(start, sub_nbytes)
            return out.reshape(dims, order="F")
        if complex_flag:
            raise MatFormatError("complex arrays are not supported")
        mtype, n, start, _ = tag(pos)
        if mx_class == _MX_CHAR:
            if mtype not in (2, 4, 16):
                raise MatFormatError(f"char data of type {mtype}")
            raw = data[start:start + n]
            text = raw.decode("utf-8") if mtype in (2, 16) else raw.decode("utf-16-le" if e == "<" else "utf-16-be")
            if len(dims) == 2 and dims[0] == 1:
                return text
            chars = np.array(list(text), dtype="U1").reshape(dims, order="F")
            return np.array(["".join(row) for row in chars.reshape(dims[0], -1)])
        if mx_class not in _MX_DTYPES or mtype not in _MI_DTYPES:
            raise MatFormatError(f"array class {mx_class} with data type {mtype} is not supported")
        dtype = np.dtype(e + _MI_DTYPES[mtype])
        values = np.frombuffer(data, dtype=dtype, count=n // dtype.itemsize, offset=start)
        return values.astype(_MX_DTYPES[mx_class]).reshape(dims, order="F")


def _name(reader: _Reader, start: int) -> str:
    """Name of the miMATRIX whose body starts at ``start``: its third sub-element (flags, dims, name)."""
    _, _, after_flags = reader.element(start)
    _, _, after_dims = reader.element(after_flags)
    _, raw_name, _ = reader.element(after_dims)
    return raw_name.decode("ascii")


def read_mat5(path: str | Path, names: set[str] | None = None) -> dict[str, object]:
    """Read the variables ``names`` (all if None) of a MAT v5 file. Raises ``MatFormatError`` or ``OSError``."""
    data = Path(path).read_bytes()
    if len(data) < 128 or data[124:126] not in (b"\x00\x01", b"\x01\x00"):
        raise MatFormatError("not a MAT v5 file")
    try:
        return _variables(data, "<" if data[126:128] == b"IM" else ">", names)
    except (struct.error, zlib.error, UnicodeDecodeError, IndexError) as exc:
        raise MatFormatError(f"corrupt or unsupported MAT file ({exc})") from exc
    except ValueError as exc:  # numpy reshape/frombuffer on inconsistent sizes
        if isinstance(exc, MatFormatError):
            raise
        raise MatFormatError(f"corrupt or unsupported MAT file ({exc})") from exc


def _variables(data: bytes, endian: str, names: set[str] | None) -> dict[str, object]:
    top = _Reader(data, endian)
    out = {}
    pos = 128
    while pos + 8 <= len(data) and (names is None or len(out) < len(names)):
        mtype, nbytes, start, _ = top.tag(pos)
        pos = start + nbytes
        if pos > len(data):
            raise MatFormatError("truncated file")
        if mtype == _MI_COMPRESSED:
            if names is not None:  # peek at the name before inflating the whole variable
                head = zlib.decompressobj().decompress(data[start:start + nbytes], 512)
                if _name(_Reader(head, endian), 8) not in names:
                    continue
            reader = _Reader(zlib.decompress(data[start:start + nbytes]), endian)
            mtype, nbytes, start, _ = reader.tag(0)
        elif mtype == _MI_MATRIX:
            reader = top
            pos = start + ((nbytes + 7) & ~7)
        else:
            raise MatFormatError(f"top-level element of type {mtype}")
        if mtype != _MI_MATRIX:
            raise MatFormatError(f"variable of type {mtype}")
        name = _name(reader, start)
        if names is None or name in names:
            out[name] = reader.matrix(start, nbytes)
    return out
