"""The embedded demo data set: a small WIDER FACE look-alike built from real photos that ship inside scikit-image.

Faces come from two real sources bundled with scikit-image: the astronaut portrait (Eileen Collins, NASA, public
domain) and the LFW subset (100 aligned 25×25 face crops). They are pasted at known positions and sizes onto the
real photos scikit-image ships as backgrounds (coffee, cat, rocket, Hubble field, brick, grass, gravel, ...), so
every box is exact. Landmarks are exact up to the hand-measured landmark positions on the two sources
(:data:`ASTRONAUT_FACE`, :data:`LFW_FACE`). Train and val share no face crop and no background photo
(:data:`SPLITS`): the astronaut and LFW faces 0-59 on six backgrounds train, LFW faces 60-99 on five others
validate.

The domain (:data:`DEMO_DOMAINS`, ``DemoSpec.domain``) is what the camera sees, applied to both splits. The default,
``rotated`` (a camera on its side: every image a quarter turn either way), is there so that training pays off: the
released model, trained on upright WIDER faces, finds few of these faces (AP 0.19 / 0.19 / 0.18 easy / medium / hard
on the default val split), and the shipped 3-epoch fine-tune reaches 1.00 / 0.99 / 0.95. On ``upright`` photos the
released model already scores 0.97-1.00; ``infrared`` costs it little and ``blur`` (0.93 / 0.82 / 0.75) leaves a
smaller gain (docs/training.md, "The demo's domain", has the measurements). With 24 training images instead of 96
the fine-tune does not beat the released model on large rotated faces.

Everything is written in the formats of the real data set, so the rest of the workflow cannot tell the difference:

- ``WIDER_train/images/<event>/<name>.jpg`` and ``WIDER_val/images/<event>/<name>.jpg``;
- ``train/label.txt`` in the RetinaFace layout (``# event/name.jpg``, then per face ``x y w h`` + 5 × ``x y 0.0`` +
  a blur score) and ``wider_face_split/wider_face_{train,val}_bbx_gt.txt``;
- ``ground_truth/wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat`` with the official MATLAB structure
  (``event_list``, ``file_list``, ``face_bbx_list`` as int32 ``x y w h``, ``gt_list`` of 1-based indices).
  The settings are made by face height, as WIDER's are by detection difficulty: easy ≥ 40 px, medium ≥ 24 px,
  hard = every face.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.io import atomic_write, atomic_write_text

__all__ = ["ASTRONAUT_FACE", "DEMO_DOMAINS", "LFW_FACE", "SPLITS", "DemoSpec", "apply_domain", "build_demo",
           "compose_image", "infrared", "rotate90"]

log = logging.getLogger(__name__)

EVENTS = ("0--Demo_Portrait", "1--Demo_Crowd")
SETTING_MIN_HEIGHT = {"easy": 40, "medium": 24, "hard": 0}
#: What the camera sees, applied to every image of both splits (see the module docstring for why ``rotated``).
DEMO_DOMAINS = ("rotated", "upright", "infrared", "blur")


@dataclass(frozen=True)
class SplitSources:
    """The background photos (``skimage.data`` names) and face sources one split draws from."""

    backgrounds: tuple[str, ...]
    lfw_faces: range
    astronaut: bool


#: Train and val share no photo: separate LFW crops (the subset's faces are distinct photos), and backgrounds.
#: No background shows a face (``camera`` has the cameraman's, ``coins`` has portrait heads): an unlabelled face
#: would be a false positive for every model.
SPLITS = {
    "train": SplitSources(("coffee", "chelsea", "rocket", "brick", "grass", "moon"), range(60), True),
    "val": SplitSources(("hubble_deep_field", "gravel", "retina", "immunohistochemistry", "clock"), range(60, 100),
                        False),
}


@dataclass(frozen=True)
class FaceSource:
    """A face patch cut from a source image, with its face box and 5 landmarks in patch pixels.

    box: (x0, y0, x1, y1) within the patch; landmarks: (5, 2) left eye, right eye, nose, left and right mouth corner
    (image left/right, as in WIDER/RetinaFace labels).
    """

    crop: tuple[int, int, int, int]
    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]


#: Measured by hand on ``skimage.data.astronaut()`` (crop x0, y0, x1, y1 in the 512×512 image).
ASTRONAUT_FACE = FaceSource(
    crop=(168, 56, 276, 192),
    box=(12.0, 14.0, 94.0, 122.0),
    landmarks=((38.7, 45.7), (77.0, 46.7), (58.0, 69.0), (37.0, 85.7), (72.0, 86.7)),
)
#: Measured on the mean of the 100 LFW-subset faces (25×25, aligned, the face fills the crop).
LFW_FACE = FaceSource(
    crop=(0, 0, 25, 25),
    box=(1.0, 0.0, 24.0, 25.0),
    landmarks=((7.5, 8.5), (17.0, 8.5), (12.5, 13.0), (8.5, 17.5), (16.5, 17.5)),
)
#: Landmark pairs that swap under a horizontal flip (eyes, mouth corners).
FLIP_PAIRS = ((0, 1), (3, 4))


@dataclass(frozen=True)
class DemoSpec:
    """The demo data set (config.yaml section ``demo``): domain, image counts per split, image size (w, h of
    landscape images; portrait swaps), faces per image, face heights in pixels, seed."""

    domain: str = "rotated"
    train_images: int = 96
    val_images: int = 24
    image_size: tuple[int, int] = (320, 256)
    faces_per_image: tuple[int, int] = (1, 5)
    face_heights: tuple[int, int] = (18, 110)
    seed: int = 2016

    def __post_init__(self) -> None:
        for key in ("image_size", "faces_per_image", "face_heights"):  # YAML gives lists
            object.__setattr__(self, key, tuple(int(v) for v in getattr(self, key)))
        if self.domain not in DEMO_DOMAINS:
            raise UserError(f"domain: must be one of {', '.join(DEMO_DOMAINS)}, got {self.domain!r}")
        for key in ("train_images", "val_images"):
            if getattr(self, key) < 1:
                raise UserError(f"{key}: must be at least 1, got {getattr(self, key)!r}")
        for key in ("faces_per_image", "face_heights"):
            low, high = getattr(self, key)
            if not 0 < low <= high:
                raise UserError(f"{key}: must be [low, high] with 0 < low <= high, got {list(getattr(self, key))}")
        if min(self.image_size) < 64:
            raise UserError(f"image_size: both sides must be at least 64 px, got {list(self.image_size)}")


def _background(name: str, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random crop of a scikit-image photo, resized to (height, width, 3) uint8 RGB."""
    import cv2
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    h, w = image.shape[:2]
    scale = max(width / w, height / h) * rng.uniform(1.0, 1.6)
    image = cv2.resize(image, (max(width, round(w * scale)), max(height, round(h * scale))),
                       interpolation=cv2.INTER_AREA)
    y0 = rng.integers(0, image.shape[0] - height + 1)
    x0 = rng.integers(0, image.shape[1] - width + 1)
    return np.ascontiguousarray(image[y0:y0 + height, x0:x0 + width])


