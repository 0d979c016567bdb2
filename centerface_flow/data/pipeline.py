"""The training data pipeline: COCO-keypoints samples → augmented images + dense targets, in batches.

Determinism: epoch ``e`` visits the samples in the order ``default_rng([seed, e]).permutation(n)``, and sample ``i``
of that epoch is augmented with ``default_rng([seed, e, i])``. A batch is therefore a pure function of (seed, epoch,
position), whatever the number of loader workers, and a run resumed at epoch ``e`` sees exactly the data an
uninterrupted run would. With ``world > 1`` the (padded) order is dealt out round-robin, rank ``r`` taking
positions ``r, r + world, ...`` (the model zoo's ``DistributedSampler`` split).

Loading uses ``mindspore.dataset.GeneratorDataset`` with ``num_workers`` Python processes; ``num_workers=0`` loads
in the calling process (tests, debugging).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from centerface_flow.data.augment import AugmentConfig, normalize, train_transform
from centerface_flow.data.targets import STRIDE, TARGET_KEYS, encode
from centerface_flow.errors import UserError

__all__ = ["COLUMNS", "InputSpec", "TrainSource", "epoch_order", "iterate_batches"]

log = logging.getLogger(__name__)

#: Columns of a batch: the network input, then the targets.
COLUMNS = ("image", *TARGET_KEYS)


@dataclass(frozen=True)
class InputSpec:
    """How the network wants its input and landmark targets (from the init weights' ``ModelMeta``)."""

    input_format: str = "bgr_meanstd"  # "bgr_meanstd" | "rgb255"
    mean: tuple[float, float, float] = (0.40789654, 0.44719302, 0.47026115)
    std: tuple[float, float, float] = (0.28863828, 0.27408164, 0.27809835)
    landmark_origin: str = "cell"


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """Sample indices rank ``rank`` of ``world`` visits in ``epoch`` (intp)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    per_rank = -(-n // world)
    order = np.concatenate([order, order[: per_rank * world - n]])
    return order[rank::world].astype(np.intp)


class TrainSource:
    """Random-access source: item ``i`` is position ``i`` of the current epoch's order for this rank.

    samples: ``load_coco`` output ``[(file_name, boxes xywh (N, 4), keypoints (N, 5, 3))]``.
    min_face: faces with a side below this many input pixels (after augmentation) are ignored, and
    small_face_weights switches the model zoo's small-face weight mask (see ``targets.encode``).
    """

    def __init__(self, samples, image_dir: str | os.PathLike, augment: AugmentConfig, spec: InputSpec,
                 seed: int, max_objs: int = 64, rank: int = 0, world: int = 1, min_face: float = 0.0,
                 small_face_weights: bool = True) -> None:
        if not samples:
            raise UserError("the training annotations contain no image with faces")
        self.samples = samples
        self.image_dir = Path(image_dir)
        self.augment = augment
        self.spec = spec
        self.seed = int(seed)
        self.max_objs = int(max_objs)
        self.min_face = float(min_face)
        self.small_face_weights = bool(small_face_weights)
        self.rank, self.world = int(rank), int(world)
        self.epoch = 1
        self.order = epoch_order(len(samples), self.seed, 1, self.rank, self.world)

    def to_input(self, image: np.ndarray) -> np.ndarray:
        """(S, S, 3) BGR [0, 1] → (3, S, S) float32 in the format the weights expect."""
        if self.spec.input_format == "rgb255":
            return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1) * 255.0, dtype=np.float32)
        return normalize(image, np.asarray(self.spec.mean, np.float32), np.asarray(self.spec.std, np.float32))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.order = epoch_order(len(self.samples), self.seed, self.epoch, self.rank, self.world)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> tuple[np.ndarray, ...]:
        index = int(self.order[int(position)])
        return self.load(index, np.random.default_rng([self.seed, self.epoch, index]))

    def load(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Sample ``index`` augmented with ``rng`` → arrays in :data:`COLUMNS` order."""
        file_name, boxes_xywh, kps = self.samples[index]
        path = self.image_dir / file_name
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"{path}: cannot read training image (listed in the annotations)")
        if len(boxes_xywh) > self.max_objs:
            # Fix of a model zoo slip: it kept max_objs faces with np.random.choice(anns, max_objs), i.e. *with*
            # replacement (duplicates, and more faces lost than necessary); we sample without replacement.
            keep = np.sort(rng.choice(len(boxes_xywh), self.max_objs, replace=False))
            boxes_xywh, kps = boxes_xywh[keep], kps[keep]
        boxes = boxes_xywh.copy()
        boxes[:, 2:] += boxes[:, :2]
        chw, boxes, lms, area = train_transform(image, boxes, kps, rng, self.augment, self.to_input)
        lms = lms.copy()
        lms[..., :2] /= STRIDE
        out = self.augment.input_size // STRIDE
        targets = encode(boxes / STRIDE, lms, (out, out), self.max_objs, area, self.spec.landmark_origin,
                         self.min_face / STRIDE, self.small_face_weights)
        return (np.ascontiguousarray(chw, dtype=np.float32), *(targets[k] for k in TARGET_KEYS))


def iterate_batches(source: TrainSource, batch_size: int, num_workers: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
    """Full batches (the last partial one is dropped) of the source's current epoch, as numpy arrays."""
    n_batches = len(source) // batch_size
    if n_batches == 0:
        raise UserError(f"batch_size {batch_size} is larger than the {len(source)} images this device gets per epoch")
    if num_workers <= 0:
        for b in range(n_batches):
            items = [source[i] for i in range(b * batch_size, (b + 1) * batch_size)]
            yield tuple(np.stack(col) for col in zip(*items))
        return
    import mindspore.dataset as ds

    dataset = ds.GeneratorDataset(source, list(COLUMNS), shuffle=False, num_parallel_workers=num_workers,
                                  python_multiprocessing=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    yield from dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)
