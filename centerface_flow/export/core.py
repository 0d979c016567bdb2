"""Export a checkpoint to MINDIR, ONNX or AIR, and verify the export where it was made.

The exported network is the checkpoint's in inference form: BatchNorm folded into the convolutions
(:func:`centerface_flow.fused.fold.fold_bn`), MindSpore's own operators only (no native kernel library).

Verification loads the exported file back with the runtime that will serve it (MindSpore for MINDIR, ONNX Runtime
for ONNX; AIR files cannot be loaded back by MindSpore, so on Ascend the check re-runs the checkpoint only),
runs it on a real image, and compares each of the four outputs with the checkpoint's network:
``max|Δ| / max|reference|`` must be ≤ :data:`TOLERANCE`. The figures go to a small JSON report next to the export.
An export that fails the check is deleted and the command fails.

ONNX exports carry the checkpoint's :class:`~centerface_flow.checkpoint.ModelMeta` as the ONNX metadata entry
``centerface_meta``, so ``centerface detect`` runs them with the right pixel format.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.io import (
    atomic_write_text,
    make_staging_dir,
    publish,
    refuse_overwriting_inputs,
    remove_stale_staging,
)

__all__ = ["FORMATS", "TOLERANCE", "ExportSettings", "export_checkpoint", "first_image", "relative_error",
           "relative_errors"]

log = logging.getLogger(__name__)

FORMATS = {"mindir": "MINDIR", "onnx": "ONNX", "air": "AIR"}
OUTPUT_NAMES = ("heatmap", "size", "offset", "landmarks")
TOLERANCE = 1e-4
META_KEY = "centerface_meta"



@dataclass(frozen=True)
class ExportSettings:
    """Input size of the exported graph and of its verification run."""

    height: int = 480
    width: int = 640

    def __post_init__(self) -> None:
        for key in ("height", "width"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 32 or value % 32 or value > 8192:
                raise UserError(f"{key}: must be a multiple of 32 between 32 and 8192, got {value!r}")


def relative_error(out, ref) -> float:
    """``max|out - ref| / max|ref|`` (float64): the measure exports, kernels and folding are checked with."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-12))


def relative_errors(outputs, references) -> dict[str, float]:
    """:func:`relative_error` per output name."""
    errors = {}
    for name, out, ref in zip(OUTPUT_NAMES, outputs, references):
        if np.shape(out) != np.shape(ref):
            raise RuntimeError(f"output {name}: shape {np.shape(out)} differs from the checkpoint's {np.shape(ref)}")
        errors[name] = relative_error(out, ref)
    return errors


def first_image(folder: str | os.PathLike) -> Path:
    """The first image (sorted by path) under ``folder``: the real image export checks run on."""
    exts = {".jpg", ".jpeg", ".png", ".bmp"}
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix.lower() in exts and path.is_file():
            return path
    raise UserError(f"{folder}: no image (.jpg/.png/.bmp) to check the export on")


def _check_input(image_path: Path, meta, width: int, height: int) -> np.ndarray:
    """A real image resized to the export shape, in the checkpoint's pixel format: (1, 3, height, width)."""
    import cv2

    from centerface_flow.inference.preprocess import prepare, read_image

    image = cv2.resize(read_image(image_path), (width, height), interpolation=cv2.INTER_AREA)
    chw, _ = prepare(image, "released", meta.input_format, meta.mean, meta.std)
    return chw[None]


def _check_finite(net, ckpt) -> None:
    """Refuse a checkpoint holding NaN or inf (a diverged training): its export would compute garbage."""
    for name, param in net.parameters_dict().items():
        values = param.asnumpy()
        bad = int(values.size - np.isfinite(values).sum())
        if bad:
            raise UserError(f"{ckpt}: parameter {name} holds {bad} NaN/inf value(s) (a diverged training?); "
                            "refusing to export it")


def _fix_onnx(path: Path, meta) -> None:
    """Repair what MindSpore's ONNX exporter gets wrong, and record the checkpoint's metadata.

    MindSpore 2.x writes ConvTranspose's ``output_shape`` as the full NCHW shape; the ONNX spec (and ONNX Runtime,
    which refuses to load the file) wants the spatial dims only.
    """
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        if node.op_type != "ConvTranspose":
            continue
        for attr in node.attribute:
            if attr.name == "output_shape" and len(attr.ints) == 4:
                spatial = list(attr.ints)[2:]
                del attr.ints[:]
                attr.ints.extend(spatial)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, meta.to_json()
    onnx.save(model, str(path))


