"""The official WIDER FACE val ground truth (``wider_face_val.mat`` + ``wider_{easy,medium,hard}_val.mat``).

The four files come with the official ``eval_tools`` (folder ``ground_truth/``). ``wider_face_val.mat`` holds the
61 events, their image names and every face (int32 ``x y w h``); each setting file adds ``gt_list``, the 1-based
indices of the faces that count in that setting. Faces outside a setting's list are "ignored": a detection
matching them is neither a true nor a false positive.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.evaluation.matfile import MatFormatError, read_mat5

__all__ = ["GT_FILES", "SETTINGS", "GroundTruth", "load_ground_truth"]

log = logging.getLogger(__name__)

#: The three settings, in the order every table lists them.
SETTINGS = ("easy", "medium", "hard")
#: File names the ground-truth folder must hold.
GT_FILES = ("wider_face_val.mat",) + tuple(f"wider_{s}_val.mat" for s in SETTINGS)


@dataclass(frozen=True)
class GroundTruth:
    """Faces of a list of images, concatenated.

    Attributes
    ----------
    events : (E,) event names, in ``.mat`` order
    image_event : (I,) intp, index into ``events`` of every image
    image_names : (I,) image names without ``.jpg``, in ``.mat`` order
    faces : (G, 4) int32 xywh, all faces of image ``i`` at rows ``face_offsets[i]:face_offsets[i + 1]``
    face_offsets : (I + 1,) intp
    keep : setting -> (G,) bool, faces that count in that setting
    """

    events: tuple[str, ...]
    image_event: np.ndarray
    image_names: tuple[str, ...]
    faces: np.ndarray
    face_offsets: np.ndarray
    keep: dict[str, np.ndarray]

    @property
    def n_images(self) -> int:
        return len(self.image_names)

    def image_keys(self) -> list[tuple[str, str]]:
        """(event, image name) of every image."""
        return [(self.events[e], name) for e, name in zip(self.image_event, self.image_names)]

    def restrict(self, images: np.ndarray) -> GroundTruth:
        """The ground truth of the images selected by ``images`` ((I,) bool), in the same order."""
        images = np.asarray(images, dtype=bool)
        counts = np.diff(self.face_offsets)
        face_mask = np.repeat(images, counts)
        offsets = np.zeros(int(images.sum()) + 1, dtype=np.intp)
        np.cumsum(counts[images], out=offsets[1:])
        return GroundTruth(
            events=self.events,
            image_event=self.image_event[images],
            image_names=tuple(n for n, k in zip(self.image_names, images) if k),
            faces=np.ascontiguousarray(self.faces[face_mask]),
            face_offsets=offsets,
            keep={s: k[face_mask] for s, k in self.keep.items()},
        )


def _cell_strings(cell: np.ndarray) -> list[str]:
    return [str(np.asarray(item).ravel()[0]) for item in np.asarray(cell).ravel()]


def _load_mat(path: Path, names: list[str]) -> dict:
    """The variables ``names`` of a ``.mat`` file: the small v5 reader, scipy for anything it does not support."""
    try:
        return read_mat5(path, set(names))
    except MatFormatError as exc:
        log.debug("%s: %s; reading it with scipy.io.loadmat", path, exc)
    from scipy.io import loadmat

    return loadmat(path, variable_names=names)


def load_ground_truth(gt_dir: str | Path) -> GroundTruth:
    """Read the four official ``.mat`` files from ``gt_dir`` (the eval_tools ``ground_truth/`` folder).

    Raises ``UserError`` when a file is missing or does not have the official structure.
    """
    gt_dir = Path(gt_dir)
    missing = [name for name in GT_FILES if not (gt_dir / name).is_file()]
    if missing:
        hint = ""
        if (gt_dir / "ground_truth").is_dir():
            hint = f" (did you mean {gt_dir / 'ground_truth'}?)"
        raise UserError(f"--gt {gt_dir}: missing {', '.join(missing)}; expected the folder holding the official "
                        f"WIDER FACE val ground truth {', '.join(GT_FILES)}{hint}")
    main_path = gt_dir / GT_FILES[0]
    try:
        main = _load_mat(main_path, ["event_list", "file_list", "face_bbx_list"])
        events = _cell_strings(main["event_list"])
        file_lists = [_cell_strings(cell) for cell in np.asarray(main["file_list"]).ravel()]
        box_lists = [[np.asarray(b) for b in np.asarray(cell).ravel()] for cell in np.asarray(main["face_bbx_list"]).ravel()]
    except (KeyError, ValueError, TypeError, IndexError, OSError, NotImplementedError) as exc:
        raise UserError(f"{main_path}: not the official WIDER FACE ground truth ({exc})") from exc
    if not (len(events) == len(file_lists) == len(box_lists)):
        raise UserError(f"{main_path}: event_list, file_list and face_bbx_list have different lengths")
    image_event, image_names, boxes = [], [], []
    for e, (names, event_boxes) in enumerate(zip(file_lists, box_lists)):
        if len(names) != len(event_boxes):
            raise UserError(f"{main_path}: event {events[e]} has {len(names)} files but {len(event_boxes)} box lists")
        image_event.extend([e] * len(names))
        image_names.extend(names)
        for b in event_boxes:
            boxes.append(b.reshape(-1, 4) if b.size else np.zeros((0, 4), dtype=np.int32))
    counts = np.array([len(b) for b in boxes], dtype=np.intp)
    offsets = np.zeros(len(boxes) + 1, dtype=np.intp)
    np.cumsum(counts, out=offsets[1:])
    faces = np.ascontiguousarray(np.concatenate(boxes), dtype=np.int32) if boxes else np.zeros((0, 4), np.int32)
    if (faces[:, 2:] < 0).any():
        log.debug("%s: some faces have a negative width or height", main_path)

    keep = {}
    for setting in SETTINGS:
        path = gt_dir / f"wider_{setting}_val.mat"
        try:
            cells = np.asarray(_load_mat(path, ["gt_list"])["gt_list"]).ravel()
            lists = [[np.asarray(k).ravel() for k in np.asarray(cell).ravel()] for cell in cells]
        except (KeyError, ValueError, TypeError, IndexError, OSError, NotImplementedError) as exc:
            raise UserError(f"{path}: no usable gt_list ({exc})") from exc
        flat = [k for event in lists for k in event]
        if len(flat) != len(boxes):
            raise UserError(f"{path}: gt_list covers {len(flat)} images, {main_path.name} has {len(boxes)}")
        mask = np.zeros(len(faces), dtype=bool)
        for i, k in enumerate(flat):
            if k.size:
                idx = k.astype(np.intp) - 1
                if idx.min() < 0 or idx.max() >= counts[i]:
                    raise UserError(f"{path}: gt_list of image {image_names[i]} indexes faces outside 1..{counts[i]}")
                mask[offsets[i] + idx] = True
        keep[setting] = mask
    return GroundTruth(
        events=tuple(events),
        image_event=np.asarray(image_event, dtype=np.intp),
        image_names=tuple(image_names),
        faces=faces,
        face_offsets=offsets,
        keep=keep,
    )
