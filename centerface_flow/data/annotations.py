"""WIDER FACE training labels → the model zoo's COCO-keypoints ``train.json``.

Two input formats are read:

* RetinaFace-style ``label.txt``: a line ``# event/file.jpg`` starts an image, then one line per face
  ``x y w h`` optionally followed by 5 landmarks ``lx ly flag`` (flag ``0.0`` visible, ``1.0`` occluded, the
  triple ``-1 -1 -1`` when the face has no landmarks) and a trailing blur/confidence score.
* The official ``wider_face_split/wider_face_*_bbx_gt.txt``: file name, face count, then per face
  ``x y w h blur expression illumination invalid occlusion pose`` (boxes only). An image with no faces is listed
  with count ``0`` followed by one all-zero dummy line.

The output is the COCO-keypoints layout the model zoo's ``CenterfaceDataset`` (pycocotools) reads: ``images``
(``id``, ``file_name``, ``width``, ``height``), ``annotations`` (``id``, ``image_id``, ``category_id`` 1, ``bbox``
``[x, y, w, h]``, ``area``, ``iscrowd`` 0, ``num_keypoints``, 15 ``keypoints`` ``[x, y, v] * 5``) and one
``categories`` entry. Keypoint visibility follows COCO: ``v = 2`` labelled and visible, ``v = 1`` labelled but
occluded, ``v = 0`` with ``x = y = 0`` when absent; training treats ``v > 0`` as a landmark (as the model zoo does).
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError, parse_int
from centerface_flow.io import atomic_write_text

__all__ = [
    "LANDMARK_NAMES",
    "NUM_LANDMARKS",
    "FaceRecord",
    "ImageRecord",
    "labels_to_coco",
    "load_coco",
    "read_bbx_gt",
    "read_labels",
    "read_retinaface_labels",
    "to_coco",
    "write_coco",
]

log = logging.getLogger(__name__)

NUM_LANDMARKS = 5
#: Landmark order of WIDER FACE / RetinaFace labels (image left/right as annotated).
LANDMARK_NAMES = ["left_eye", "right_eye", "nose", "left_mouth", "right_mouth"]


@dataclass
class FaceRecord:
    """One face: ``box`` (4,) float32 ``x y w h``; ``keypoints`` (5, 3) float32 ``x y v`` (v=0: absent)."""

    box: np.ndarray
    keypoints: np.ndarray
    line: int = 0  # where the label file gives it (0: not from a file), for error messages


@dataclass
class ImageRecord:
    """One image of the training list: path relative to the image folder and its faces."""

    file_name: str
    faces: list[FaceRecord] = field(default_factory=list)
    source: str = ""  # label file and line of the image's entry, for error messages


def _floats(parts: list[str], path: Path, lineno: int) -> list[float]:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UserError(f"{path}:{lineno}: expected numbers, got {' '.join(parts)!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"{path}:{lineno}: NaN or infinite number in {' '.join(parts)!r}")
    return values


def _image_name(name: str, path: Path, lineno: int) -> str:
    """A label's image path must stay inside the image folder: relative, without ``..``."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
        raise UserError(f"{path}:{lineno}: image path {name!r} must be relative to the image folder, without '..'")
    return name


def _check_text(path: Path) -> None:
    """Labels must be UTF-8 text; name the line of the first byte that is not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the labels as UTF-8") \
            from None


def _keypoints_from_label(values: list[float]) -> np.ndarray:
    """RetinaFace's 15 landmark numbers → (5, 3) COCO ``x y v``."""
    kps = np.zeros((NUM_LANDMARKS, 3), np.float32)
    trip = np.asarray(values[: 3 * NUM_LANDMARKS], np.float32).reshape(NUM_LANDMARKS, 3)
    for j, (x, y, flag) in enumerate(trip):
        if x < 0 or y < 0 or flag < 0:
            continue  # -1 -1 -1: landmark absent
        kps[j] = (x, y, 1.0 if flag >= 1.0 else 2.0)
    return kps


