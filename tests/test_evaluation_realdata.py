"""Evaluation on the real WIDER FACE val ground truth: numbers of the reference implementations, subsets of the
610 shared images, the speed of a full 3,226-image run.

The reference implementations cannot run in CI (their code is not part of this repository), so the expected APs
below were produced once, on the same seeded synthetic trees (``trees`` fixture), by running locally:

* ``python``: the Python port github.com/wondervictor/WiderFace-Evaluation (evaluation.py + box_overlaps.pyx, the
  code also used by Pytorch_Retinaface and the MindSpore model zoo), patched only to build on numpy 2
  (``np.float`` -> ``np.float64``), to return the APs, and to sort each file's rows by descending score (stable)
  after reading: the port does not sort and miscounts unsorted files (docs/evaluation.md). On trees written already
  sorted, the unpatched port gives the same numbers bit for bit.
* ``official``: the MATLAB eval_tools (read_pred.m, norm_score.m, evaluation.m, boxoverlap.m, VOCap.m; copy in
  github.com/peiyunh/tiny) run unchanged in GNU Octave 7.3 (only ``save -v7.3`` changed to ``-v7``), through a
  driver doing what wider_eval.m does and printing ``VOCap`` of each saved ``pr_cruve``.
"""
from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from centerface_flow.errors import UserError
from centerface_flow.evaluation import evaluate_tree, load_ground_truth
from centerface_flow.evaluation.synthetic import synthetic_detections, write_ground_truth, write_tree

pytestmark = pytest.mark.realdata

# (tree, protocol, iou) -> reference APs (easy, medium, hard), see the module docstring and the ``trees`` fixture
REFERENCE = {
    ("s1", "python", 0.5): (0.4312112690202865, 0.5407462243592257, 0.6581580348634026),
    ("s1", "python", 0.4): (0.6859858890069126, 0.7438188252962716, 0.7945920137902416),
    ("s1", "official", 0.5): (0.42329536436890142, 0.53468066515228674, 0.65320721436911611),
    ("t2", "python", 0.5): (0.6901887944800509, 0.7388670022533426, 0.7923661635829422),
    ("t2", "official", 0.5): (0.69034252407552243, 0.73875695287304921, 0.79221367737154058),
    ("t3", "python", 0.5): (0.4069167730011968, 0.4888419373693178, 0.5941421622188326),
    ("t3", "python", 0.4): (0.42087100021172885, 0.500326284158347, 0.6042340780767321),
    ("t3", "official", 0.5): (0.40419759682575712, 0.48611840955508773, 0.59086267175351104),
    ("t4", "python", 0.5): (0.4110009868846169, 0.4919979069537055, 0.5966758675450463),
    ("t4", "official", 0.5): (0.4083615088470185, 0.48935480960976491, 0.59343486734413642),
}


@pytest.fixture(scope="module")
def gt_dir(widerface) -> Path:
    return widerface / "ground_truth"


def first_images(gt, per_event: int = 10) -> np.ndarray:
    """(I,) bool: the first ``per_event`` images of every event in .mat order (the 610 shared images)."""
    seen: dict[int, int] = {}
    out = np.zeros(gt.n_images, dtype=bool)
    for i, e in enumerate(gt.image_event):
        seen[e] = seen.get(e, 0) + 1
        out[i] = seen[e] <= per_event
    return out


