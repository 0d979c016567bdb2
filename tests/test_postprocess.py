"""Candidates store round trip, candidates → WIDER tree + landmarks table, and the `postprocess` command."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from centerface_flow.errors import UserError
from centerface_flow.inference.candidates import CandidatesBuilder, load_candidates, save_candidates
from centerface_flow.postprocess.predictions import LANDMARKS_FILE, PostprocessConfig, select, write_tree


def make_candidates(n_images: int = 3, per_image: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    b = CandidatesBuilder()
    for i in range(n_images):
        xy = rng.uniform(0, 300, size=(per_image, 2))
        wh = rng.uniform(5, 80, size=(per_image, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        lms = xy[:, None, :] + rng.uniform(0, 5, size=(per_image, 5, 2))
        b.add(f"{i % 2}--Event/img_{i}.jpg", (400, 300), boxes, rng.uniform(0, 1, per_image), lms,
              passes=rng.integers(0, 2, per_image))
    b.failed.append("1--Event/broken.jpg")
    return b.build({"weights": "x.ckpt", "passes": [{"scale": 1.0, "flip": False}, {"scale": 1.0, "flip": True}]})


def read_prediction(path: Path) -> tuple[str, np.ndarray]:
    lines = path.read_text().splitlines()
    count = int(lines[1])
    rows = np.array([[float(v) for v in ln.split()] for ln in lines[2:]]).reshape(-1, 5)
    assert len(rows) == count, f"{path}: count line {count} but {len(rows)} rows"
    return lines[0], rows


def test_candidates_round_trip(tmp_path):
    cands = make_candidates()
    save_candidates(tmp_path / "c.npz", cands)
    back = load_candidates(tmp_path / "c.npz")
    assert back.paths == cands.paths and back.failed == ["1--Event/broken.jpg"]
    assert back.meta["passes"][1]["flip"] is True
    for key in ("sizes", "offsets", "boxes", "scores", "landmarks", "passes"):
        np.testing.assert_array_equal(getattr(back, key), getattr(cands, key))
    boxes, scores, lms = back.image(1)
    assert boxes.shape == (20, 4) and lms.shape == (20, 5, 2) and np.all(np.diff(scores) <= 0)


def test_empty_candidates_round_trip(tmp_path):
    save_candidates(tmp_path / "e.npz", CandidatesBuilder().build())
    back = load_candidates(tmp_path / "e.npz")
    assert len(back) == 0 and back.boxes.shape == (0, 4) and back.landmarks.shape == (0, 5, 2)


def test_bad_candidates_files(tmp_path):
    with pytest.raises(UserError, match="no such candidates file"):
        load_candidates(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(UserError, match="junk.npz"):
        load_candidates(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(UserError, match="missing arrays"):
        load_candidates(tmp_path / "other.npz")


def test_a_damaged_memory_mapped_array_is_a_clear_error(tmp_path):
    """Large arrays are memory-mapped from the file: a damaged .npy header inside the zip still names the file."""
    b = CandidatesBuilder()
    n = 30000  # landmarks 2.4 MB: above the size that is mapped instead of read
    b.add("0--E/a.jpg", (100, 100), np.tile([1, 1, 5, 5], (n, 1)), np.linspace(1, 0.1, n), np.ones((n, 5, 2)))
    good = tmp_path / "c.npz"
    save_candidates(good, b.build())
    assert len(load_candidates(good).scores) == n
    data = bytearray(good.read_bytes())
    magic = data.find(b"\x93NUMPY", data.find(b"landmarks.npy"))
    data[magic:magic + 6] = b"BROKEN"
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with pytest.raises(UserError, match="bad.npz: not a readable"):
        load_candidates(tmp_path / "bad.npz")


def test_select_threshold_nms_and_cap():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [-5, -5, 5, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.3, 0.7], np.float32)
    lms = np.arange(40, dtype=np.float32).reshape(4, 5, 2)
    b, s, lm = select(boxes, scores, lms, (100, 100), PostprocessConfig(score_threshold=0.5, nms="hard", nms_iou=0.4))
    # 0.3 dropped by the threshold, box 1 suppressed by box 0; box 3 clipped to the image
    np.testing.assert_allclose(s, [0.9, 0.7])
    np.testing.assert_allclose(b[1], [0, 0, 5, 5])
    np.testing.assert_array_equal(lm[1], lms[3])
    b, s, _ = select(boxes, scores, lms, (100, 100), PostprocessConfig(score_threshold=0.0, max_dets=2))
    assert len(s) == 2
    b, s, _ = select(boxes, scores, lms, (100, 100), PostprocessConfig(score_threshold=0.0, nms="gaussian"))
    assert len(s) == 4 and np.all(np.diff(s) <= 0) and s[0] == np.float32(0.9)
    with pytest.raises(UserError, match="nms"):
        PostprocessConfig(nms="soft")


def test_nms_iou_convention_plus_one_or_continuous():
    # two 10x10 boxes shifted by 4 px: continuous IoU 60 / 140 = 0.4286; with +1 pixel 77 / 165 = 0.4667
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    lms = np.zeros((2, 5, 2), np.float32)
    cfg = {"score_threshold": 0.0, "nms": "hard", "nms_iou": 0.45}
    assert len(select(boxes, scores, lms, (100, 100), PostprocessConfig(**cfg, nms_plus_one=False))[1]) == 2
    assert len(select(boxes, scores, lms, (100, 100), PostprocessConfig(**cfg, nms_plus_one=True))[1]) == 1


def test_box_voting_averages_the_overlapping_candidates_by_score():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.2, 0.5], np.float32)
    lms = np.arange(30, dtype=np.float32).reshape(3, 5, 2)
    cfg = PostprocessConfig(score_threshold=0.0, nms="hard", nms_iou=0.3, box_voting=True)
    b, s, lm = select(boxes, scores, lms, (100, 100), cfg)
    np.testing.assert_allclose(s, [0.6, 0.5])  # scores of the kept boxes
    np.testing.assert_allclose(b[0], [0.5, 0, 10.5, 10], atol=1e-5)  # (0.6 * 0 + 0.2 * 2) / 0.8
    np.testing.assert_allclose(b[1], boxes[2])
    np.testing.assert_array_equal(lm, lms[[0, 2]])
    with pytest.raises(UserError, match="box_voting"):
        PostprocessConfig(nms="gaussian", box_voting=True)
    with pytest.raises(UserError, match="score_threshold"):
        PostprocessConfig(score_threshold=float("nan"))


def test_write_tree_format(tmp_path):
    cands = make_candidates()
    cfg = PostprocessConfig(score_threshold=0.2, nms="hard", nms_iou=0.3)
    summary = write_tree(cands, tmp_path / "tree", cfg)
    files = sorted(p.relative_to(tmp_path / "tree").as_posix() for p in (tmp_path / "tree").rglob("*.txt"))
    assert files == ["0--Event/img_0.txt", "0--Event/img_2.txt", "1--Event/img_1.txt"]
    total = 0
    lm_lines = (tmp_path / "tree" / LANDMARKS_FILE).read_text().splitlines()
    assert lm_lines[0].split("\t")[:3] == ["image", "rank", "score"] and len(lm_lines[0].split("\t")) == 13
    for i, rel in enumerate(cands.paths):
        name, rows = read_prediction(tmp_path / "tree" / rel.replace(".jpg", ".txt"))
        assert name == Path(rel).stem
        exp_boxes, exp_scores, exp_lms = select(*cands.image(i), (400, 300), cfg)
        np.testing.assert_allclose(rows[:, 4], exp_scores, atol=1e-6)
        np.testing.assert_allclose(rows[:, :2], exp_boxes[:, :2], atol=0.006)
        np.testing.assert_allclose(rows[:, 2:4], exp_boxes[:, 2:] - exp_boxes[:, :2], atol=0.011)
        assert np.all(rows[:, 4] >= 0.2) and np.all(np.diff(rows[:, 4]) <= 0)
        mine = [ln.split("\t") for ln in lm_lines[1:] if ln.startswith(rel[:-4] + "\t")]
        assert [int(r[1]) for r in mine] == list(range(1, len(rows) + 1))
        np.testing.assert_allclose(np.array([r[3:] for r in mine], float).reshape(-1, 5, 2), exp_lms, atol=0.006)
        total += len(rows)
    assert summary["detections"] == total and summary["images"] == 3


def test_write_tree_replaces_only_its_own_trees(tmp_path):
    cands = make_candidates()
    out = tmp_path / "tree"
    write_tree(cands, out, PostprocessConfig())
    before = {p: p.read_text() for p in out.rglob("*.txt")}
    write_tree(cands, out, PostprocessConfig(score_threshold=0.9))
    after = {p: p.read_text() for p in out.rglob("*.txt")}
    assert after.keys() == before.keys() and after != before
    assert [p.name for p in tmp_path.iterdir()] == ["tree"], "staging folders must be cleaned up"
    # a file the user added to an earlier tree is never deleted with it (reliability finding 2)
    (out / "0--Event" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"0--Event/notes.txt.*refusing to replace"):
        write_tree(cands, out, PostprocessConfig())
    assert (out / "0--Event" / "notes.txt").read_text() == "mine"
    assert {p: p.read_text() for p in out.rglob("*.txt") if p.name != "notes.txt"} == after
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="refusing to replace"):
        write_tree(cands, precious, PostprocessConfig())
    assert (precious / "notes.txt").read_text() == "keep me"


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    code = ("import sys; from centerface_flow.cli import main; rc = main(sys.argv[1:]); "
            "heavy = sorted(m for m in ('mindspore', 'onnxruntime', 'torch') if m in sys.modules); "
            "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], check=False, capture_output=True, text=True,
                          timeout=timeout)


def test_postprocess_command_without_mindspore(tmp_path):
    save_candidates(tmp_path / "c.npz", make_candidates())
    res = _cli("postprocess", str(tmp_path / "c.npz"), "--out", str(tmp_path / "tree"), "--nms", "gaussian",
               "--sigma", "0.4", "--score-threshold", "0.1", "--max-dets", "5")
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stderr, res.stderr
    for p in (tmp_path / "tree").rglob("*.txt"):
        _, rows = read_prediction(p)
        assert len(rows) <= 5


def test_postprocess_command_errors(tmp_path):
    (tmp_path / "bad.npz").write_text("nope")
    res = _cli("postprocess", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "tree"))
    assert res.returncode == 2 and "bad.npz" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_postprocess_command_writes_every_image(tmp_path):
    """610 images of random candidates through the command: one file per image (its speed is measured by
    benchmarks/bench_test_stage.py, not here)."""
    b = CandidatesBuilder()
    rng = np.random.default_rng(1)
    for i in range(610):
        xy = rng.uniform(0, 900, size=(200, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(4, 120, size=(200, 2))], 1)
        b.add(f"{i // 10}--E/{i}.jpg", (1024, 768), boxes, rng.beta(0.3, 3, 200), np.zeros((200, 5, 2)))
    save_candidates(tmp_path / "c.npz", b.build())
    res = _cli("postprocess", str(tmp_path / "c.npz"), "--out", str(tmp_path / "tree"), "--score-threshold", "0.01")
    assert res.returncode == 0, res.stderr
    assert len(list((tmp_path / "tree").rglob("*.txt"))) == 610


def test_table_formatter_kernel_writes_what_python_writes():
    from centerface_flow.postprocess.predictions import _format_rows_kernel, format_rows_python

    if _format_rows_kernel is None:
        pytest.skip("Cython kernels not built")
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(0, 500, (200, 6)), rng.uniform(0, 1, (200, 6))], 0)
    values[:4, 0] = [0.125, 2.675, -0.0, 1e15]  # halfway cases, negative zero, a long value
    decimals = np.array([2, 2, 6, 0, 2, 9], np.int32)
    assert _format_rows_kernel(values, decimals, b"\t").decode() == format_rows_python(values, decimals, "\t")
    for scale in (1e-3, 1.0, 1e3, 1e9):  # near-ties (x.xx5) at every magnitude take the exact path
        values = np.concatenate([rng.normal(0, scale, (500, 6)), np.round(rng.normal(0, scale, (500, 6)), 3) + 0.005])
        assert _format_rows_kernel(values, decimals, b" ").decode() == format_rows_python(values, decimals, " ")
    assert _format_rows_kernel(values[:0], decimals, b" ") == b""
    with pytest.raises(OverflowError):
        _format_rows_kernel(np.array([[1e40]]), np.array([2], np.int32), b" ")
    with pytest.raises(ValueError, match="decimals"):
        _format_rows_kernel(values, np.array([2, 2], np.int32), b" ")
    with pytest.raises(ValueError, match="decimals"):
        _format_rows_kernel(np.ascontiguousarray(values[:, :1]), np.array([10], np.int32), b" ")
    with pytest.raises(ValueError, match="sep"):
        _format_rows_kernel(values, decimals, b", ")
