"""Export a checkpoint to MINDIR, ONNX or AIR, and verify the export where it was made.

The exported network is the checkpoint's in inference form: BatchNorm folded into the convolutions
(:func:`centerface_flow.fused.fold.fold_bn`), MindSpore's own operators only (no native kernel library). With
``dynamic`` (the default) ONNX and MINDIR files take any (batch, 3, height, width) input, padded inside the graph to
the multiples of 32 the network needs (:mod:`centerface_flow.export.graph`); otherwise, and always for AIR, the
input is fixed to (1, 3, height, width).

Verification loads the exported file back with the runtime that will serve it (MindSpore for MINDIR, ONNX Runtime
for ONNX; AIR files cannot be loaded back by MindSpore, so on Ascend the check re-runs the checkpoint only),
runs it on a real image at each shape of :meth:`ExportSettings.check_shapes`, and compares each of the four outputs
with the checkpoint's network run in MindSpore on the same input padded the same way:
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
from centerface_flow.export.graph import (
    ALIGN,
    INPUT_NAME,
    OUTPUT_NAMES,
    make_onnx_dynamic,
    name_onnx_io,
    output_hw,
    pad_reference,
    padded_network,
)
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
TOLERANCE = 1e-4
META_KEY = "centerface_meta"
#: Formats whose export can take a dynamic input (AIR is exported for a fixed shape).
DYNAMIC_FORMATS = ("onnx", "mindir")


@dataclass(frozen=True)
class ExportSettings:
    """Input of the exported graph and of its verification runs.

    ``dynamic``: ONNX and MINDIR take any (batch, 3, height, width), and ``height`` × ``width`` is the first of the
    shapes the export is checked at (:meth:`check_shapes`); otherwise the input is fixed to (1, 3, height, width).
    """

    height: int = 480
    width: int = 640
    dynamic: bool = True

    def __post_init__(self) -> None:
        for key in ("height", "width"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 32 or value % 32 or value > 8192:
                raise UserError(f"{key}: must be a multiple of 32 between 32 and 8192, got {value!r}")
        if not isinstance(self.dynamic, bool):
            raise UserError(f"dynamic: must be true or false, got {self.dynamic!r}")

    def check_shapes(self, fmt: str = "onnx") -> list[tuple[int, int, int, int]]:
        """Input shapes the export of format ``fmt`` is verified at: (1, 3, height, width), and for a dynamic export
        also a batch of 2 in the other orientation at half size and a size that is not a multiple of 32."""
        h, w = self.height, self.width
        if not self.dynamic or fmt not in DYNAMIC_FORMATS:
            return [(1, 3, h, w)]
        return [(1, 3, h, w), (2, 3, w // 2, h // 2), (1, 3, h + 1, w + 3)]


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


def _check_input(image, meta, shape: tuple[int, int, int, int]) -> np.ndarray:
    """A real image resized to ``shape`` (N, 3, H, W) in the checkpoint's pixel format; odd batch items mirrored
    left-right, so that a mix-up between batch items shows."""
    import cv2

    from centerface_flow.inference.preprocess import prepare

    n, _, height, width = shape
    # on a canvas of multiples of 32 the released size policy keeps the pixels as they are; cropped afterwards
    canvas = np.zeros((-(-height // ALIGN) * ALIGN, -(-width // ALIGN) * ALIGN, 3), np.uint8)
    canvas[:height, :width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    chw, _ = prepare(canvas, "released", meta.input_format, meta.mean, meta.std)
    chw = chw[:, :height, :width]
    return np.ascontiguousarray(np.stack([chw if i % 2 == 0 else chw[:, :, ::-1] for i in range(n)]))


def _check_finite(net, ckpt) -> None:
    """Refuse a checkpoint holding NaN or inf (a diverged training): its export would compute garbage."""
    for name, param in net.parameters_dict().items():
        values = param.asnumpy()
        bad = int(values.size - np.isfinite(values).sum())
        if bad:
            raise UserError(f"{ckpt}: parameter {name} holds {bad} NaN/inf value(s) (a diverged training?); "
                            "refusing to export it")


def _finish_onnx(path: Path, meta, dynamic: bool) -> None:
    """Repair what MindSpore's ONNX exporter gets wrong, name the input and outputs, make the input dynamic if
    asked, and record the checkpoint's metadata.

    MindSpore 2.x writes ConvTranspose's ``output_shape`` as the full NCHW shape; the ONNX spec (and ONNX Runtime,
    which refuses to load the file) wants the spatial dims only. A dynamic graph drops the attribute instead.
    """
    import onnx

    model = onnx.load(str(path))
    name_onnx_io(model)
    if dynamic:
        make_onnx_dynamic(model)
    else:
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


def _runner_of_export(path: Path, fmt: str):
    """``run(x) -> 4 outputs`` with the export at ``path`` loaded back; None where the format cannot be (AIR)."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {session.get_inputs()[0].name: x})
    if fmt == "mindir":
        import mindspore as ms

        graph = ms.nn.GraphCell(ms.load(str(path)))
        return lambda x: [o.asnumpy() for o in graph(ms.Tensor(x))]
    return None


