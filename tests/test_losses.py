"""CenterFace losses against a numpy reference of the model zoo's formulas, in graph and pynative mode."""
from __future__ import annotations

import numpy as np
import pytest

from centerface_flow import runtime
from centerface_flow.data.targets import encode


def np_focal(pred, gt):
    pred = np.clip(pred, 1e-4, 1 - 1e-4)
    pos = gt == 1
    neg = (gt >= 0) & ~pos  # gt == -1: ignored cell, neither positive nor negative
    neg_w = (1 - gt) ** 4
    pos_loss = (np.log(pred) * (1 - pred) ** 2)[pos].sum()
    neg_loss = (np.log(1 - pred) * pred**2 * neg_w)[neg].sum()
    return -(pos_loss + neg_loss) / max(pos.sum(), 1)


def np_smooth_l1(out, tgt, ind, weight):
    m = ind[:, None]
    d = np.abs(out * m - tgt * m)
    loss = np.where(d < 1, 0.5 * d * d, d - 0.5)
    return (loss * weight).sum() / (ind.sum() + 1e-4)


def np_l1(out, tgt, ind, cmask):
    m = ind[:, None] * cmask
    return np.abs(out * m - tgt * m).sum() / (cmask.sum() + 1e-4)


def batch(rng, n=2, hw=(16, 16)):
    ts = []
    for _ in range(n):
        boxes = np.array([[1, 1, 7, 9], [9, 3, 14, 12]], np.float32) + rng.uniform(-0.5, 0.5, (2, 4))
        lms = np.zeros((2, 5, 3), np.float32)
        lms[0, :, 0] = rng.uniform(boxes[0, 0], boxes[0, 2], 5)
        lms[0, :, 1] = rng.uniform(boxes[0, 1], boxes[0, 3], 5)
        lms[0, :, 2] = 2
        ts.append(encode(boxes, lms, hw))
    keys = ("heatmap", "ind", "size", "weight", "offset", "hps_mask", "landmarks")
    return [np.stack([t[k] for t in ts]) for k in keys]


def _mindspore(mode):
    """MindSpore in ``mode``. In PyNative, MindSpore 2.10 under NumPy 2 fails the *first* tensor-scalar op of a
    process with SystemError (its scalar conversion tries a NumPy-1 C API import once); absorb that here."""
    ms = runtime.mindspore(mode)
    if mode == "pynative":
        try:
            ms.Tensor(np.ones(1, np.float32)) - 1.0
        except SystemError:
            pass
    return ms


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_loss_matches_numpy_reference(mode):
    ms = _mindspore(mode)
    from centerface_flow.training.losses import CenterFaceLoss

    rng = np.random.default_rng(0)
    hm, ind, size, weight, offset, hps, lm = batch(rng)
    out_hm = rng.uniform(0, 1, hm.shape).astype(np.float32)
    out_hm[0, 0, 0, 0] = 1.0  # saturated sigmoid must not give inf
    out_wh = rng.normal(size=size.shape).astype(np.float32) * 2
    out_off = rng.normal(size=offset.shape).astype(np.float32)
    out_lm = rng.normal(size=lm.shape).astype(np.float32)
    loss_cell = CenterFaceLoss()
    tensors = [ms.Tensor(a) for a in (out_hm, out_wh, out_off, out_lm, hm, ind, size, weight, offset, hps, lm)]
    loss, parts = loss_cell(*tensors)
    ref = [np_focal(out_hm, hm), np_smooth_l1(out_wh, size, ind, weight), np_smooth_l1(out_off, offset, ind, weight),
           np_l1(out_lm, lm, ind, hps)]
    np.testing.assert_allclose(parts.asnumpy(), ref, rtol=1e-4)
    np.testing.assert_allclose(float(loss.asnumpy()), ref[0] + 0.1 * ref[1] + ref[2] + 0.1 * ref[3], rtol=1e-4)
    assert np.isfinite(parts.asnumpy()).all()


def test_perfect_prediction_has_zero_regression_loss():
    ms = _mindspore("pynative")
    from centerface_flow.training.losses import CenterFaceLoss

    hm, ind, size, weight, offset, hps, lm = batch(np.random.default_rng(1))
    _, parts = CenterFaceLoss()(*[ms.Tensor(a) for a in (hm, size, offset, lm, hm, ind, size, weight, offset,
                                                          hps, lm)])
    p = parts.asnumpy()
    assert p[1] == pytest.approx(0, abs=1e-6) and p[2] == pytest.approx(0, abs=1e-6) and p[3] == pytest.approx(0)
    assert p[0] < 0.5  # focal loss small (not 0: the gaussian skirt is penalised at gt<1 where pred=gt>0)


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_focal_loss_skips_ignored_cells(mode):
    ms = _mindspore(mode)
    from centerface_flow.training.losses import FocalLoss

    rng = np.random.default_rng(2)
    hm = batch(rng)[0]
    hm[0, 0, 12:16, 0:4] = -1.0  # an ignored face's region (targets.IGNORE)
    pred = rng.uniform(0, 1, hm.shape).astype(np.float32)
    got = float(FocalLoss()(ms.Tensor(pred), ms.Tensor(hm)).asnumpy())
    assert got == pytest.approx(np_focal(pred, hm), rel=1e-4)
    pred2 = pred.copy()
    pred2[0, 0, 12:16, 0:4] = 0.999  # confident "faces" in the ignored region cost nothing
    assert float(FocalLoss()(ms.Tensor(pred2), ms.Tensor(hm)).asnumpy()) == pytest.approx(got, rel=1e-6)
    hm[0, 0, 12:16, 0:4] = 0.0
    assert float(FocalLoss()(ms.Tensor(pred2), ms.Tensor(hm)).asnumpy()) > got + 1.0