@pytest.fixture(scope="module")
def trees(gt_dir, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (prediction tree, ground-truth folder). Rows are written unsorted."""
    root = tmp_path_factory.mktemp("trees")
    gt = load_ground_truth(gt_dir)
    out = {
        "s1": (write_tree(gt, synthetic_detections(gt, 1), root / "s1"), gt_dir),
        "t2": (write_tree(gt, synthetic_detections(gt, 2, jitter=0.05, extra_per_image=20), root / "t2"), gt_dir),
    }
    # t3: a reduced ground truth (the 610 shared images) and a stress tree: half-pixel corners, tiny boxes, ties
    small = gt.restrict(first_images(gt))
    small_dir = write_ground_truth(small, root / "gt610")
    det = synthetic_detections(small, 3, jitter=0.08, extra_per_image=30)
    rng = np.random.default_rng(33)
    for d in det:
        d[:, :4] = np.round(d[:, :4] * 2) / 2
        tiny = rng.random(len(d)) < 0.1
        d[tiny, 2:4] = rng.choice([0.0, 0.5, 1.0, 1.5], (int(tiny.sum()), 2))
        d[:, 4] = np.round(d[:, 4], 2)
    out["t3"] = (write_tree(small, det, root / "t3"), small_dir)
    # t4: t3 with fine scores all above 1 (the two protocols normalise those differently)
    rng = np.random.default_rng(44)
    for d in det:
        d[:, 4] = np.round(1.5 + 3 * d[:, 4] + rng.uniform(0, 0.03, len(d)), 6)
    out["t4"] = (write_tree(small, det, root / "t4", score_decimals=6), small_dir)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(REFERENCE), ids=lambda k: f"{k[0]}-{k[1]}-iou{k[2]}")
def test_equals_reference_implementation(trees, key):
    name, protocol, iou = key
    pred, gt = trees[name]
    got = evaluate_tree(pred, gt, iou=iou, protocol=protocol).ap()
    np.testing.assert_allclose([got["easy"], got["medium"], got["hard"]], REFERENCE[key], rtol=0, atol=1e-12)


def test_ground_truth_counts(gt_dir):
    gt = load_ground_truth(gt_dir)
    assert gt.n_images == 3226 and len(gt.events) == 61 and len(gt.faces) == 39708
    assert {s: int(k.sum()) for s, k in gt.keep.items()} == {"easy": 7211, "medium": 13319, "hard": 31958}


def test_subset_of_the_shared_images(widerface, gt_dir, tmp_path):
    gt = load_ground_truth(gt_dir)
    image_dir = widerface / "WIDER_val" / "images"
    present = np.array([(image_dir / e / f"{n}.jpg").is_file() for e, n in gt.image_keys()])
    assert present.sum() == 610
    pred = write_tree(gt, synthetic_detections(gt, 5), tmp_path / "pred", images=present)
    with pytest.raises(UserError, match=r"2616 of 3226 prediction files are missing: .*--subset"):
        evaluate_tree(pred, gt_dir)
    result = evaluate_tree(pred, gt_dir, subset=True)
    assert result.images == 610
    small = gt.restrict(present)
    assert {s: r.faces for s, r in result.settings.items()} == {s: int(k.sum()) for s, k in small.keep.items()}
    # the same numbers as a full evaluation against a ground truth holding only those images
    assert evaluate_tree(pred, write_ground_truth(small, tmp_path / "gt")).ap() == result.ap()


@pytest.mark.slow
def test_full_evaluation_is_fast(trees, gt_dir):
    """A full 3,226-image run through the command: CPU time of the whole process (robust to a busy machine)."""
    pred, _ = trees["s1"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = "import sys; from centerface_flow.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, "evaluate", "--pred", str(pred), "--gt", str(gt_dir)],
                   check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 2.0, f"full evaluation took {cpu:.2f} s of CPU"


def test_mat_reader_equals_scipy_on_the_official_files(gt_dir):
    from scipy.io import loadmat

    from centerface_flow.evaluation.matfile import read_mat5

    for name, variables in [("wider_face_val.mat", ["event_list", "file_list", "face_bbx_list"]),
                            ("wider_hard_val.mat", ["gt_list"])]:
        mine, ref = read_mat5(gt_dir / name, set(variables)), loadmat(gt_dir / name, variable_names=variables)
        for var in variables:
            a, b = mine[var], ref[var]
            assert a.shape == b.shape
            for e in range(a.shape[0]):
                x, y = a[e, 0], b[e, 0]
                if isinstance(x, str):
                    assert x == str(y[0])
                    continue
                assert x.shape == y.shape
                for j in range(x.shape[0]):
                    u, v = x[j, 0], y[j, 0]
                    if isinstance(u, str):
                        assert u == str(v[0])
                    else:  # gt_list is class double stored as uint8: same values
                        assert u.shape == v.shape and np.array_equal(u, v)
