"""The torch-free .pth reader: a real torch-written file round-trips; disallowed globals never run."""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from centerface_flow.convert.torch_pickle import load_torch_file
from centerface_flow.errors import UserError

DATA = Path(__file__).parent / "data"


def test_reads_torch_written_fixture():
    """tiny_state.pth was written by torch 2.13 (tests/data/make_torch_fixture.py): dtypes, views, scalars."""
    state = load_torch_file(DATA / "tiny_state.pth")
    expected = np.load(DATA / "tiny_state_expected.npz")
    assert list(state) == list(expected.files)  # OrderedDict keeps torch's order
    for key in expected.files:
        assert state[key].dtype == expected[key].dtype, key
        assert state[key].shape == expected[key].shape, key
        np.testing.assert_array_equal(state[key], expected[key], err_msg=key)
    assert state["transposed"].shape == (5, 4) and state["bn.num_batches_tracked"].shape == ()
    np.testing.assert_array_equal(state["slice_a"], [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(state["bf16"], np.array([1.5, -2.25, 3.0], np.float32))


def _zip_with_pickle(path: Path, payload: bytes, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", b"3\n")
        for name, data in (extra or {}).items():
            archive.writestr(f"archive/{name}", data)
    return path


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_disallowed_global_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = _zip_with_pickle(tmp_path / "evil.pth", pickle.dumps({"w": _Evil(str(marker))}, protocol=2))
    with pytest.raises(UserError, match=r"evil.pth: .*global '(posix|os)\.system' is not allowed"):
        load_torch_file(path)
    assert not marker.exists()
    builtin = _zip_with_pickle(tmp_path / "eval.pth", b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.")
    with pytest.raises(UserError, match="builtins.eval' is not allowed"):
        load_torch_file(builtin)


def test_storage_bounds_and_format_errors(tmp_path):
    def payload(numel: int) -> bytes:
        """A (3,) float tensor, stride 1, on a FloatStorage declared to hold ``numel`` elements."""
        return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK" + bytes([numel]) + b"tQK\x00K\x03\x85K\x01\x85\x89"
                b"ccollections\nOrderedDict\n)RtR.")

    bad = _zip_with_pickle(tmp_path / "view.pth", payload(2), {"data/0": np.zeros(2, np.float32).tobytes()})
    with pytest.raises(UserError, match="storage holds only 2"):
        load_torch_file(bad)
    short = _zip_with_pickle(tmp_path / "short.pth", payload(3), {"data/0": np.zeros(2, np.float32).tobytes()})
    with pytest.raises(UserError, match="8 bytes for 3"):
        load_torch_file(short)
    payload = payload(3)
    good = _zip_with_pickle(tmp_path / "ok.pth", payload, {"data/0": np.arange(3, dtype=np.float32).tobytes()})
    np.testing.assert_array_equal(load_torch_file(good), [0.0, 1.0, 2.0])
    big_endian = _zip_with_pickle(tmp_path / "be.pth", payload, {
        "data/0": np.arange(3, dtype=">f4").tobytes(), "byteorder": b"big"})
    np.testing.assert_array_equal(load_torch_file(big_endian), [0.0, 1.0, 2.0])
    missing = _zip_with_pickle(tmp_path / "nodata.pth", payload)
    with pytest.raises(UserError, match="missing tensor data"):
        load_torch_file(missing)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(io.BytesIO(pickle.dumps(0x1950A86A20F9469CFC6C)).getvalue())
    with pytest.raises(UserError, match="legacy"):
        load_torch_file(legacy)
    with pytest.raises(UserError, match="not found"):
        load_torch_file(tmp_path / "absent.pth")
