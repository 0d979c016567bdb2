"""``centerface detect``: faces (boxes + 5 landmarks) in your own images.

For every input image writes ``OUT/<image stem>.txt`` in the WIDER FACE format (name, count, then ``x y w h score``
rows) and adds its landmarks to ``OUT/landmarks.tsv`` (one row per face: image, rank, score, then x y of left eye,
right eye, nose, left and right mouth corner). ``--draw`` also writes ``OUT/<image stem>_faces.jpg``.
Unreadable images are reported by name and skipped; the command then exits with status 1.
"""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]

#: Defaults for photos (the evaluation defaults of `centerface postprocess` keep far more low-score boxes).
DETECT_DEFAULTS = {"score_threshold": 0.5, "nms": "hard", "nms_iou": 0.3}


def register(subparsers) -> None:
    from centerface_flow.commands.infer import add_inference_options
    from centerface_flow.commands.postprocess import add_postprocess_options

    parser = subparsers.add_parser(
        "detect",
        help="detect faces (boxes + 5 landmarks) in image files or folders -> WIDER-format txt per image",
        description=__doc__,
    )
    add_inference_options(parser)
    add_postprocess_options(parser)
    parser.set_defaults(**DETECT_DEFAULTS)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--draw", action="store_true", help="also write OUT/<stem>_faces.jpg with the detections")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on folders")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    parser.set_defaults(func=run)


def _expand(inputs: list[str], log) -> tuple[list, list[str], bool]:
    """INPUT arguments -> ([(path, stem)], [problems], any folder given)."""
    from pathlib import Path

    from centerface_flow.inference.detect import collect_images

    items, problems, folder = [], [], False
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            folder = True
            found = collect_images(path)
            if not found:
                log.warning("%s: folder holds no images", path)
            items.extend((p, p.stem) for p, _ in found)
        elif path.is_file():
            items.append((path, path.stem))
        else:
            problems.append(f"{path}: no such file or folder")
    return items, problems, folder


def _check_outputs(out, items: list, draw: bool) -> None:
    """Before any work: ``--out`` must be a folder, and no file we would write may be one of the inputs (an
    input photo ``a_faces.jpg`` next to ``a.jpg`` would otherwise be replaced by the drawing of ``a.jpg``)."""
    from centerface_flow.errors import UserError
    from centerface_flow.io import refuse_overwriting_inputs
    from centerface_flow.postprocess.predictions import LANDMARKS_FILE

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    outputs = [("--out", out / LANDMARKS_FILE)]
    for _, stem in items:
        outputs.append(("--out", out / f"{stem}.txt"))
        if draw:
            outputs.append(("--draw", out / f"{stem}_faces.jpg"))
    refuse_overwriting_inputs(outputs, [("INPUT", path) for path, _ in items])


def run(args: argparse.Namespace) -> int:
    import contextlib
    import logging
    import time
    from pathlib import Path

    import cv2
    from tqdm import tqdm

    from centerface_flow.errors import UserError
    from centerface_flow.inference.backends import default_pad_multiple, make_runner, resolve_mode
    from centerface_flow.inference.detect import InferenceConfig, detect_image, draw_detections, read_ahead
    from centerface_flow.inference.preprocess import ImageReadError
    from centerface_flow.io import atomic_write_bytes
    from centerface_flow.postprocess.predictions import (
        PostprocessConfig,
        format_landmark_rows,
        select,
        update_landmarks_table,
        write_image_result,
    )
    from centerface_flow.settings import from_args

    log = logging.getLogger(__name__)
    items, problems, folder = _expand(args.inputs, log)
    for problem in problems:
        log.error(problem)
    seen: dict[str, Path] = {}
    for path, stem in items:
        if stem in seen and seen[stem] != path:
            raise UserError(f"{seen[stem]} and {path} would both write {stem}.txt; detect them into separate --out "
                            "folders")
        seen[stem] = path
    out = Path(args.out)
    _check_outputs(out, items, args.draw)
    cfg = from_args(InferenceConfig, args)
    post = from_args(PostprocessConfig, args)
    mode = resolve_mode(args.mode)
    pad = args.pad_multiple if args.pad_multiple is not None else default_pad_multiple(cfg.size, cfg.scales, mode)
    runner = make_runner(args.weights, args.backend, mode, pad)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from exc
    failed = list(problems)
    lm_rows: dict[str, str] = {}
    times, n_faces = [], 0
    progress = folder and not args.no_progress
    with contextlib.closing(read_ahead([path for path, _ in items])) as reads:
        for (path, stem), image in zip(tqdm(items, desc="detect", unit="img", disable=not progress,
                                            dynamic_ncols=True), reads):
            if isinstance(image, ImageReadError):
                log.error("skipping %s", image)
                failed.append(str(path))
                continue
            start = time.perf_counter()
            boxes, scores, landmarks, _ = detect_image(runner, image, cfg)
            boxes, scores, landmarks = select(boxes, scores, landmarks, (image.shape[1], image.shape[0]), post)
            times.append(time.perf_counter() - start)
            write_image_result(out, stem, boxes, scores)
            lm_rows[stem] = format_landmark_rows(stem, scores, landmarks)
            n_faces += len(scores)
            if args.draw:
                ok, jpeg = cv2.imencode(".jpg", draw_detections(image, boxes, scores, landmarks))
                if ok:
                    atomic_write_bytes(out / f"{stem}_faces.jpg", jpeg.tobytes())
            if not progress:
                log.info("%s: %d faces (%.0f ms)", path, len(scores), 1000 * times[-1])
    if lm_rows:
        update_landmarks_table(out, lm_rows)
    if times:
        steady = times[1:] or times
        log.info("%d images, %d faces -> %s (%s; %.0f ms per image after the first)", len(times), n_faces, out,
                 runner.description, 1000 * sum(steady) / len(steady))
    if failed:
        log.error("%d inputs failed: %s", len(failed), "; ".join(failed))
        return 1
    return 0
