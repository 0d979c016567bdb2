"""Read PyTorch ``.pth`` / ``.pt`` checkpoints (the zip + pickle format of ``torch.save``) without torch.

Security: the pickle inside a ``.pth`` is read by a *restricted* unpickler. Only an allow-list of globals can be
referenced (:data:`ALLOWED_GLOBALS`: ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` /
``_rebuild_parameter`` and the ``torch.*Storage`` type markers), and those names resolve to this module's own
numpy implementations, never to torch. Any other global (``os.system``, ``builtins.eval``, ...) makes loading
fail with :class:`~centerface_flow.errors.UserError` before anything is called, so an untrusted ``.pth`` cannot run
code. Tensor bytes are read from the archive's ``data/<key>`` entries and bounds-checked against the declared
sizes and strides: a tensor may not declare more elements than its storage holds (a few hundred bytes
declaring a huge tensor would otherwise allocate gigabytes), and no storage may exceed
:data:`MAX_STORAGE_BYTES` (default 2 GiB; lift it with the environment variable ``CENTERFACE_MAX_PTH_BYTES``,
a number of bytes, 0 = no cap).

Supported: the zip format written by ``torch.save`` since PyTorch 1.6 (little- or big-endian data). The legacy
pre-1.6 format is rejected with a message saying to re-save the file with a newer torch.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from centerface_flow.errors import UserError

__all__ = ["ALLOWED_GLOBALS", "MAX_STORAGE_BYTES", "STORAGE_DTYPES", "load_torch_file"]

#: Largest tensor storage read from a ``.pth`` (torchvision's whole mobilenet_v2 is 14 MB).
MAX_STORAGE_BYTES = 2 << 30
MAX_BYTES_ENV = "CENTERFACE_MAX_PTH_BYTES"


def _max_storage_bytes() -> int:
    value = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not value:
        return MAX_STORAGE_BYTES
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{MAX_BYTES_ENV}={value!r}: expected a number of bytes (0 = no cap)") from None

#: ``torch.<name>Storage`` -> numpy dtype of its elements (``bfloat16`` is widened to float32 on read).
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stand-in for a ``torch.*Storage`` class inside the pickle: it only names the element type."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage's elements (1-D numpy array) plus its element type name."""

    def __init__(self, array: np.ndarray, type_name: str) -> None:
        self.array = array
        self.type_name = type_name


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None) -> np.ndarray:
    """numpy twin of ``torch._utils._rebuild_tensor_v2``: a (copied, contiguous) array viewing ``storage``."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage")
    size = tuple(int(v) for v in size)
    stride = tuple(int(v) for v in stride)
    offset = int(storage_offset)
    if len(size) != len(stride) or offset < 0 or any(v < 0 for v in size + stride):
        raise pickle.UnpicklingError(f"invalid tensor geometry size={size} stride={stride} offset={offset}")
    flat = storage.array
    numel = int(np.prod(size, dtype=object))
    if numel > flat.size:
        raise pickle.UnpicklingError(f"tensor size={size} declares {numel} elements but its storage holds only "
                                     f"{flat.size}")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise pickle.UnpicklingError(f"tensor size={size} stride={stride} offset={offset} exceeds its storage "
                                         f"of {flat.size} elements")
    if 0 in size:
        out = np.zeros(size, dtype=flat.dtype)
    else:
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=[s * item for s in stride],
                                               writeable=False)
        out = np.array(view, copy=True)
    if storage.type_name == "BFloat16Storage":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None) -> np.ndarray:
    """numpy twin of ``torch._utils._rebuild_parameter``: the parameter's data."""
    return data


#: (module, name) -> what it resolves to while unpickling. Nothing else may be referenced.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, load_storage) -> None:
        super().__init__(io.BytesIO(data))
        self._load_storage = load_storage

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("storage of an unknown type")
        return self._load_storage(str(key), storage_type, int(numel))


def load_torch_file(path: str | os.PathLike) -> Any:
    """Load a ``torch.save`` zip file -> the pickled object with every tensor as a numpy array.

    Raises ``UserError`` naming the file for a missing / non-zip / legacy file, a disallowed global, or tensor
    data that does not match its declared size.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a zip-format torch file (legacy pre-1.6 torch files are not supported: "
                        "re-save it with torch.save in torch >= 1.6)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise UserError(f"{path}: expected one <archive>/data.pkl entry, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
        cache: dict[str, _Storage] = {}
        cap = _max_storage_bytes()

        def load_storage(key: str, storage_type: _StorageType, numel: int) -> _Storage:
            if key not in cache:
                entry = f"{prefix}data/{key}"
                if entry not in names:
                    raise pickle.UnpicklingError(f"missing tensor data entry {entry}")
                dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
                need = numel * dtype.itemsize
                if 0 < cap < need:
                    raise pickle.UnpicklingError(f"{entry}: a storage of {need} bytes is over the cap of {cap} bytes "
                                                 f"(set {MAX_BYTES_ENV} to lift it)")
                if archive.getinfo(entry).file_size < need:
                    raise pickle.UnpicklingError(f"{entry}: {archive.getinfo(entry).file_size} bytes for {numel} x "
                                                 f"{dtype} elements")
                with archive.open(entry) as handle:  # never more than declared, whatever the entry inflates to
                    raw = handle.read(need)
                if len(raw) < need:
                    raise pickle.UnpicklingError(f"{entry}: {len(raw)} bytes for {numel} x {dtype} elements")
                cache[key] = _Storage(np.frombuffer(raw, dtype=dtype, count=numel).astype(dtype.newbyteorder("=")),
                                      storage_type.name)
            return cache[key]

        try:
            return _RestrictedUnpickler(archive.read(pickles[0]), load_storage).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise UserError(f"{path}: refused or unreadable torch pickle ({exc})") from exc
