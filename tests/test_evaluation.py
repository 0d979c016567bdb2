"""WIDER FACE evaluation on a hand-built 3-image ground truth: known APs, unsorted rows, subsets, bad input,
output tables and the command line."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from centerface_flow.errors import UserError
from centerface_flow.evaluation import (
    GroundTruth,
    evaluate_tree,
    load_ground_truth,
    read_ap_table,
    read_pr_curves,
    write_ap_table,
    write_pr_curves,
)
from centerface_flow.evaluation.core import normalise_scores, thresholds, voc_ap
from centerface_flow.evaluation.synthetic import write_ground_truth

# faces: A has f0 (easy, medium, hard) and f1 (medium, hard); B has f2 (easy, hard); C has none
FACES = np.array([[0, 0, 10, 10], [20, 0, 10, 10], [0, 0, 20, 20]], dtype=np.int32)
KEEP = {"easy": [1, 0, 1], "medium": [1, 1, 0], "hard": [1, 1, 1]}
# detections: d1 = f0, d2 = f1, d3 false, (d6 in C, which has no faces), d4 = f2, d5 a duplicate of f2
ROWS = {
    ("0--Parade", "A"): [(0, 0, 10, 10, 0.9), (20, 0, 10, 10, 0.8), (100, 100, 10, 10, 0.7)],
    ("0--Parade", "B"): [(0, 0, 20, 20, 0.6), (1, 1, 20, 20, 0.5)],
    ("1--Handshaking", "C"): [(0, 0, 10, 10, 0.55)],
}
# by score: easy d1 TP, d2 ignored (f1 not in easy), d3 FP, d4 TP, d5 FP -> 0.5 * 1 + 0.5 * 2/3
# medium: d1 TP, d2 TP, d3 FP, d4 d5 ignored -> 1; hard: d1 d2 TP, d3 FP, d4 TP, d5 FP -> 2/3 * 1 + 1/3 * 3/4
EXPECTED = {"easy": 5 / 6, "medium": 1.0, "hard": 11 / 12}


@pytest.fixture()
def gt_dir(tmp_path) -> Path:
    gt = GroundTruth(
        events=("0--Parade", "1--Handshaking"),
        image_event=np.array([0, 0, 1], dtype=np.intp),
        image_names=("A", "B", "C"),
        faces=FACES,
        face_offsets=np.array([0, 2, 3, 3], dtype=np.intp),
        keep={s: np.array(k, dtype=bool) for s, k in KEEP.items()},
    )
    return write_ground_truth(gt, tmp_path / "ground_truth")


def write_tree(root: Path, rows=ROWS, reverse=False) -> Path:
    for (event, name), dets in rows.items():
        (root / event).mkdir(parents=True, exist_ok=True)
        dets = dets[::-1] if reverse else dets
        body = "".join(" ".join(repr(float(v)) for v in d) + "\n" for d in dets)
        (root / event / f"{name}.txt").write_text(f"{event}/{name}.jpg\n{len(dets)}\n{body}")
    return root


@pytest.mark.parametrize("protocol", ["python", "official"])
def test_known_ap(tmp_path, gt_dir, protocol):
    result = evaluate_tree(write_tree(tmp_path / "pred"), gt_dir, protocol=protocol)
    for setting, ap in EXPECTED.items():
        assert result.settings[setting].ap == pytest.approx(ap, abs=1e-12)
    assert {s: r.faces for s, r in result.settings.items()} == {"easy": 2, "medium": 2, "hard": 3}
    assert result.images == 3 and not result.subset


@pytest.mark.parametrize("protocol", ["python", "official"])
def test_unsorted_rows_give_the_sorted_ap(tmp_path, gt_dir, protocol):
    sorted_ap = evaluate_tree(write_tree(tmp_path / "a"), gt_dir, protocol=protocol).ap()
    assert evaluate_tree(write_tree(tmp_path / "b", reverse=True), gt_dir, protocol=protocol).ap() == sorted_ap


def test_load_ground_truth(gt_dir):
    gt = load_ground_truth(gt_dir)
    assert gt.image_keys() == [("0--Parade", "A"), ("0--Parade", "B"), ("1--Handshaking", "C")]
    np.testing.assert_array_equal(gt.faces, FACES)
    assert {s: k.tolist() for s, k in gt.keep.items()} == {s: [bool(v) for v in k] for s, k in KEEP.items()}


def test_missing_ground_truth(tmp_path, gt_dir):
    with pytest.raises(UserError, match=r"missing wider_face_val\.mat.*did you mean .*ground_truth"):
        load_ground_truth(gt_dir.parent)
    (gt_dir / "wider_hard_val.mat").unlink()
    with pytest.raises(UserError, match=r"missing wider_hard_val\.mat"):
        evaluate_tree(write_tree(tmp_path / "pred"), gt_dir)


def test_missing_file_needs_subset(tmp_path, gt_dir):
    pred = write_tree(tmp_path / "pred")
    (pred / "0--Parade" / "B.txt").unlink()
    with pytest.raises(UserError, match=r"1 of 3 prediction files are missing: 0--Parade/B\.txt.*--subset"):
        evaluate_tree(pred, gt_dir)
    result = evaluate_tree(pred, gt_dir, subset=True)
    assert result.subset and result.images == 2
    assert {s: r.faces for s, r in result.settings.items()} == {"easy": 1, "medium": 2, "hard": 2}
    assert {s: r.images for s, r in result.settings.items()} == {"easy": 2, "medium": 2, "hard": 2}
    assert result.ap() == {"easy": 1.0, "medium": 1.0, "hard": 1.0}


def test_missing_event_folder(tmp_path, gt_dir):
    pred = write_tree(tmp_path / "pred")
    for f in (pred / "1--Handshaking").iterdir():
        f.unlink()
    (pred / "1--Handshaking").rmdir()
    with pytest.raises(UserError, match=r"1--Handshaking/C\.txt \(1 event folder\(s\) missing: 1--Handshaking\)"):
        evaluate_tree(pred, gt_dir)
    assert evaluate_tree(pred, gt_dir, subset=True).images == 2
    with pytest.raises(UserError, match="no prediction file of any ground-truth image"):
        evaluate_tree(tmp_path, gt_dir, subset=True)
    with pytest.raises(UserError, match="not a directory"):
        evaluate_tree(tmp_path / "nowhere", gt_dir)


def test_unknown_prediction_file(tmp_path, gt_dir):
    pred = write_tree(tmp_path / "pred")
    (pred / "0--Parade" / "Z.txt").write_text("Z\n0\n")
    (pred / "0--Parade" / "notes.log").write_text("ignored")
    with pytest.raises(UserError, match=r"not WIDER FACE val images of the ground truth: 0--Parade/Z\.txt"):
        evaluate_tree(pred, gt_dir)


@pytest.mark.parametrize("content,where,words", [
    ("0--Parade/B.jpg\n2\n0 0 20 20 0.6\n", ":4:", "says 2 detections but the file has 1 rows"),
    ("0--Parade/B.jpg\n1\n0 0 20 20 0.6\n1 1 20 20 0.5\n", ":4:", "more rows follow"),
    ("0--Parade/B.jpg\n2\n0 0 20 20 0.6\n1 one 20 20 0.5\n", ":4:", "not a number in column 2"),
    ("0--Parade/B.jpg\n2\n0 0 20 20 0.6\n1 1 -20 20 0.5\n", ":4:", "negative width"),
    ("0--Parade/B.jpg\n2\n0 0 20 20 nan\n1 1 20 20 0.5\n", ":3:", "score is NaN"),
    ("0--Parade/B.jpg\ntwo\n", ":2:", "non-negative integer"),
    ("0--Parade/B.jpg\n", ":2:", "expected the number of detections"),
    ("0--Parade/A.jpg\n0\n", ":1:", "does not match the file name"),
])
def test_bad_prediction_file(tmp_path, gt_dir, content, where, words):
    pred = write_tree(tmp_path / "pred")
    path = pred / "0--Parade" / "B.txt"
    path.write_text(content)
    with pytest.raises(UserError, match=f"^{path}{where} .*{words}"):
        evaluate_tree(pred, gt_dir)


def test_empty_file_means_no_detections(tmp_path, gt_dir):
    pred = write_tree(tmp_path / "pred")
    (pred / "0--Parade" / "B.txt").write_text("")
    ap = evaluate_tree(pred, gt_dir).ap()
    (pred / "0--Parade" / "B.txt").write_text("B\n0\n")
    assert evaluate_tree(pred, gt_dir).ap() == ap
    assert ap["easy"] == pytest.approx(0.5)  # d1 TP, d3 FP, f2 never found


@pytest.mark.parametrize("protocol", ["python", "official"])
def test_equal_scores_give_zero_ap(tmp_path, gt_dir, protocol):
    rows = {key: [d[:4] + (0.5,) for d in dets] for key, dets in ROWS.items()}
    assert evaluate_tree(write_tree(tmp_path / "pred", rows), gt_dir, protocol=protocol).ap() == {
        "easy": 0.0, "medium": 0.0, "hard": 0.0}


def test_score_normalisation_initial_extremes():
    scores = np.array([2.0, 3.0])
    np.testing.assert_array_equal(normalise_scores(scores, "python"), [0.5, 1.0])  # the port starts from min = 1
    np.testing.assert_array_equal(normalise_scores(scores, "official"), [0.0, 1.0])


def test_iou_threshold(tmp_path, gt_dir):
    rows = dict(ROWS)
    rows[("0--Parade", "A")] = [(0, 0, 10, 10, 0.9), (23, 2, 10, 10, 0.8), (100, 100, 10, 10, 0.7)]  # IoU 72/170
    pred = write_tree(tmp_path / "pred", rows)
    assert evaluate_tree(pred, gt_dir, iou=0.5).ap()["medium"] < 1.0
    assert evaluate_tree(pred, gt_dir, iou=0.4).ap()["medium"] == 1.0
    for bad in (0.0, 1.5, math.nan):
        with pytest.raises(UserError, match="^iou: must be in"):
            evaluate_tree(pred, gt_dir, iou=bad)
    with pytest.raises(UserError, match="^protocol: must be one of"):
        evaluate_tree(pred, gt_dir, protocol="matlab")


def test_voc_ap_and_thresholds():
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(5 / 6)
    assert voc_ap(np.array([0.0, 0.5]), np.array([np.nan, 1.0])) == 0.5
    t = thresholds()
    assert t.shape == (1000,) and t[0] == 1 - 1 / 1000 and t[-1] == 0.0 and (np.diff(t) < 0).all()


def test_tables_round_trip(tmp_path, gt_dir):
    result = evaluate_tree(write_tree(tmp_path / "pred"), gt_dir, iou=0.4, protocol="official")
    write_ap_table(result, tmp_path / "ap.tsv")
    write_pr_curves(result, tmp_path / "pr.tsv")
    table = read_ap_table(tmp_path / "ap.tsv")
    assert list(table.columns) == ["setting", "ap", "faces", "images", "iou", "protocol", "subset", "image_set"]
    assert table["setting"].tolist() == ["easy", "medium", "hard"]
    assert table["ap"].tolist() == [result.settings[s].ap for s in ("easy", "medium", "hard")]  # exact
    assert table["iou"].tolist() == [0.4] * 3 and set(table["protocol"]) == {"official"}
    pr = read_pr_curves(tmp_path / "pr.tsv")
    assert list(pr.columns) == ["setting", "recall", "precision", "threshold"] and len(pr) == 3000
    hard = pr[pr["setting"] == "hard"]
    np.testing.assert_array_equal(hard["recall"], result.settings["hard"].recall)
    np.testing.assert_array_equal(hard["threshold"], thresholds())


def run_cli(*args):
    code = ("import sys, json; from centerface_flow.cli import main; rc = main(sys.argv[1:]); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('mindspore', 'cv2', 'onnxruntime', 'onnx', 'matplotlib', 'torch')); "
            "print(json.dumps(heavy)); sys.exit(rc)")
    command = [sys.executable, "-c", code, *map(str, args)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)


def test_cli_evaluate(tmp_path, gt_dir):
    pred = write_tree(tmp_path / "pred")
    proc = run_cli("evaluate", "--pred", pred, "--gt", gt_dir, "--out", tmp_path / "ap.tsv", "--pr-out",
                   tmp_path / "pr.tsv", "--protocol", "official", "--iou", "0.5")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert json.loads(lines[-1]) == []  # MindSpore (and other heavy packages) never imported
    assert "3 images, protocol official, IoU 0.5" in lines[0]
    assert lines[2].split() == ["easy", "0.8333", "2", "3"]
    assert read_ap_table(tmp_path / "ap.tsv")["ap"].iloc[2] == pytest.approx(11 / 12, abs=1e-12)
    assert (tmp_path / "pr.tsv").is_file()


def test_cli_evaluate_errors(tmp_path, gt_dir):
    pred = write_tree(tmp_path / "pred")
    (pred / "0--Parade" / "A.txt").unlink()
    proc = run_cli("evaluate", "--pred", pred, "--gt", gt_dir)
    assert proc.returncode == 2
    assert "centerface evaluate: error:" in proc.stderr and "--subset" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("evaluate", "--pred", pred, "--gt", gt_dir, "--subset")
    assert proc.returncode == 0 and "subset of 2 images" in proc.stdout


def test_ground_truth_without_faces(tmp_path):
    gt = GroundTruth(("0--Parade",), np.zeros(1, np.intp), ("A",), np.zeros((0, 4), np.int32),
                     np.zeros(2, np.intp), {s: np.zeros(0, bool) for s in KEEP})
    gt_dir = write_ground_truth(gt, tmp_path / "gt")
    pred = write_tree(tmp_path / "pred", {("0--Parade", "A"): [(0, 0, 10, 10, 0.9), (5, 5, 10, 10, 0.1)]})
    result = evaluate_tree(pred, gt_dir)
    assert all(math.isnan(ap) for ap in result.ap().values())
    assert {s.faces for s in result.settings.values()} == {0}