def read_retinaface_labels(path: str | os.PathLike) -> tuple[list[ImageRecord], int]:
    """Read a RetinaFace-style ``label.txt``; return the images and how many boxes of non-positive size were dropped.

    Raises ``UserError`` naming file and line on malformed input.
    """
    path = Path(path)
    images: list[ImageRecord] = []
    dropped = 0
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                name = line[1:].strip()
                if not name:
                    raise UserError(f"{path}:{lineno}: '#' line without an image name")
                images.append(ImageRecord(_image_name(name, path, lineno), source=f"{path}:{lineno}"))
                continue
            if not images:
                raise UserError(f"{path}:{lineno}: face line before the first '# image' line")
            parts = line.split()
            if len(parts) not in (4, 5) and len(parts) < 4 + 3 * NUM_LANDMARKS:
                raise UserError(
                    f"{path}:{lineno}: expected 'x y w h' (+ 15 landmark numbers + score), got {len(parts)} fields"
                )
            values = _floats(parts, path, lineno)
            box = np.asarray(values[:4], np.float32)
            if box[2] <= 0 or box[3] <= 0:
                dropped += 1
                continue
            if len(values) >= 4 + 3 * NUM_LANDMARKS:
                kps = _keypoints_from_label(values[4:])
            else:
                kps = np.zeros((NUM_LANDMARKS, 3), np.float32)
            images[-1].faces.append(FaceRecord(box, kps, lineno))
    return images, dropped


def read_bbx_gt(path: str | os.PathLike, drop_invalid: bool = False) -> tuple[list[ImageRecord], int]:
    """Read an official ``wider_face_*_bbx_gt.txt`` (boxes only); return images and the count of dropped boxes.

    ``drop_invalid`` also drops faces flagged ``invalid`` (8th field); they count as dropped.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        lines = [(i, s.strip()) for i, s in enumerate(handle, 1)]
    lines = [(i, s) for i, s in lines if s]
    images: list[ImageRecord] = []
    dropped = 0
    pos = 0
    while pos < len(lines):
        lineno, name = lines[pos]
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            raise UserError(f"{path}:{lineno}: expected an image file name, got {name!r}")
        if pos + 1 >= len(lines):
            raise UserError(f"{path}:{lineno}: image {name!r} has no face-count line")
        count_no, count_text = lines[pos + 1]
        count = parse_int(count_text, f"{path}:{count_no}", "a face count", minimum=0)
        n_lines = max(count, 1)  # a count of 0 is followed by one dummy line
        if pos + 2 + n_lines > len(lines) and count > 0:
            raise UserError(f"{path}:{count_no}: {count} faces announced, file ends early")
        record = ImageRecord(_image_name(name, path, lineno), source=f"{path}:{lineno}")
        for k in range(count):
            face_no, face_text = lines[pos + 2 + k]
            parts = face_text.split()
            if len(parts) < 4:
                raise UserError(f"{path}:{face_no}: expected 'x y w h ...', got {face_text!r}")
            values = _floats(parts, path, face_no)
            box = np.asarray(values[:4], np.float32)
            invalid = len(values) >= 8 and values[7] > 0
            if box[2] <= 0 or box[3] <= 0 or (drop_invalid and invalid):
                dropped += 1
                continue
            record.faces.append(FaceRecord(box, np.zeros((NUM_LANDMARKS, 3), np.float32), face_no))
        images.append(record)
        if count == 0 and pos + 2 < len(lines) and _looks_like_dummy(lines[pos + 2][1]):
            pos += 3
        else:
            pos += 2 + count
    return images, dropped


def _looks_like_dummy(text: str) -> bool:
    parts = text.split()
    return len(parts) >= 4 and all(p.lstrip("-").replace(".", "", 1).isdigit() for p in parts)


def read_labels(path: str | os.PathLike, drop_invalid: bool = False) -> list[ImageRecord]:
    """Read either label format (detected from the first non-empty line) and log the dropped-box count."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: label file not found")
    _check_text(path)
    with open(path, encoding="utf-8") as handle:
        first = next((s.strip() for s in handle if s.strip()), "")
    if first.startswith("#"):
        images, dropped = read_retinaface_labels(path)
    else:
        images, dropped = read_bbx_gt(path, drop_invalid=drop_invalid)
    first_entry: dict[str, str] = {}
    for record in images:
        if record.file_name in first_entry:
            raise UserError(f"{record.source}: image {record.file_name!r} is listed twice (first at "
                            f"{first_entry[record.file_name]}); merge its faces into one entry")
        first_entry[record.file_name] = record.source
    n_faces = sum(len(im.faces) for im in images)
    log.info("%s: %d images, %d faces; dropped %d boxes of non-positive size%s", path, len(images), n_faces,
             dropped, " or flagged invalid" if drop_invalid else "")
    return images


def _image_size(path: Path, source: str = "") -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # reads the header only: a full decode of every image would be slow
            return image.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        where = f" (labelled at {source})" if source else ""
        raise UserError(f"{path}: not a readable image{where}: {exc}") from exc


