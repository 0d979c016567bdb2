"""The Cython NMS kernel against its numpy twin, hand-made cases, and the model zoo's soft-NMS loop semantics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from centerface_flow.postprocess import nms as nms_mod
from centerface_flow.postprocess.nms import NMS_METHODS, nms

pytestmark = pytest.mark.skipif(not nms_mod.have_kernel(), reason="Cython kernel not built")

METHODS = sorted(NMS_METHODS)


def random_boxes(rng: np.random.Generator, n: int, extent: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.uniform(0, extent, size=(n, 2))
    wh = rng.uniform(2, 60, size=(n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    return boxes, rng.uniform(0, 1, size=n).astype(np.float32)


def both(boxes, scores, **kw):
    k_keep, k_scores = nms(boxes, scores, **kw)
    n_keep, n_scores = nms(boxes, scores, use_kernel=False, **kw)
    return (k_keep, k_scores), (n_keep, n_scores)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(6))
def test_kernel_equals_numpy_twin_on_random_boxes(method, seed):
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, int(rng.integers(1, 400)))
    kw = {"method": method, "iou_threshold": float(rng.uniform(0.2, 0.6)), "sigma": float(rng.uniform(0.3, 0.8)),
              "final_threshold": float(rng.choice([0.0, 0.001, 0.05])), "offset": float(rng.choice([0.0, 1.0]))}
    (k_keep, k_scores), (n_keep, n_scores) = both(boxes, scores, **kw)
    assert k_keep.dtype == np.intp and k_scores.dtype == np.float32
    np.testing.assert_array_equal(k_keep, n_keep)
    np.testing.assert_allclose(k_scores, n_scores, rtol=1e-6, atol=0)
    assert np.all(np.diff(k_scores) <= 0), "kept scores must come out non-increasing"
    assert len(set(k_keep.tolist())) == len(k_keep)


@pytest.mark.parametrize("method", METHODS)
def test_empty_and_one_box(method):
    for use_kernel in (True, False):
        keep, kept = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), method=method, use_kernel=use_kernel)
        assert keep.shape == (0,) and kept.shape == (0,)
        keep, kept = nms(np.array([[1, 2, 3, 4]], np.float32), np.array([0.0001], np.float32), method=method,
                         use_kernel=use_kernel)
        # a selected box is never dropped, even below the final threshold (as in the model zoo)
        assert keep.tolist() == [0] and kept.tolist() == [np.float32(0.0001)]


@pytest.mark.parametrize("method", METHODS)
def test_ties_break_by_lowest_index(method):
    # identical boxes with identical scores: the first one wins; disjoint tied boxes are kept in index order
    boxes = np.array([[0, 0, 10, 10]] * 3 + [[100, 100, 110, 110], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.5, 0.5, 0.5, 0.5, 0.5], np.float32)
    (k_keep, k_scores), (n_keep, n_scores) = both(boxes, scores, method=method, iou_threshold=0.3, sigma=0.5,
                                                  final_threshold=0.001)
    np.testing.assert_array_equal(k_keep, n_keep)
    np.testing.assert_allclose(k_scores, n_scores, rtol=1e-6)
    assert k_keep[0] == 0
    if method == "hard":
        assert k_keep.tolist() == [0, 3, 4]
    else:
        # 1 and 2 decay after 0 is picked; the disjoint ones (3, 4) keep 0.5 and come next in index order
        assert k_keep[:3].tolist() == [0, 3, 4]


def test_many_random_ties_agree():
    rng = np.random.default_rng(7)
    boxes = np.round(random_boxes(rng, 300, extent=60)[0] / 8) * 8  # many duplicate boxes
    scores = rng.choice(np.array([0.2, 0.4, 0.9], np.float32), size=300)
    for method in METHODS:
        (k_keep, k_scores), (n_keep, n_scores) = both(boxes.astype(np.float32), scores, method=method,
                                                      iou_threshold=0.4, final_threshold=0.01)
        np.testing.assert_array_equal(k_keep, n_keep)
        np.testing.assert_allclose(k_scores, n_scores, rtol=1e-6)


def test_hand_computed_values():
    # box B overlaps A with IoU (offset 0) = 50 / 150 = 1/3
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [40, 40, 50, 50]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    ov = 1 / 3
    keep, kept = nms(boxes, scores, method="hard", iou_threshold=0.3, offset=0.0)
    assert keep.tolist() == [0, 2]
    keep, kept = nms(boxes, scores, method="hard", iou_threshold=0.34, offset=0.0)
    assert keep.tolist() == [0, 1, 2]
    keep, kept = nms(boxes, scores, method="linear", iou_threshold=0.3, offset=0.0)
    assert keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(kept, [0.9, 0.7, 0.8 * (1 - ov)], rtol=1e-6)
    keep, kept = nms(boxes, scores, method="gaussian", sigma=0.5, offset=0.0)
    assert keep.tolist() == [0, 2, 1]  # 0.8 * exp(-1/4.5) = 0.64 < 0.7
    np.testing.assert_allclose(kept, [0.9, 0.7, 0.8 * math.exp(-ov * ov / 0.5)], rtol=1e-6)
    # offset=1 (pixel convention): widths 11, intersection 6*11=66, union 121+121-66=176
    keep, kept = nms(boxes, scores, method="gaussian", sigma=0.5, offset=1.0)
    ov1 = 66 / 176
    np.testing.assert_allclose(kept[2], 0.8 * math.exp(-ov1 * ov1 / 0.5), rtol=1e-6)
    # final threshold removes a decayed box
    keep, _ = nms(boxes, scores, method="linear", iou_threshold=0.3, final_threshold=0.6, offset=0.0)
    assert keep.tolist() == [0, 2]


def _model_zoo_loop(rows: np.ndarray, sigma: float, nt: float, threshold: float, method: int) -> np.ndarray:
    """Plain re-statement of the model zoo's in-place soft-NMS loop (swap max to front, discard by swapping
    with the last row); returns the first N rows it leaves, i.e. what it keeps."""
    b = rows.astype(np.float64).copy()
    n = len(b)
    i = 0
    while i < n:
        m = i + int(np.argmax(b[i:n, 4]))
        b[[i, m]] = b[[m, i]]
        t = b[i].copy()
        pos = i + 1
        while pos < n:
            x1, y1, x2, y2, _ = b[pos]
            iw = min(t[2], x2) - max(t[0], x1) + 1
            if iw > 0:
                ih = min(t[3], y2) - max(t[1], y1) + 1
                if ih > 0:
                    ua = (t[2] - t[0] + 1) * (t[3] - t[1] + 1) + (x2 - x1 + 1) * (y2 - y1 + 1) - iw * ih
                    ov = iw * ih / ua
                    if method == 1:
                        w = 1 - ov if ov > nt else 1
                    elif method == 2:
                        w = math.exp(-(ov * ov) / sigma)
                    else:
                        w = 0 if ov > nt else 1
                    b[pos, 4] *= w
                    if b[pos, 4] < threshold:
                        b[pos] = b[n - 1]
                        n -= 1
                        pos -= 1
            pos += 1
        i += 1
    return b[:n]


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_matches_model_zoo_soft_nms_on_distinct_scores(method):
    rng = np.random.default_rng(11)
    boxes, scores = random_boxes(rng, 150, extent=120)
    ref = _model_zoo_loop(np.concatenate([boxes, scores[:, None]], 1), 0.5, 0.5, 0.001, NMS_METHODS[method])
    keep, kept = nms(boxes, scores, method=method, iou_threshold=0.5, sigma=0.5, final_threshold=0.001)
    assert len(keep) == len(ref)
    np.testing.assert_allclose(boxes[keep], ref[:, :4], atol=1e-5)
    np.testing.assert_allclose(kept, ref[:, 4], rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown NMS method"):
        nms(np.zeros((1, 4)), np.zeros(1), method="soft")
    with pytest.raises(ValueError, match="rows"):
        nms(np.zeros((2, 4)), np.zeros(1))


@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_box_voting_kernel_matches_its_twin_and_keeps_what_hard_nms_keeps(offset):
    from centerface_flow.postprocess.nms import hard_nms_vote, hard_nms_vote_numpy, have_kernel

    if not have_kernel():
        pytest.skip("Cython kernels not built")
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(0, 200))
        xy = rng.uniform(0, 100, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(1, 30, (n, 2))], 1).astype(np.float32)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        scores[: n // 4] = 0.5  # ties: the lowest index wins, as in nms()
        keep, voted = hard_nms_vote(boxes, scores, 0.3, offset)
        keep_np, voted_np = hard_nms_vote_numpy(boxes, scores, 0.3, offset)
        np.testing.assert_array_equal(keep, keep_np)
        np.testing.assert_array_equal(keep, nms(boxes, scores, "hard", 0.3, offset=offset)[0])
        np.testing.assert_allclose(voted, voted_np, atol=1e-4)
        assert voted.shape == (len(keep), 4)


def test_box_voting_kernel_refuses_bad_arrays():
    from centerface_flow.postprocess.nms import hard_nms_vote, have_kernel

    if not have_kernel():
        pytest.skip("Cython kernels not built")
    with pytest.raises(ValueError, match="rows"):
        hard_nms_vote(np.zeros((3, 4), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="finite"):
        hard_nms_vote(np.array([[0, 0, np.inf, 5]], np.float32), np.ones(1, np.float32))


def test_soft_kernel_leaves_hard_nms_to_the_grid_kernel():
    if not nms_mod.have_kernel():
        pytest.skip("Cython kernels not built")
    with pytest.raises(ValueError, match="hard_nms_vote"):
        nms_mod._soft_nms_kernel(np.zeros((1, 4), np.float32), np.ones(1, np.float32), 0, 0.3, 0.5, 0.001, 1.0)