def _run_export(path: Path, x: np.ndarray, fmt: str) -> list[np.ndarray] | None:
    """Load ``path`` back and run it on ``x``; None where the format cannot be loaded back (AIR)."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})
    if fmt == "mindir":
        import mindspore as ms

        graph = ms.nn.GraphCell(ms.load(str(path)))
        return [o.asnumpy() for o in graph(ms.Tensor(x))]
    return None


def export_checkpoint(ckpt: str | os.PathLike, out: str | os.PathLike, fmt: str, check_image: str | os.PathLike,
                      width: int = 640, height: int = 480, report: str | os.PathLike | None = None) -> dict:
    """Export ``ckpt`` to ``out`` in ``fmt`` (mindir/onnx/air) with a fixed (1, 3, height, width) input, verify
    it on ``check_image``, write the JSON ``report`` (default ``<out>.check.json``) and return it."""
    from centerface_flow import runtime
    from centerface_flow.checkpoint import load_network
    from centerface_flow.fused.fold import fold_bn
    from centerface_flow.ops import native

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    ExportSettings(height=height, width=width)
    out = Path(out)
    report_path = Path(report) if report else out.with_name(out.name + ".check.json")
    refuse_overwriting_inputs([("--out", out), ("--report", report_path)],
                              [("--weights", ckpt), ("--image", check_image)])
    if out.exists() and not out.is_file():
        raise UserError(f"--out {out}: exists and is not a regular file; exports replace regular files only")
    ms = runtime.mindspore("graph")
    if fmt == "air" and runtime.device_target() != "Ascend":
        raise UserError("Only the Ascend backend can export AIR; export MINDIR or ONNX on this host")
    net, meta = load_network(ckpt)
    _check_finite(net, ckpt)
    x = _check_input(Path(check_image), meta, width, height)
    reference = [o.asnumpy() for o in net(ms.Tensor(x))]
    # The exported graph: BatchNorm folded into the convs, MindSpore's own operators only (an export must not
    # reference this machine's native kernel library). The check below compares it with the unfolded network.
    with native.use_native(False):
        export_net, _ = load_network(ckpt)
    fold_bn(export_net, use_native=False)

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    tmp = make_staging_dir(out)
    try:
        stem = Path(tmp) / "model"
        ms.export(export_net, ms.Tensor(x), file_name=str(stem), file_format=FORMATS[fmt])
        produced = stem.with_suffix(f".{fmt}")
        if not produced.is_file():
            raise RuntimeError(f"MindSpore export wrote no {produced.name} in {tmp}")
        if fmt == "onnx":
            _fix_onnx(produced, meta)
        outputs = _run_export(produced, x, fmt)
        errors = relative_errors(outputs, reference) if outputs is not None else {}
        worst = max((v if math.isfinite(v) else math.inf for v in errors.values()), default=0.0)
        result = {
            "export": str(out),
            "format": FORMATS[fmt],
            "checkpoint": str(ckpt),
            "input_shape": [1, 3, height, width],
            "input_format": meta.input_format,
            "check_image": str(check_image),
            "runtime": {"onnx": "onnxruntime", "mindir": "mindspore", "air": None}[fmt],
            "relative_error": {k: v if math.isfinite(v) else None for k, v in errors.items()},
            "tolerance": TOLERANCE,
            "passed": bool(worst <= TOLERANCE),
            "note": "" if outputs is not None else "AIR cannot be loaded back by MindSpore; only exported",
        }
        if not result["passed"]:
            atomic_write_text(report_path, json.dumps(result, indent=2, allow_nan=False) + "\n")
            raise UserError(f"{out}: exported outputs differ from the checkpoint's (worst relative error "
                            f"{worst:.3g} > {TOLERANCE}); see {report_path}")
        publish(produced, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(report_path, json.dumps(result, indent=2, allow_nan=False) + "\n")
    log.info("exported %s (%s), verified with %s: worst relative error %.3g", out, FORMATS[fmt],
             result["runtime"], worst)
    return result