def _face_patches(sources: SplitSources) -> list[tuple[np.ndarray, FaceSource]]:
    """The split's face patches (RGB uint8) with their annotations; the astronaut, if any, first."""
    from skimage import data

    patches = []
    if sources.astronaut:
        x0, y0, x1, y1 = ASTRONAUT_FACE.crop
        patches.append((data.astronaut()[y0:y1, x0:x1], ASTRONAUT_FACE))
    lfw = data.lfw_subset()  # the first 100 are faces, the rest are not
    for index in sources.lfw_faces:
        gray = np.clip(lfw[index] * 255.0, 0, 255).astype(np.uint8)
        patches.append((np.repeat(gray[:, :, None], 3, axis=2), LFW_FACE))
    return patches


def compose_image(rng: np.random.Generator, spec: DemoSpec, patches, portrait: bool,
                  backgrounds: tuple[str, ...] = SPLITS["train"].backgrounds, astronaut: bool = True):
    """Paste 1..n faces onto a background without overlap; with ``astronaut``, ``patches[0]`` is the astronaut.

    Returns (image (H, W, 3) uint8 RGB, boxes (N, 4) float32 x y w h, landmarks (N, 5, 2) float32).
    """
    import cv2

    width, height = spec.image_size[::-1] if portrait else spec.image_size
    image = _background(backgrounds[rng.integers(len(backgrounds))], rng, width, height)
    occupied = np.zeros((height, width), bool)
    boxes, marks = [], []
    lfw_start = 1 if astronaut else 0
    for _ in range(rng.integers(spec.faces_per_image[0], spec.faces_per_image[1] + 1)):
        # the astronaut is the one colour, high-resolution face: give it 30% of the draws
        pick_astronaut = rng.random() < 0.3 and astronaut
        patch, src = patches[0] if pick_astronaut else patches[lfw_start + rng.integers(len(patches) - lfw_start)]
        box_h = src.box[3] - src.box[1]
        face_h = rng.uniform(*spec.face_heights)
        scale = face_h / box_h
        ph, pw = max(2, round(patch.shape[0] * scale)), max(2, round(patch.shape[1] * scale))
        if ph >= height or pw >= width:
            continue
        for _attempt in range(20):
            px, py = int(rng.integers(0, width - pw + 1)), int(rng.integers(0, height - ph + 1))
            if not occupied[py:py + ph, px:px + pw].any():
                break
        else:
            continue
        sx, sy = pw / patch.shape[1], ph / patch.shape[0]
        resized = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
        lms = np.array(src.landmarks, np.float64) * (sx, sy)
        bx0, by0, bx1, by1 = np.array(src.box) * (sx, sy, sx, sy)
        if rng.random() < 0.5:  # mirror the face; image-left/right landmark labels swap
            resized = resized[:, ::-1]
            lms[:, 0] = pw - lms[:, 0]
            for a, b in FLIP_PAIRS:
                lms[[a, b]] = lms[[b, a]]
            bx0, bx1 = pw - bx1, pw - bx0
        tint = rng.uniform(0.8, 1.2, size=3)
        image[py:py + ph, px:px + pw] = np.clip(resized * tint, 0, 255).astype(np.uint8)
        occupied[py:py + ph, px:px + pw] = True
        boxes.append((px + bx0, py + by0, bx1 - bx0, by1 - by0))
        marks.append(lms + (px, py))
    return (image, np.array(boxes, np.float32).reshape(-1, 4), np.array(marks, np.float32).reshape(-1, 5, 2))


