"""CenterFace training losses (the model zoo's ``src/losses.py`` recipe), as MindSpore Cells returning (loss, parts).

* heatmap: CenterNet's penalty-reduced focal loss (alpha 2, beta 4), normalised by the number of face centres;
  cells whose target is ``targets.IGNORE`` (-1, ignored faces) count neither as positives nor as negatives;
* size and offset: smooth-L1 (beta 1) at face centres (``ind``), multiplied by the small-face weight mask,
  normalised by the number of centres;
* landmarks: L1 at centres where the landmark is valid (``hps_mask``), normalised by the number of valid coordinates;
* total = 1 · heatmap + 0.1 · size + 1 · offset + 0.1 · landmarks (weights configurable).

Target layouts are those of :func:`centerface_flow.data.targets.encode`, batched: heatmap (N, 1, H, W), ind (N, H, W),
size / weight / offset (N, 2, H, W), hps_mask / landmarks (N, 10, H, W).
"""
from __future__ import annotations

from mindspore import nn, ops

__all__ = ["DEFAULT_WEIGHTS", "PART_NAMES", "CenterFaceLoss", "FocalLoss", "MaskedL1", "MaskedSmoothL1"]

#: (heatmap, size, offset, landmarks) loss weights of the model zoo.
DEFAULT_WEIGHTS = (1.0, 0.1, 1.0, 0.1)
#: Names of the loss parts, in the order of the ``parts`` tensor.
PART_NAMES = ("hm_loss", "wh_loss", "off_loss", "lm_loss")
# Predicted probabilities are clamped away from 0 and 1 before the logs, as CenterNet's ``_sigmoid`` does; the model
# zoo did not clamp, and a saturated sigmoid (exactly 0 or 1 in float32) then gives an infinite loss.
_EPS = 1e-4
# No tensor-vs-Python-scalar comparisons below: in MindSpore 2.10 PyNative under NumPy 2 the first such op
# (Equal/GreaterEqual/Minimum with a float) raises SystemError; floor/clamp forms give the same values.


class FocalLoss(nn.Cell):
    """Penalty-reduced pixel-wise focal loss. pred, gt: (N, 1, H, W); returns a scalar."""

    def construct(self, pred, gt):
        pred = ops.clamp(pred, _EPS, 1.0 - _EPS)
        ignore = ops.relu(-gt)  # 1 at ignored cells (gt = -1), else 0 (gt in [0, 1])
        gt = ops.relu(gt)
        pos = ops.floor(gt)  # gt in [0, 1]: 1 exactly at centres
        neg = (1.0 - pos) * (1.0 - ignore)
        neg_weight = ops.pow(1.0 - gt, 4)
        pos_loss = (ops.log(pred) * ops.pow(1.0 - pred, 2) * pos).sum()
        neg_loss = (ops.log(1.0 - pred) * ops.pow(pred, 2) * neg_weight * neg).sum()
        num_pos = pos.sum()
        num_pos = ops.maximum(num_pos, 1.0)
        return -(pos_loss + neg_loss) / num_pos


class MaskedSmoothL1(nn.Cell):
    """Smooth-L1 at centres, weighted. output, target, weight: (N, C, H, W); ind: (N, H, W)."""

    def construct(self, output, target, ind, weight):
        mask = ops.expand_dims(ind, 1)
        diff = ops.abs(output * mask - target * mask)
        small = ops.clamp(diff, 0.0, 1.0)
        loss = 0.5 * small * small + (diff - small)  # 0.5 d^2 below 1, d - 0.5 above
        return (loss * weight).sum() / (ind.sum() + 1e-4)


class MaskedL1(nn.Cell):
    """L1 at valid landmark coordinates. output, target, cmask: (N, 10, H, W); ind: (N, H, W)."""

    def construct(self, output, target, ind, cmask):
        mask = ops.expand_dims(ind, 1) * cmask
        return ops.abs(output * mask - target * mask).sum() / (cmask.sum() + 1e-4)


class CenterFaceLoss(nn.Cell):
    """The weighted sum of the four terms.

    ``construct(outputs..., heatmap, ind, size, weight, offset, hps_mask, landmarks) -> (loss, parts (4,))`` where
    ``outputs`` are the network's (heatmap, size, offset, landmarks) and the targets follow ``TARGET_KEYS``.
    """

    def __init__(self, weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.focal = FocalLoss()
        self.smooth_l1 = MaskedSmoothL1()
        self.l1 = MaskedL1()

    def construct(self, out_hm, out_wh, out_off, out_lm, heatmap, ind, size, weight, offset, hps_mask, landmarks):
        hm_loss = self.focal(out_hm, heatmap)
        wh_loss = self.smooth_l1(out_wh, size, ind, weight)
        off_loss = self.smooth_l1(out_off, offset, ind, weight)
        lm_loss = self.l1(out_lm, landmarks, ind, hps_mask)
        w_hm, w_wh, w_off, w_lm = self.weights
        loss = w_hm * hm_loss + w_wh * wh_loss + w_off * off_loss + w_lm * lm_loss
        return loss, ops.stack([hm_loss, wh_loss, off_loss, lm_loss])
