"""Runners: one callable per set of weights that maps a network-input batch to the four head outputs.

``make_runner(weights, backend)`` accepts

* a MindSpore checkpoint ``*.ckpt`` (``backend="mindspore"``, the default for .ckpt): our network, built and
  loaded by :func:`centerface_flow.checkpoint.load_network` with the checkpoint's :class:`ModelMeta`, then put in
  inference form by :func:`centerface_flow.fused.fold.fold_bn` (BatchNorm folded; on CPU the native depthwise kernels,
  see :mod:`centerface_flow.ops.native`). MindSpore compiles the graph once per input shape and keeps it;
* an ONNX file (``backend="onnxruntime"``, the default for .onnx):

  - one exported by ``centerface export``, recognised by its ``centerface_meta`` metadata entry;
  - the authors' released ``centerface.onnx`` itself (recognised by its input/output names), whose outputs are
    mapped into our conventions by :func:`centerface_flow.convert.released.map_released_outputs` and which is
    run with :meth:`ModelMeta.released`.

  ONNX files exported with a fixed input size are made size-agnostic when loaded (input/output dims symbolic;
  the transposed convolutions' explicit ``output_shape``, which equals their default for stride 2 / kernel 2,
  removed), so every size policy works with them.

A runner is called with a float32 (N, 3, H, W) batch already in ``runner.meta.input_format`` (see
:mod:`centerface_flow.inference.preprocess`) and returns ``(heatmap (N,1,h,w), size (N,2,h,w), offset (N,2,h,w),
landmarks (N,10,h,w))`` as float32 numpy arrays in the model zoo's channel conventions
(:mod:`centerface_flow.inference.decode`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError

__all__ = [
    "BACKENDS",
    "MODES",
    "PAD_MULTIPLE",
    "Runner",
    "default_backend",
    "default_pad_multiple",
    "drop_transpose_output_shapes",
    "make_runner",
    "resolve_mode",
]

log = logging.getLogger(__name__)

BACKENDS = ("mindspore", "onnxruntime")
_META_KEY = "centerface_meta"


class Runner:
    """``runner(batch) -> (heatmap, size, offset, landmarks)``; ``meta`` tells the pixel format and decoder origin."""

    def __init__(self, fn, meta, backend: str, weights: Path, description: str) -> None:
        self._fn = fn
        self.meta = meta
        self.backend = backend
        self.weights = weights
        self.description = description

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"runner input must be (N, 3, H, W), got {batch.shape}")
        outputs = tuple(np.asarray(o, dtype=np.float32) for o in self._fn(batch))
        if len(outputs) != 4:
            raise RuntimeError(f"{self.weights}: expected 4 outputs, got {len(outputs)}")
        return outputs

    def __repr__(self) -> str:
        return f"Runner({self.description})"


#: Default bucket of the MindSpore runner's exact padding (see :func:`make_runner`): 53 distinct input shapes of the
#: 610-image WIDER val subset (released size policy) become 16 compiled graphs.
PAD_MULTIPLE = 128


#: MindSpore execution modes a runner accepts; ``auto`` is resolved by :func:`resolve_mode`.
MODES = ("auto", "graph", "pynative")


def resolve_mode(mode: str) -> str:
    """The execution mode ``mode`` stands for: itself, or for ``auto`` graph mode on Ascend (where every operator
    of a pynative call is a device launch) and pynative mode on CPU. On CPU the network is 24 native kernel calls,
    so pynative mode adds little per call and compiles nothing; measured on the 2-core AVX2 VM it was faster than
    graph mode from the first image on, and for whole test stages (docs/performance.md, "Execution mode")."""
    if mode not in MODES:
        raise UserError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode
    from centerface_flow.runtime import device_target

    return "graph" if device_target() == "Ascend" else "pynative"


def default_pad_multiple(size_policy: str, scales: tuple[float, ...], mode: str = "graph") -> int:
    """``pad_multiple`` for a test run: 0 in pynative mode (nothing is compiled per shape, so padding would only
    add work) and when every input has the same shape (letterbox, one scale), else :data:`PAD_MULTIPLE`."""
    if mode == "pynative" or (size_policy == "letterbox" and len(set(scales)) == 1):
        return 0
    return PAD_MULTIPLE


def default_backend(weights: str | os.PathLike) -> str:
    """``mindspore`` for ``*.ckpt``, ``onnxruntime`` for ``*.onnx``."""
    suffix = Path(weights).suffix.lower()
    if suffix == ".ckpt":
        return "mindspore"
    if suffix == ".onnx":
        return "onnxruntime"
    raise UserError(f"{weights}: weights must be a MindSpore checkpoint (.ckpt) or an ONNX file (.onnx)")


def make_runner(weights: str | os.PathLike, backend: str | None = None, mode: str = "graph",
                pad_multiple: int = 0) -> Runner:
    """Load ``weights`` for ``backend`` (default from the file suffix); ``mode`` = MindSpore graph|pynative.

    ``pad_multiple`` (MindSpore with native kernels only; 0 = off): zero-pad each batch at the bottom / right up to
    a multiple of this many pixels and crop the outputs back to the image (H/4, W/4), so that many image sizes
    share a few compiled graphs (each compiled shape costs seconds and keeps its activation memory). The outputs
    are exactly those of the unpadded image (:func:`centerface_flow.fused.fold.set_valid_region`). Without the native
    kernels padding would change the outputs near the bottom / right edge, so it is not done (a warning says so).
    """
    if pad_multiple < 0 or pad_multiple % 32:
        raise UserError(f"pad_multiple must be 0 or a positive multiple of 32, got {pad_multiple}")
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"{weights}: weights file not found")
    backend = backend or default_backend(weights)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    suffix = weights.suffix.lower()
    if backend == "mindspore":
        if suffix != ".ckpt":
            raise UserError(f"{weights}: the mindspore backend runs .ckpt checkpoints; use --backend onnxruntime "
                            "for .onnx files (or convert the released model with `centerface convert released`)")
        return _mindspore_runner(weights, mode, pad_multiple)
    if suffix != ".onnx":
        raise UserError(f"{weights}: the onnxruntime backend runs .onnx files; use --backend mindspore for .ckpt")
    return _onnx_runner(weights)


def _pad_to(batch: np.ndarray, multiple: int) -> np.ndarray:
    """(N, 3, H, W) zero-padded at the bottom / right to multiples of ``multiple``."""
    n, c, h, w = batch.shape
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if (ph, pw) == (h, w):
        return batch
    padded = np.zeros((n, c, ph, pw), np.float32)
    padded[:, :, :h, :w] = batch
    return padded


def _mindspore_runner(weights: Path, mode: str, pad_multiple: int = 0) -> Runner:
    from centerface_flow import runtime

    ms = runtime.mindspore(mode)
    from centerface_flow.checkpoint import load_network
    from centerface_flow.fused.fold import fold_bn, set_valid_region
    from centerface_flow.nets.centerface import STRIDE
    from centerface_flow.ops import native

    net, meta = load_network(weights)
    fold_bn(net)  # inference form: BatchNorms folded into the convs, fused native depthwise kernels on CPU
    if pad_multiple and getattr(net, "valid_region", None) is None:
        log.warning("--pad-multiple %d ignored: exact padding needs the native kernels (%s)", pad_multiple,
                    "MindSpore operators in use")
        pad_multiple = 0

    call, kernels = net, "native kernels" if native.enabled() else "MindSpore operators"
    if mode == "pynative" and native.enabled():
        from centerface_flow.fused.program import NetworkProgram, TraceError

        try:
            call, kernels = NetworkProgram(net), "native kernels as one operator"
        except TraceError as exc:
            log.warning("running the network operator by operator: %s", exc)
        # MindSpore's runtime threads exist once the network has run (the trace above); they only spin from now on
        log.debug("%d MindSpore runtime threads set to SCHED_IDLE", runtime.idle_mindspore_threads())

    def tensor(batch: np.ndarray):
        # from_numpy shares the array's memory (ms.Tensor would copy the whole batch first)
        return ms.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))

    compiled = mode != "graph"  # graph mode: the first call compiles, through the on-disk compile cache

    def network(x: np.ndarray):
        nonlocal compiled
        if compiled:
            return call(tensor(x))
        from centerface_flow.inference import compile_cache

        structure = {"head_width": meta.head_width, "activation": meta.activation, "kernels": kernels}
        with compile_cache.first_graph(ms, structure, x.shape, runtime.device_target()):
            outputs = call(tensor(x))
        compiled = True
        return outputs

    def run(batch: np.ndarray):
        if not pad_multiple:
            return [o.asnumpy() for o in network(batch)]
        h, w = batch.shape[2:]
        padded = _pad_to(batch, pad_multiple)
        set_valid_region(net, padded.shape[2:], (h, w))
        return [o.asnumpy()[:, :, :h // STRIDE, :w // STRIDE] for o in network(padded)]

    padding = f", inputs padded to multiples of {pad_multiple}" if pad_multiple else ""
    return Runner(run, meta, "mindspore", weights, f"MindSpore {mode} mode, BatchNorm folded, {kernels}{padding}, "
                  f"{weights.name}")


def _dynamic_onnx(model) -> None:
    """Make a fixed-size ONNX export size-agnostic in place (see the module docstring)."""
    for value in list(model.graph.input)[:1]:
        dims = value.type.tensor_type.shape.dim
        for dim, name in zip(list(dims)[2:], ("H", "W")):
            dim.ClearField("dim_value")
            dim.dim_param = name
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    for k, value in enumerate(model.graph.output):
        for d, dim in enumerate(value.type.tensor_type.shape.dim):
            if d != 1:
                dim.ClearField("dim_value")
                dim.dim_param = f"out{k}_{d}"
    del model.graph.value_info[:]
    drop_transpose_output_shapes(model.graph)


def drop_transpose_output_shapes(graph) -> None:
    """Remove each ConvTranspose's explicit ``output_shape``, which pins the input size; for the network's stride-2,
    kernel-2, unpadded transposed convs the ONNX default (twice the input) is the same shape. Any other transposed
    convolution is a :class:`UserError` (its default output shape could differ)."""
    for node in graph.node:
        if node.op_type != "ConvTranspose":
            continue
        attrs = {a.name: a for a in node.attribute}
        if "output_shape" not in attrs:
            continue
        strides = list(attrs["strides"].ints) if "strides" in attrs else [1, 1]
        kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else None
        pads = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
        if strides != [2, 2] or kernel not in (None, [2, 2]) or any(pads):
            raise UserError(f"ConvTranspose {node.name or node.output[0]}: only stride-2 kernel-2 unpadded transposed "
                            "convolutions can take a dynamic input size")
        node.attribute.remove(attrs["output_shape"])


def _onnx_runner(weights: Path) -> Runner:
    import onnx

    from centerface_flow.checkpoint import ModelMeta

    try:
        model = onnx.load(str(weights))
    except Exception as exc:
        raise UserError(f"{weights}: cannot read ONNX model ({exc})") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if _META_KEY in props:
        meta = ModelMeta.from_json(props[_META_KEY], where=str(weights))
        return _exported_onnx_runner(weights, model, meta)
    from centerface_flow.convert import released

    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if released.ONNX_INPUT in inputs and set(released.ONNX_OUTPUTS) <= set(outputs):
        session = _session(model)
        names = list(released.ONNX_OUTPUTS)

        def run(batch: np.ndarray):
            return released.map_released_outputs(session.run(names, {released.ONNX_INPUT: batch}))

        return Runner(run, ModelMeta.released(source=str(weights)), "onnxruntime", weights,
                      f"ONNX Runtime, released model {weights.name}")
    raise UserError(f"{weights}: ONNX file has no {_META_KEY!r} metadata (not written by `centerface export`) and "
                    "is not the released centerface.onnx")


def _session(model):
    """An ONNX Runtime session on ``model`` made size-agnostic.

    Initializers listed among the graph inputs (the released file is ONNX IR 4, which lists them) are removed
    from the inputs first: as inputs they could be overridden at run time, so ONNX Runtime would not fold the
    BatchNorms or fuse the convolutions, which makes the released model ~8x slower.
    """
    import onnxruntime

    initializers = {t.name for t in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    _dynamic_onnx(model)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _exported_onnx_runner(weights: Path, model, meta) -> Runner:
    session = _session(model)
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray):
        return session.run(None, {input_name: batch})

    return Runner(run, meta, "onnxruntime", weights, f"ONNX Runtime, exported {weights.name}")
