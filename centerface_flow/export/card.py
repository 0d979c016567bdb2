"""``results/best.md``: the model card of the exported best model, written from the workflow's own records.

Everything on the card is read from files the workflow wrote: the chosen model (``results/best.txt``), its APs
(``results/summary/ap_by_epoch.csv``), the input and outputs of the ONNX export and the checkpoint metadata it
carries, and how each export was verified (``results/best.{fmt}.check.json``). Nothing is computed again.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from centerface_flow.errors import UserError
from centerface_flow.export.graph import ALIGN, INPUT_NAME, OUTPUT_CHANNELS, OUTPUT_NAMES
from centerface_flow.inference.decode import SIZE_DIVISOR, STRIDE
from centerface_flow.io import atomic_write_text

__all__ = ["model_card", "read_best_record", "write_model_card"]

_META_KEY = "centerface_meta"
_AP_KEYS = ("easy", "medium", "hard")


def read_best_record(path: str | os.PathLike) -> tuple[str, dict[str, str]]:
    """(model on line 1, the ``key: value`` lines after it) of ``results/best.txt``
    (written by :func:`centerface_flow.workflow.write_best`)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the best-model file ({exc.strerror or exc})") from exc
    if not lines or not lines[0].strip():
        raise UserError(f"{path}: line 1 should name the best model, the file is empty")
    fields = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return lines[0].strip(), fields