def _check_box(face: FaceRecord, record: ImageRecord, width: int, height: int) -> None:
    """A face box must overlap its image and not reach further out than the image's own size."""
    x, y, w, h = (float(v) for v in face.box)
    overlaps = x < width and y < height and x + w > 0 and y + h > 0
    absurd = x < -width or y < -height or x + w > 2 * width or y + h > 2 * height
    if not overlaps or absurd:
        where = f"{record.source.rsplit(':', 1)[0]}:{face.line}" if face.line and record.source else record.source
        raise UserError(f"{where}: box x={x:g} y={y:g} w={w:g} h={h:g} lies outside image {record.file_name} "
                        f"({width}x{height})")


def to_coco(images: list[ImageRecord], image_dir: str | os.PathLike | None = None,
            keep_empty: bool = False) -> dict:
    """Build the COCO-keypoints dict. With ``image_dir`` every image must exist there (sizes are read from it).

    Images without faces are left out unless ``keep_empty`` (the model zoo trains only images with faces).
    """
    out_images, annotations = [], []
    missing = []
    ann_id = 1
    for image_id, record in enumerate(images, 1):
        if not record.faces and not keep_empty:
            continue
        entry = {"id": image_id, "file_name": record.file_name}
        if image_dir is not None:
            file = Path(image_dir) / record.file_name
            if not file.is_file():
                missing.append(record.file_name)
                continue
            entry["width"], entry["height"] = _image_size(file, record.source)
            for face in record.faces:
                _check_box(face, record, entry["width"], entry["height"])
        out_images.append(entry)
        for face in record.faces:
            x, y, w, h = (float(v) for v in face.box)
            kps = face.keypoints
            annotations.append({
                "id": ann_id,
                "image_id": image_id,
                "category_id": 1,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
                "num_keypoints": int((kps[:, 2] > 0).sum()),
                "keypoints": [float(v) for v in kps.reshape(-1)],
            })
            ann_id += 1
    if missing:
        raise UserError(f"{len(missing)} labelled images are missing under {image_dir}, e.g. {missing[:3]}")
    return {
        "info": {"description": "WIDER FACE faces with 5 landmarks (centerface-flow)"},
        "images": out_images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "face", "supercategory": "person", "keypoints": LANDMARK_NAMES,
                        "skeleton": []}],
    }


def write_coco(coco: dict, path: str | os.PathLike) -> None:
    """Write the COCO dict as JSON, atomically."""
    atomic_write_text(path, json.dumps(coco, separators=(",", ":"), allow_nan=False))


def labels_to_coco(labels: str | os.PathLike, image_dir: str | os.PathLike, out: str | os.PathLike,
                   drop_invalid: bool = False, keep_empty: bool = False) -> dict:
    """The ``prepare_annotations`` rule and ``centerface annotations``: a label file (:func:`read_labels`) checked
    against the images under ``image_dir`` (:func:`to_coco`) and written as COCO-keypoints JSON to ``out``;
    returns the COCO dict."""
    coco = to_coco(read_labels(labels, drop_invalid=drop_invalid), image_dir, keep_empty=keep_empty)
    write_coco(coco, out)
    return coco


def load_coco(path: str | os.PathLike) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Read a COCO-keypoints ``train.json`` (ours or the model zoo's) into training samples.

    Returns a list of ``(file_name, boxes, keypoints)``: ``boxes`` (N, 4) float32 ``x y w h``, ``keypoints``
    (N, 5, 3) float32 ``x y v``. Images without annotations are skipped (as the model zoo does).
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            coco = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: annotation file not found") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    for key in ("images", "annotations"):
        if key not in coco:
            raise UserError(f"{path}: missing key {key!r} (expected COCO-keypoints JSON)")
    per_image: dict[int, list[dict]] = {}
    for k, ann in enumerate(coco["annotations"]):
        if "bbox" not in ann or "image_id" not in ann:
            raise UserError(f"{path}: annotations[{k}] lacks 'bbox' or 'image_id'")
        per_image.setdefault(ann["image_id"], []).append(ann)
    samples = []
    for image in coco["images"]:
        anns = per_image.get(image["id"], [])
        if not anns:
            continue
        boxes = np.asarray([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        kps = np.zeros((len(anns), NUM_LANDMARKS, 3), np.float32)
        for i, ann in enumerate(anns):
            values = ann.get("keypoints") or []
            if len(values) == 3 * NUM_LANDMARKS:
                kps[i] = np.asarray(values, np.float32).reshape(NUM_LANDMARKS, 3)
            elif values:
                raise UserError(f"{path}: annotation id {ann.get('id')} has {len(values)} keypoint values, want 15")
        samples.append((image["file_name"], boxes, kps))
    return samples