def rotate90(image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
             k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate the image by ``k`` × 90° counter-clockwise (``np.rot90``), its faces with it.

    boxes: (N, 4) float32 x y w h and landmarks (N, 5, 2) float32, in continuous pixel coordinates (the image spans
    [0, W] × [0, H]); one counter-clockwise quarter turn maps (x, y) to (y, W - x). Landmarks keep their labels:
    a face's left eye stays its left eye.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    corners = np.stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)  # (N, 2, 2)
    landmarks = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
    for _ in range(k % 4):
        width = image.shape[1]
        image = np.rot90(image)
        corners = np.stack([corners[..., 1], width - corners[..., 0]], axis=-1)
        landmarks = np.stack([landmarks[..., 1], width - landmarks[..., 0]], axis=-1)
    low, high = corners.min(axis=1), corners.max(axis=1)
    return np.ascontiguousarray(image), np.concatenate([low, high - low], axis=1).astype(np.float32), landmarks


def infrared(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A near-infrared surveillance look: grey, the contrast squeezed into a narrow band, sensor noise."""
    gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    level, gain = rng.uniform(90, 150), rng.uniform(0.2, 0.3)
    gray = level + (gray - gray.mean()) * gain + rng.normal(0.0, 3.0, gray.shape)
    return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def apply_domain(domain: str, image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One composed image (RGB uint8, boxes x y w h, landmarks (N, 5, 2)) as the camera of ``domain`` sees it.

    rotated: the camera on its side, a quarter turn either way; upright: unchanged; infrared: :func:`infrared`;
    blur: a heavy Gaussian defocus (σ 2.5-3.5 px), which small faces do not survive.
    """
    import cv2

    if domain == "rotated":
        return rotate90(image, boxes, landmarks, 1 if rng.random() < 0.5 else 3)
    if domain == "infrared":
        return infrared(image, rng), boxes, landmarks
    if domain == "blur":
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(2.5, 3.5)), boxes, landmarks
    if domain == "upright":
        return image, boxes, landmarks
    raise UserError(f"demo domain: must be one of {', '.join(DEMO_DOMAINS)}, got {domain!r}")


def _label_block(rel: str, boxes: np.ndarray, marks: np.ndarray) -> str:
    lines = [f"# {rel}"]
    for (x, y, w, h), lms in zip(boxes, marks):
        pts = " ".join(f"{lx:.3f} {ly:.3f} 0.0" for lx, ly in lms)
        lines.append(f"{x:.2f} {y:.2f} {w:.2f} {h:.2f} {pts} 1.0")
    return "\n".join(lines) + "\n"


def _bbx_gt_block(rel: str, int_boxes: np.ndarray) -> str:
    lines = [rel, str(len(int_boxes))]
    lines += [f"{x} {y} {w} {h} 0 0 0 0 0 0" for x, y, w, h in int_boxes]
    if not len(int_boxes):
        lines.append("0 0 0 0 0 0 0 0 0 0")  # the official file's convention for images without faces
    return "\n".join(lines) + "\n"


def _write_jpeg(path: Path, image_rgb: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", image_rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    with atomic_write(path, "wb") as handle:
        handle.write(buf.tobytes())


def _write_mats(gt_dir: Path, events: list[str], files: dict[str, list[str]], boxes: dict[str, list[np.ndarray]]):
    """Write the four official-style .mat files for the val split."""
    from scipy.io import savemat

    n = len(events)
    event_list = np.empty((n, 1), object)
    file_list = np.empty((n, 1), object)
    bbx_list = np.empty((n, 1), object)
    for i, ev in enumerate(events):
        event_list[i, 0] = np.array([ev])
        fl = np.empty((len(files[ev]), 1), object)
        bl = np.empty((len(files[ev]), 1), object)
        for j, (name, b) in enumerate(zip(files[ev], boxes[ev])):
            fl[j, 0] = np.array([name])
            bl[j, 0] = b.astype(np.int32).reshape(-1, 4)
        file_list[i, 0], bbx_list[i, 0] = fl, bl
    base = {"event_list": event_list, "file_list": file_list, "face_bbx_list": bbx_list}
    with atomic_write(gt_dir / "wider_face_val.mat", "wb") as handle:
        savemat(handle, base)
    for setting, min_h in SETTING_MIN_HEIGHT.items():
        gt_list = np.empty((n, 1), object)
        for i, ev in enumerate(events):
            gl = np.empty((len(files[ev]), 1), object)
            for j, b in enumerate(boxes[ev]):
                keep = np.flatnonzero(b.reshape(-1, 4)[:, 3] >= min_h) + 1
                gl[j, 0] = keep.astype(np.uint16).reshape(-1, 1)
            gt_list[i, 0] = gl
        with atomic_write(gt_dir / f"wider_{setting}_val.mat", "wb") as handle:
            savemat(handle, {**base, "gt_list": gt_list})


def build_demo(out_dir: str | Path, spec: DemoSpec = DemoSpec()) -> dict[str, Path]:
    """Build the demo data set under ``out_dir``; return the paths the workflow's ``dataset:`` keys point to.

    Deterministic for a given ``spec`` (same seed → same bytes, apart from JPEG encoder versions). The scenes do not
    depend on the domain (it draws from its own generator), so two domains show the same faces at the same places.
    """
    out_dir = Path(out_dir)
    written = {}
    for index, (split, count) in enumerate((("train", spec.train_images), ("val", spec.val_images))):
        # one generator per split (the val images do not depend on train_images) and one for the domain
        rng = np.random.default_rng([spec.seed, index])
        domain_rng = np.random.default_rng([spec.seed, index, 1])
        sources = SPLITS[split]
        patches = _face_patches(sources)
        labels, bbx_gt = [], []
        files: dict[str, list[str]] = {ev: [] for ev in EVENTS}
        int_boxes: dict[str, list[np.ndarray]] = {ev: [] for ev in EVENTS}
        for k in range(count):
            event = EVENTS[k % len(EVENTS)]
            name = f"{event.split('--')[0]}_{event.split('--')[1]}_{split}_{k:04d}"
            scene = compose_image(rng, spec, patches, bool(k % 3 == 2), sources.backgrounds, sources.astronaut)
            image, boxes, marks = apply_domain(spec.domain, *scene, domain_rng)
            rel = f"{event}/{name}.jpg"
            _write_jpeg(out_dir / f"WIDER_{split}" / "images" / rel, image)
            ib = np.round(boxes).astype(np.int32)
            labels.append(_label_block(rel, boxes, marks))
            bbx_gt.append(_bbx_gt_block(rel, ib))
            files[event].append(name)
            int_boxes[event].append(ib)
        atomic_write_text(out_dir / split / "label.txt", "".join(labels))
        atomic_write_text(out_dir / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt", "".join(bbx_gt))
        if split == "val":
            _write_mats(out_dir / "ground_truth", list(EVENTS), files, int_boxes)
        written[f"{split}_images"] = out_dir / f"WIDER_{split}" / "images"
        written[f"{split}_labels"] = out_dir / split / "label.txt"
        log.info("demo %s split (%s): %d images in %s", split, spec.domain, count, written[f"{split}_images"])
    written["val_ground_truth"] = out_dir / "ground_truth"
    return written