def _read_ap_rows(path: Path) -> dict[str, dict[str, str]]:
    """model -> its row of ``ap_by_epoch.csv``."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"model", *_AP_KEYS} - set(reader.fieldnames or [])
            if missing:
                raise UserError(f"{path}: no column(s) {', '.join(sorted(missing))} (expected the AP summary "
                                "written by `centerface summarize`)")
            return {row["model"]: row for row in reader}
    except OSError as exc:
        raise UserError(f"{path}: cannot read the AP summary ({exc.strerror or exc})") from exc


def _read_check(path: Path) -> dict:
    try:
        check = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable export check report ({exc})") from exc
    missing = [k for k in ("export", "format", "passed", "tolerance") if k not in check]
    if not isinstance(check, dict) or missing:
        raise UserError(f"{path}: export check report without {', '.join(missing) or 'a JSON object'}")
    return check


def _read_onnx(path: Path) -> tuple[dict, list, list[tuple[str, list]]]:
    """(the checkpoint metadata the export carries, input shape, [(output name, shape)]) of an ONNX export."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises several types for a damaged file
        raise UserError(f"{path}: cannot read ONNX model ({exc})") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if _META_KEY not in props:
        raise UserError(f"{path}: no {_META_KEY!r} metadata entry (not written by `centerface export`)")

    def dims(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return (json.loads(props[_META_KEY]), dims(model.graph.input[0]),
            [(o.name, dims(o)) for o in model.graph.output])


def _shape(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _pixels(meta: dict) -> str:
    if meta["input_format"] == "rgb255":
        return "RGB, float 0-255, no normalisation"
    mean = ", ".join(f"{v:g}" for v in meta["mean"])
    std = ", ".join(f"{v:g}" for v in meta["std"])
    return f"BGR, `(pixel / 255 - mean) / std` per channel, mean (B, G, R) = ({mean}), std = ({std})"


def _snippet(onnx_path: str, meta: dict) -> list[str]:
    """A self-contained ONNX Runtime example: one image -> boxes and scores above 0.5 (before NMS)."""
    s, k = STRIDE, int(STRIDE * SIZE_DIVISOR)
    if meta["input_format"] == "rgb255":
        pixels = "x = image[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None]  # RGB 0-255, (1, 3, H, W)"
    else:
        mean = ", ".join(f"{v:g}" for v in meta["mean"])
        std = ", ".join(f"{v:g}" for v in meta["std"])
        pixels = (f"x = ((image / 255 - np.array([{mean}])) / np.array([{std}]))"
                  ".astype(np.float32).transpose(2, 0, 1)[None]  # BGR mean/std, (1, 3, H, W)")
    return [
        "```python",
        "import cv2, numpy as np, onnxruntime as ort",
        "",
        f'session = ort.InferenceSession("{onnx_path}", providers=["CPUExecutionProvider"])',
        'image = cv2.imread("photo.jpg")  # BGR uint8, any size',
        pixels,
        f'heatmap, size, offset, landmarks = session.run(None, {{"{INPUT_NAME}": x}})',
        "ys, xs = np.nonzero(heatmap[0, 0] >= 0.5)",
        f"cx, cy = {s} * (xs + offset[0, 0, ys, xs]), {s} * (ys + offset[0, 1, ys, xs])",
        f"w, h = {k} * np.exp(size[0, 0, ys, xs]), {k} * np.exp(size[0, 1, ys, xs])",
        "boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # x1 y1 x2 y2, pixels",
        "scores = heatmap[0, 0, ys, xs]  # neighbouring cells find the same face: keep the best by NMS (IoU 0.3)",
        "```",
    ]


def _ap_row(name: str, row: dict[str, str], note: str = "") -> str:
    values = " | ".join(f"{float(row[k]):.4f}" for k in _AP_KEYS)
    return f"| `{name}`{note} | {values} |"


def _ap_section(model: str, rows: dict[str, dict[str, str]], ap_csv: Path) -> list[str]:
    row = rows[model]
    measured = [f"{row[k]} {k}" for k in ("images", "faces") if row.get(k)]
    measured += [f"{label} {row[k]}" for k, label in (("iou", "IoU"), ("protocol", "protocol")) if row.get(k)]
    lines = ["## Validation AP (WIDER FACE protocol)", "",
             f"From `{ap_csv}`" + (f" ({', '.join(measured)})" if measured else "") + ":", "",
             "| model | easy | medium | hard |", "|---|---|---|---|", _ap_row(model, row, " (this model)")]
    if model != "released" and "released" in rows:
        lines.append(_ap_row("released", rows["released"], " (the authors' model, for comparison)"))
    return [*lines, ""]


def _input_section(meta: dict, input_dims: list) -> list[str]:
    dynamic = any(isinstance(d, str) for d in input_dims[2:])
    kind = "batch, height and width are dynamic" if dynamic else "a fixed shape"
    lines = ["## Input", "", f"- `{INPUT_NAME}`: float32, NCHW {_shape(input_dims)}; {kind}.",
             f"- Pixels: {_pixels(meta)}."]
    if dynamic:
        lines.append(f"- Any height and width: the graph zero-pads the input (after normalisation) at the bottom and "
                     f"right up to multiples of {ALIGN} and crops the outputs back to the cells covering it. The APs "
                     f"above were measured with each side resized to the nearest multiple of {ALIGN} at or above "
                     "it, boxes mapped back by the resize factors (what `centerface detect` does).")
    return [*lines, ""]


def _outputs_section(meta: dict, outputs: list[tuple[str, list]]) -> list[str]:
    k = int(STRIDE * SIZE_DIVISOR)
    origin = f"the cell ({STRIDE} x, {STRIDE} y)" if meta["landmark_origin"] == "cell" else "the box centre"
    meaning = {
        "heatmap": "face-centre score, 0-1 (after sigmoid)",
        "size": f"(log(box width / {k}), log(box height / {k})): width = {k} exp(size[0]) input pixels",
        "offset": f"(dx, dy): box centre = ({STRIDE} (x + dx), {STRIDE} (y + dy))",
        "landmarks": ("(u, v) for the left eye, right eye, nose, left and right mouth corner (the image's left for "
                      f"an upright face): point = origin + (u box width, v box height), origin = {origin}"),
    }
    lines = ["## Outputs", "",
             (f"`out_height = ceil(height / {STRIDE})`, `out_width = ceil(width / {STRIDE})`: cell (y, x) stands "
              f"for input pixel ({STRIDE} x, {STRIDE} y)."), "",
             "| name | shape | meaning |", "|---|---|---|"]
    for (name, dims), expected, channels in zip(outputs, OUTPUT_NAMES, OUTPUT_CHANNELS):
        plural = "s" if channels > 1 else ""
        lines.append(f"| `{name}` | {_shape(dims)} | {meaning[expected]} ({channels} channel{plural}) |")
    return [*lines, ""]


def _checks_section(reports: list[tuple[Path, dict]]) -> list[str]:
    lines = ["## Export checks", "",
             ("Each export was loaded back with its runtime and run on a real image at each shape below; every "
              "output was compared with the checkpoint run in MindSpore on the same input (padded the same way): "
              "max |export - checkpoint| / max |checkpoint|."), "",
             "| file | runtime | input | checked shape: worst relative error | tolerance | passed |",
             "|---|---|---|---|---|---|"]
    for path, check in reports:
        shapes = "; ".join(f"{'×'.join(str(d) for d in c['input_shape'])}: {c['worst']:.2g}"
                           for c in check.get("checks", []) if c.get("worst") is not None) or check.get("note", "")
        kind = "dynamic" if check.get("dynamic") else "fixed"
        passed = "yes" if check["passed"] else "no"
        lines.append(f"| `{check['export']}` | {check.get('runtime') or '-'} | {kind} | {shapes} | "
                     f"{check['tolerance']:g} | {passed} (`{path}`) |")
    return [*lines, ""]


def model_card(best_txt: str | os.PathLike, ap_csv: str | os.PathLike, checks: list[str | os.PathLike],
               onnx: str | os.PathLike, checkpoint: str | os.PathLike, copy: str | os.PathLike | None = None) -> str:
    """The Markdown model card (see the module docstring) of the model named in ``best_txt``, exported from
    ``checkpoint`` (copied to ``copy``) to ``onnx`` and the other files of the ``checks`` reports."""
    best_txt, ap_csv, onnx = Path(best_txt), Path(ap_csv), Path(onnx)
    model, best = read_best_record(best_txt)
    rows = _read_ap_rows(ap_csv)
    if model not in rows:
        raise UserError(f"{ap_csv}: no row for the best model {model!r} named in {best_txt}")
    reports = [(Path(p), _read_check(Path(p))) for p in checks]
    meta, input_dims, outputs = _read_onnx(onnx)
    copied = f" (copy: `{copy}`)" if copy else ""
    source = [
        f"# CenterFace model card: `{model}`", "",
        ("Face detector: boxes, scores and five landmarks per face. Written by the workflow from its own records "
         f"(`{best_txt}`, `{ap_csv}`, the export check reports); nothing on it is typed by hand."), "",
        "## Source", "", "| | |", "|---|---|",
        f"| model | `{model}`, chosen by `metric: {best.get('metric', '?')}` in `{best_txt}` |",
        f"| checkpoint | `{checkpoint}`{copied} |",
        f"| weights came from | {meta.get('source') or 'not recorded'} |",
        (f"| network | MobileNetV2 backbone ({meta['activation']}), FPN neck, heads of width {meta['head_width']} "
         "|"), "",
    ]
    run = [
        "## How to run it", "", "```sh", f"centerface detect --weights {onnx} --out faces/ --draw photo.jpg", "```",
        "",
        ("writes `faces/photo.txt` (WIDER format: x y w h score per face, after NMS), `faces/landmarks.tsv` and "
         "`faces/photo_faces.jpg` with the faces drawn. With ONNX Runtime alone:"), "",
        *_snippet(str(onnx), meta), "",
    ]
    mindir = [check["export"] for _, check in reports if check.get("format") == "MINDIR"]
    if mindir:
        run += [(f"With MindSpore: `net = mindspore.nn.GraphCell(mindspore.load(\"{mindir[0]}\"))`, then "
                 "`heatmap, size, offset, landmarks = net(mindspore.Tensor(x))` (graph mode), the same input and "
                 "outputs."), ""]
    sections = [source, _ap_section(model, rows, ap_csv), _input_section(meta, input_dims),
                _outputs_section(meta, outputs), _checks_section(reports), run]
    return "\n".join(line for section in sections for line in section)


def write_model_card(out: str | os.PathLike, best_txt: str | os.PathLike, ap_csv: str | os.PathLike,
                     checks: list[str | os.PathLike], onnx: str | os.PathLike, checkpoint: str | os.PathLike,
                     copy: str | os.PathLike | None = None) -> str:
    """Write :func:`model_card` to ``out`` atomically and return it."""
    text = model_card(best_txt, ap_csv, checks, onnx, checkpoint, copy)
    atomic_write_text(out, text)
    return text
