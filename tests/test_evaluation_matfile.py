"""The small MAT v5 reader against scipy.io.loadmat, and the ground-truth loader's scipy fallback."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from centerface_flow.errors import UserError
from centerface_flow.evaluation import groundtruth, load_ground_truth
from centerface_flow.evaluation.matfile import MatFormatError, read_mat5


def assert_same(mine, ref, where="value"):
    """``mine`` (read_mat5) equals ``ref`` (loadmat): same shapes, values, strings (char arrays come as str)."""
    if isinstance(mine, str):
        assert ref.dtype.kind == "U" and mine == str(ref.ravel()[0]) if ref.size else mine == "", where
        return
    ref = np.asarray(ref)
    assert mine.shape == ref.shape, f"{where}: shape {mine.shape} != {ref.shape}"
    if ref.dtype == object:
        for index in np.ndindex(ref.shape):
            assert_same(mine[index], ref[index], f"{where}{list(index)}")
    else:
        assert mine.dtype == ref.dtype, f"{where}: dtype {mine.dtype} != {ref.dtype}"
        np.testing.assert_array_equal(mine, ref, err_msg=where)


def cell(items, shape):
    out = np.empty(len(items), dtype=object)
    for k, item in enumerate(items):
        out[k] = item
    return out.reshape(shape, order="F")


@pytest.mark.parametrize("compress", [False, True])
def test_read_mat5_equals_loadmat(tmp_path, compress):
    rng = np.random.default_rng(0)
    variables = {
        "names": cell(["0--Parade", "1--Handshaking", "x"], (3, 1)),
        "nested": cell([cell([rng.integers(-5, 900, (k, 4)).astype(np.int32) for k in (0, 1, 7)], (3, 1)),
                        cell([np.arange(1, 4, dtype=np.uint8)[:, None]], (1, 1))], (2, 1)),
        "matrix": rng.normal(size=(3, 5)),
        "row": np.arange(5, dtype=np.int16)[None],
        "u16": np.array([[1, 300, 65535]], dtype=np.uint16),
        "single": np.float32([[1.5, -2.25]]),
        "empty": np.zeros((0, 4), dtype=np.int32),
        "chars": np.array(["abc", "xyz"]),
        "scalar": 7.0,
    }
    path = tmp_path / "a.mat"
    savemat(path, variables, do_compression=compress)
    mine, ref = read_mat5(path), loadmat(path)
    assert set(mine) == set(variables)
    for name in variables:
        if name == "chars":
            assert mine[name].tolist() == ["abc", "xyz"]
        else:
            assert_same(mine[name], ref[name], name)
    assert set(read_mat5(path, {"matrix", "names"})) == {"matrix", "names"}


def test_read_mat5_rejects_what_it_does_not_support(tmp_path):
    savemat(tmp_path / "s.mat", {"s": {"a": 1.0}, "c": np.array([[1 + 2j]])})
    with pytest.raises(MatFormatError):
        read_mat5(tmp_path / "s.mat", {"s"})
    with pytest.raises(MatFormatError):
        read_mat5(tmp_path / "s.mat", {"c"})
    (tmp_path / "text.mat").write_text("not a mat file")
    with pytest.raises(MatFormatError, match="not a MAT v5 file"):
        read_mat5(tmp_path / "text.mat")
    for compress in (False, True):
        savemat(tmp_path / "t.mat", {"m": np.random.default_rng(0).normal(size=(50, 50))}, do_compression=compress)
        (tmp_path / "cut.mat").write_bytes((tmp_path / "t.mat").read_bytes()[:3000])
        with pytest.raises(MatFormatError, match="truncated"):
            read_mat5(tmp_path / "cut.mat")


def _tiny_gt(tmp_path):
    from centerface_flow.evaluation import GroundTruth
    from centerface_flow.evaluation.synthetic import write_ground_truth

    gt = GroundTruth(("e",), np.zeros(2, np.intp), ("a", "b"), np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.int32),
                     np.array([0, 1, 2], np.intp), {s: np.array([True, s != "easy"]) for s in ("easy", "medium", "hard")})
    return write_ground_truth(gt, tmp_path / "gt")


def test_ground_truth_falls_back_to_scipy(tmp_path, monkeypatch):
    gt_dir = _tiny_gt(tmp_path)
    fast = load_ground_truth(gt_dir)

    def unsupported(path, names=None):
        raise MatFormatError("pretend")

    monkeypatch.setattr(groundtruth, "read_mat5", unsupported)
    slow = load_ground_truth(gt_dir)
    assert slow.image_keys() == fast.image_keys() == [("e", "a"), ("e", "b")]
    np.testing.assert_array_equal(slow.faces, fast.faces)
    assert all((slow.keep[s] == fast.keep[s]).all() for s in fast.keep)


def test_corrupt_ground_truth_is_a_user_error(tmp_path):
    gt_dir = _tiny_gt(tmp_path)
    (gt_dir / "wider_face_val.mat").write_bytes(b"garbage" * 100)
    with pytest.raises(UserError, match="wider_face_val.mat: not the official WIDER FACE ground truth"):
        load_ground_truth(gt_dir)
    gt_dir = _tiny_gt(tmp_path / "2")
    savemat(gt_dir / "wider_easy_val.mat", {"other": 1.0})
    with pytest.raises(UserError, match="wider_easy_val.mat: no usable gt_list"):
        load_ground_truth(gt_dir)