def _shape_check(shape, outputs, reference) -> dict:
    errors = relative_errors(outputs, reference)
    worst = max((v if math.isfinite(v) else math.inf for v in errors.values()), default=0.0)
    return {"input_shape": list(shape), "output_hw": list(output_hw(*shape[2:])),
            "relative_error": {k: v if math.isfinite(v) else None for k, v in errors.items()},
            "worst": worst if math.isfinite(worst) else None, "passed": bool(worst <= TOLERANCE)}


def _write_report(path: Path, result: dict) -> None:
    atomic_write_text(path, json.dumps(result, indent=2, allow_nan=False) + "\n")


def export_checkpoint(ckpt: str | os.PathLike, out: str | os.PathLike, fmt: str, check_image: str | os.PathLike,
                      width: int = 640, height: int = 480, report: str | os.PathLike | None = None,
                      dynamic: bool = True) -> dict:
    """Export ``ckpt`` to ``out`` in ``fmt`` (mindir/onnx/air), verify it on ``check_image`` at each shape of
    :meth:`ExportSettings.check_shapes`, write the JSON ``report`` (default ``<out>.check.json``) and return it.

    ``dynamic``: ONNX / MINDIR input (batch, 3, height, width) of any size; otherwise (and for AIR) fixed to
    (1, 3, ``height``, ``width``).
    """
    from centerface_flow import runtime
    from centerface_flow.checkpoint import load_network
    from centerface_flow.fused.fold import fold_bn
    from centerface_flow.inference.preprocess import read_image
    from centerface_flow.ops import native

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    settings = ExportSettings(height=height, width=width, dynamic=dynamic)
    is_dynamic = settings.dynamic and fmt in DYNAMIC_FORMATS
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
    image = read_image(check_image)
    shapes = settings.check_shapes(fmt)
    inputs = [_check_input(image, meta, shape) for shape in shapes]
    references = [pad_reference(lambda p: [o.asnumpy() for o in net(ms.Tensor(p))], x) for x in inputs]
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
        if is_dynamic and fmt == "mindir":
            ms.export(padded_network(export_net), ms.Tensor(shape=[None, 3, None, None], dtype=ms.float32),
                      file_name=str(stem), file_format=FORMATS[fmt])
        else:
            # ONNX: MindSpore's exporter refuses dynamic shapes; the fixed graph is made dynamic afterwards
            ms.export(export_net, ms.Tensor(inputs[0]), file_name=str(stem), file_format=FORMATS[fmt])
        produced = stem.with_suffix(f".{fmt}")
        if not produced.is_file():
            raise RuntimeError(f"MindSpore export wrote no {produced.name} in {tmp}")
        if fmt == "onnx":
            _finish_onnx(produced, meta, is_dynamic)
        run = _runner_of_export(produced, fmt)
        checks = [] if run is None else [_shape_check(shape, run(x), ref)
                                         for shape, x, ref in zip(shapes, inputs, references)]
        worst = {name: max((c["relative_error"][name] if c["relative_error"][name] is not None else math.inf)
                           for c in checks) for name in OUTPUT_NAMES} if checks else {}
        notes = [] if run is not None else ["AIR cannot be loaded back by MindSpore; only exported"]
        if settings.dynamic and not is_dynamic:
            notes.append(f"{FORMATS[fmt]} is exported with a fixed input shape")
        result = {
            "export": str(out),
            "format": FORMATS[fmt],
            "checkpoint": str(ckpt),
            "dynamic": is_dynamic,
            "input_name": INPUT_NAME if fmt == "onnx" else None,
            "input_shape": ["batch", 3, "height", "width"] if is_dynamic else [1, 3, height, width],
            "padding": (f"zeros at the bottom / right up to multiples of {ALIGN}, inside the graph; outputs cropped "
                        "to ceil(height / 4) x ceil(width / 4)") if is_dynamic else None,
            "output_names": list(OUTPUT_NAMES),
            "input_format": meta.input_format,
            "check_image": str(check_image),
            "runtime": {"onnx": "onnxruntime", "mindir": "mindspore", "air": None}[fmt],
            "checks": checks,
            "relative_error": {k: v if math.isfinite(v) else None for k, v in worst.items()},
            "tolerance": TOLERANCE,
            "passed": all(c["passed"] for c in checks),
            "note": "; ".join(notes),
        }
        if not result["passed"]:
            _write_report(report_path, result)
            failed = ", ".join(f"{tuple(c['input_shape'])}: {c['worst']}" for c in checks if not c["passed"])
            raise UserError(f"{out}: exported outputs differ from the checkpoint's (worst relative error per input "
                            f"shape {failed} > {TOLERANCE}); see {report_path}")
        publish(produced, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write_report(report_path, result)
    log.info("exported %s (%s, %s input), verified with %s at %s: worst relative error %.3g", out, FORMATS[fmt],
             "dynamic" if is_dynamic else "fixed", result["runtime"], ", ".join(str(tuple(s)) for s in shapes),
             max(worst.values(), default=0.0))
    return result
