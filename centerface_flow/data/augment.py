"""Training augmentation, as pure functions ``f(image, boxes, landmarks, rng) -> (image, boxes, landmarks)``.

The recipe is the model zoo's (``multi_pose.preprocess_train`` + EXTD's ``anchor_crop_image_sampling``):

1. :func:`data_anchor_sampling`: pick a random face, rescale the whole image so that face's side moves toward a
   randomly chosen smaller anchor size (PyramidBox's data-anchor-sampling).
2. :func:`random_crop_params` + :func:`random_flip` + :func:`affine_crop`: CenterNet's random square crop (centre
   drawn inside a border, side 0.6-0.95 × the longer image side at 512 px) warped to the network input, with a
   horizontal flip (probability 0.5) that swaps the left/right landmark pairs (eyes 0↔1, mouth corners 3↔4).
3. :func:`color_jitter`: brightness, contrast, saturation (±0.4, random order) and PCA lighting (σ = 0.1).
4. :func:`normalize`: ``(image / 255 - mean) / std`` in BGR order, HWC → CHW.

Images are BGR uint8 as OpenCV reads them; boxes are (N, 4) float32 xyxy and landmarks (N, 5, 3) float32 ``x y v``
(``v > 0`` labelled) in the current image's pixels. Every random draw comes from the ``rng`` argument
(``numpy.random.Generator``), so a sample is a pure function of its generator's seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

__all__ = [
    "ANCHORS",
    "FLIP_PAIRS",
    "MEAN_BGR",
    "STD_BGR",
    "AugmentConfig",
    "affine_crop",
    "color_jitter",
    "crop_transform",
    "data_anchor_sampling",
    "hflip",
    "normalize",
    "random_crop_params",
    "random_flip",
    "train_transform",
]

#: Anchor sides (pixels) of data-anchor-sampling (EXTD / PyramidBox).
ANCHORS = (16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 128, 256, 512)
#: Landmark pairs swapped by a horizontal flip: (left eye, right eye), (left mouth, right mouth).
FLIP_PAIRS = ((0, 1), (3, 4))
#: CenterNet's ImageNet statistics in BGR channel order (the model zoo's ``bgr_meanstd`` input format).
MEAN_BGR = np.array([0.40789654, 0.44719302, 0.47026115], np.float32)
STD_BGR = np.array([0.28863828, 0.27408164, 0.27809835], np.float32)
#: PCA lighting eigen-decomposition used by CenterNet (applied to BGR images there too).
EIG_VAL = np.array([0.2141788, 0.01817699, 0.00341571], np.float32)
EIG_VEC = np.array([[-0.58752847, -0.69563484, 0.41340352],
                    [-0.5832747, 0.00994535, -0.81221408],
                    [-0.56089297, 0.71832671, 0.41158938]], np.float32)
_INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)
_MAX_PIXELS = 12000 * 12000


@dataclass(frozen=True)
class AugmentConfig:
    """Switches of :func:`train_transform` (defaults: the model zoo at 512 px)."""

    input_size: int = 512
    anchor_sampling: bool = True
    rand_crop: bool = True
    crop_scales: tuple[float, float] = (0.6, 1.0)  # model zoo: arange(0.6, 1.0, 0.05) at 512; authors 0.8-1.3 at 800
    flip: float = 0.5
    color: bool = True


def data_anchor_sampling(image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rescale the image so a random face's side moves toward a random anchor no larger than its nearest anchor."""
    if len(boxes) == 0:
        return image, boxes, landmarks
    height, width = image.shape[:2]
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    side = float(np.sqrt(area[rng.integers(len(area))]))
    nearest = int(np.argmin([abs(a - side) for a in ANCHORS]))
    target = ANCHORS[rng.integers(min(nearest + 1, 11))]
    ratio = target / side * 2 ** rng.uniform(-1, 1)
    if height * ratio * width * ratio > _MAX_PIXELS:
        ratio = (_MAX_PIXELS / (height * width)) ** 0.5
    interp = _INTERPOLATIONS[rng.integers(len(_INTERPOLATIONS))]
    image = cv2.resize(image, None, fx=ratio, fy=ratio, interpolation=interp)
    landmarks = landmarks.copy()
    landmarks[..., :2] *= ratio
    return image, (boxes * ratio).astype(np.float32), landmarks


def hflip(image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror horizontally (model zoo pixel-index convention ``x' = width - 1 - x``) and swap landmark pairs."""
    width = image.shape[1]
    image = np.ascontiguousarray(image[:, ::-1])
    boxes = boxes.copy()
    boxes[:, [0, 2]] = width - 1 - boxes[:, [2, 0]]
    landmarks = landmarks.copy()
    labelled = landmarks[..., 2] > 0
    landmarks[..., 0] = np.where(labelled, width - 1 - landmarks[..., 0], landmarks[..., 0])
    for a, b in FLIP_PAIRS:
        landmarks[:, [a, b]] = landmarks[:, [b, a]]
    return image, boxes, landmarks


def random_flip(image, boxes, landmarks, rng: np.random.Generator, p: float = 0.5):
    """:func:`hflip` with probability ``p``."""
    if rng.random() < p:
        return hflip(image, boxes, landmarks)
    return image, boxes, landmarks


def _border(border: float, size: int) -> float:
    """CenterNet's ``get_border``: halve the border until the image is wider than two borders."""
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


def random_crop_params(shape: tuple[int, ...], rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, float]:
    """Centre (x, y) and side of the square crop for an image of ``shape`` (H, W, ...)."""
    height, width = shape[:2]
    centre = np.array([width / 2.0, height / 2.0], np.float32)
    side = float(max(height, width))
    if cfg.rand_crop:
        lo, hi = cfg.crop_scales
        scales = np.arange(lo, hi, 0.05)
        side *= float(scales[rng.integers(len(scales))])
        border = side * (0.1, 0.2, 0.25)[rng.integers(3)]
        wb, hb = int(_border(border, width)), int(_border(border, height))
        centre[0] = rng.integers(wb, max(wb + 1, width - wb))
        centre[1] = rng.integers(hb, max(hb + 1, height - hb))
    return centre, side


def crop_transform(centre: np.ndarray, side: float, out_size: int) -> np.ndarray:
    """(2, 3) affine mapping the square of ``side`` around ``centre`` onto ``out_size × out_size`` (no rotation)."""
    k = out_size / side
    return np.array([[k, 0, out_size / 2 - k * centre[0]], [0, k, out_size / 2 - k * centre[1]]], np.float64)


def affine_crop(image, boxes, landmarks, matrix: np.ndarray, out_size: int):
    """Warp the image with ``matrix`` (2, 3) to ``out_size`` square and map boxes and labelled landmarks."""
    warped = cv2.warpAffine(image, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR)
    scale, shift = np.diag(matrix[:, :2]).astype(np.float32), matrix[:, 2].astype(np.float32)
    boxes = boxes * np.tile(scale, 2) + np.tile(shift, 2)
    landmarks = landmarks.copy()
    labelled = landmarks[..., 2:] > 0
    landmarks[..., :2] = np.where(labelled, landmarks[..., :2] * scale + shift, landmarks[..., :2])
    return warped, boxes.astype(np.float32), landmarks


def color_jitter(image: np.ndarray, rng: np.random.Generator, var: float = 0.4, light_std: float = 0.1) -> np.ndarray:
    """CenterNet colour augmentation of a float32 image in [0, 1] (HWC, BGR), returned as a new array.

    Fix of a model zoo slip: there the jitter generator was ``RandomState(123)`` created anew for every sample, so
    all images got the *same* brightness/contrast/saturation/lighting factors; here they come from the sample's rng.
    """
    image = image.copy()
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gray_mean = float(gray.mean())
    for op in rng.permutation(3):
        alpha = np.float32(1.0 + rng.uniform(-var, var))
        if op == 0:  # brightness
            image *= alpha
        elif op == 1:  # contrast: blend with the mean grey level
            image = image * alpha + gray_mean * (1 - alpha)
        else:  # saturation: blend with the grey image
            image = image * alpha + gray[:, :, None] * (1 - alpha)
    image += EIG_VEC @ (EIG_VAL * rng.normal(scale=light_std, size=3).astype(np.float32))
    return image.astype(np.float32)


def normalize(image: np.ndarray, mean: np.ndarray = MEAN_BGR, std: np.ndarray = STD_BGR) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] → (3, H, W) float32 ``(image - mean) / std``."""
    return np.ascontiguousarray(((image - mean) / std).transpose(2, 0, 1), dtype=np.float32)


def train_transform(image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                    cfg: AugmentConfig = AugmentConfig(), to_input: Callable[[np.ndarray], np.ndarray] = normalize):
    """The whole model-zoo augmentation for one sample.

    image: (H, W, 3) uint8 BGR; boxes: (N, 4) xyxy; landmarks: (N, 5, 3) ``x y v`` (image pixels).
    ``to_input`` turns the jittered (S, S, 3) BGR [0, 1] image into the network input (default :func:`normalize`).
    Returns ``(chw, boxes, landmarks, source_area)``: (3, S, S) float32 network input, boxes and landmarks
    in input pixels (not clipped), and (N,) box areas after anchor sampling (used to mask landmarks of tiny faces).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    landmarks = np.asarray(landmarks, np.float32).reshape(-1, 5, 3)
    if cfg.anchor_sampling:
        image, boxes, landmarks = data_anchor_sampling(image, boxes, landmarks, rng)
    source_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centre, side = random_crop_params(image.shape, rng, cfg)
    if rng.random() < cfg.flip:
        image, boxes, landmarks = hflip(image, boxes, landmarks)
        centre[0] = image.shape[1] - centre[0] - 1
    matrix = crop_transform(centre, side, cfg.input_size)
    image, boxes, landmarks = affine_crop(image, boxes, landmarks, matrix, cfg.input_size)
    image = image.astype(np.float32) / 255.0
    if cfg.color:
        image = color_jitter(image, rng)
    return to_input(image), boxes, landmarks, source_area
