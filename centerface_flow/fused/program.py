"""The folded network as one MindSpore operator (``kernels/program.cc``): its native kernel calls, recorded once.

With native kernels the folded network (:func:`centerface_flow.fused.fold.fold_bn`) is 24 AOT custom operators.
In pynative mode each of them costs ~0.2 ms of Python and framework work on the calling thread while the kernels'
worker thread waits: about a third of a 640×480 call on a 2-core machine. :func:`trace` runs the network once in
pynative mode, records every kernel call (which kernel, which tensors in, which out) and encodes the sequence as
an int64 "program"; :class:`NetworkProgram` then runs the whole sequence as one ``CfProgram`` operator, which calls
the same kernels with the same arguments in the same order, so its outputs are identical to the network's.

Shapes are not frozen: each recorded output's height and width follow from one earlier tensor's by a rule (same,
halved by a stride-2 convolution, doubled by the 2×2 transposed convolution), so one trace serves every input
size the network accepts. The frozen weights are copied once into one buffer (passed as ~130 separate tensors
they cost ~3 ms of framework work per call); the network's valid region stays its ``Parameter``, read on every
call, so :func:`centerface_flow.fused.fold.set_valid_region` still applies. The weights of the 1x1 convolutions
that the kernels read as panels of their register tiles (``CfPanelRows`` in ``kernels/block.cc``) are stored
packed so, once, instead of being packed by the kernel on every call.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
from dataclasses import dataclass

import numpy as np

from centerface_flow.ops import native

__all__ = ["NetworkProgram", "Trace", "TraceError", "as_panels", "panel_rows", "trace"]

_VERSION = 2
_SLOT, _WEIGHT, _LIVE = 0, 1, 2
_SAME, _HALVED, _DOUBLED = 0, 1, 2
#: The input size :func:`trace` runs the network at: small, and with sides whose rules cannot be confused
#: (64 -> 32 halved, 32 -> 64 doubled; a side of 1 would make "same" and "halved" alike).
TRACE_SHAPE = (1, 3, 64, 96)


class TraceError(RuntimeError):
    """The network does something the program cannot express (an operator other than a native kernel, an output
    size that follows no rule); callers fall back to running the network operator by operator."""


@dataclass(frozen=True)
class _Call:
    kernel: str
    inputs: tuple  # (_SLOT | _WEIGHT | _LIVE, index)
    outputs: tuple  # (slot, channels, source slot, rule_h, rule_w)


def _apply_rule(v: int, rule: int) -> int:
    return {_SAME: v, _HALVED: (v - 1) // 2 + 1, _DOUBLED: 2 * v}[rule]


def _rule(src: int, out: int) -> int:
    for rule in (_SAME, _HALVED, _DOUBLED):
        if _apply_rule(src, rule) == out:
            return rule
    raise TraceError(f"an output side of {out} does not follow from an input side of {src}")


@functools.cache
def panel_rows(kernel: str, index: int) -> int:
    """The panel height this process's kernels use if input ``index`` of ``kernel`` may be passed as panels
    (:func:`as_panels`), else 0 (``CfPanelRows``: the tiles, and so the height, follow the CPU)."""
    fn = ctypes.CDLL(str(native.library_path())).CfPanelRows
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return int(fn(kernel.encode("ascii"), index))


def as_panels(weight: np.ndarray, rows: int) -> np.ndarray:
    """A 1x1 convolution's weight (out, in, ...) as the kernels' panels (``PackPanels`` in ``kernels/block.cc``):
    (panels, in, rows), panel p holding outputs p * rows .. + rows, the last output repeated past the end."""
    a = weight.reshape(weight.shape[0], -1)
    panels = -(-a.shape[0] // rows)
    index = np.minimum(np.arange(panels * rows), a.shape[0] - 1)
    return np.ascontiguousarray(a[index].reshape(panels, rows, a.shape[1]).transpose(0, 2, 1), np.float32)


@contextlib.contextmanager
def _recording(calls: list, tensors: dict):
    """While active, every ``ops.Custom`` call is run and recorded in ``calls`` (kernel name, argument and result
    tensors); ``tensors`` keeps every tensor seen alive, so that ``id()`` stays unique."""
    from mindspore import ops

    original = ops.Custom.__call__

    def record(self, *args):
        result = original(self, *args)
        outs = result if isinstance(result, tuple) else (result,)
        for t in (*args, *outs):
            tensors[id(t)] = t
        calls.append((str(self.func), args, outs))
        return result

    ops.Custom.__call__ = record
    try:
        yield
    finally:
        ops.Custom.__call__ = original


@dataclass(frozen=True)
class Trace:
    """What :func:`trace` recorded: the int64 ``program`` of ``kernels/program.cc``, the frozen ``weights`` one
    after the other (float32), the ``live`` parameters read on every call (the valid region), and per network
    output its channels and the chain of (rule_h, rule_w) from the input to it."""

    program: np.ndarray
    weights: np.ndarray
    live: list
    outputs: list


def trace(net) -> Trace:
    """Run ``net`` (folded, native kernels, pynative mode) once at :data:`TRACE_SHAPE` and return its
    :class:`Trace`. Raises :class:`TraceError` if the network cannot be expressed."""
    import mindspore as ms

    from centerface_flow.fused.fold import REGION_NAME

    library = str(native.library_path())
    x = ms.Tensor(np.zeros(TRACE_SHAPE, np.float32))
    calls, tensors = [], {}
    with _recording(calls, tensors):
        result = net(x)
    results = result if isinstance(result, tuple) else (result,)
    slots = {id(x): 0}
    shapes = {0: tuple(TRACE_SHAPE)}
    weights, live, param_index = [], [], {}
    names, name_index = [], {}
    program_calls = []
    for func, args, outs in calls:
        path, _, kernel = func.rpartition(":")
        if path != library:
            raise TraceError(f"operator {func!r} is not a kernel of {library}")
        inputs = []
        for arg in args:
            if id(arg) in slots:
                inputs.append((_SLOT, slots[id(arg)]))
            elif isinstance(arg, ms.Parameter):
                if id(arg) not in param_index:
                    group = live if arg.name == REGION_NAME else weights
                    param_index[id(arg)] = (_LIVE if group is live else _WEIGHT, len(group))
                    group.append(arg)
                inputs.append(param_index[id(arg)])
            else:
                raise TraceError(f"{kernel}: an input is neither a parameter nor the output of a kernel before it")
        source = next((i for kind, i in inputs if kind == _SLOT), None)
        if source is None:
            raise TraceError(f"{kernel}: no input tensor to take the output size from")
        outputs = []
        for out in outs:
            slot = len(shapes)
            n, c, h, w = out.shape
            src = shapes[source]
            outputs.append((slot, c, source, _rule(src[2], h), _rule(src[3], w)))
            slots[id(out)] = slot
            shapes[slot] = (n, c, h, w)
        if kernel not in name_index:
            name_index[kernel] = len(names)
            names.append(kernel)
        program_calls.append(_Call(kernel, tuple(inputs), tuple(outputs)))
    missing = [i for i, r in enumerate(results) if id(r) not in slots]
    if missing:
        raise TraceError(f"network outputs {missing} are not produced by a kernel")
    values = [np.ascontiguousarray(w.asnumpy(), np.float32) for w in weights]
    # a weight every use of which takes panels of one height is stored as panels
    heights = {}
    for call in program_calls:
        for position, (kind, i) in enumerate(call.inputs):
            if kind == _WEIGHT:
                heights.setdefault(i, set()).add(panel_rows(call.kernel, position))
    for i, found in heights.items():
        if len(found) == 1 and 0 not in found:
            values[i] = as_panels(values[i], found.pop())
    if any(not 1 <= v.ndim <= 4 for v in values):
        raise TraceError("a weight has more than 4 dimensions")
    words = [_VERSION, len(names), len(shapes), len(program_calls), len(results), len(values)]
    for name in names:
        words += [len(name), *name.encode("ascii")]
    offset = 0
    for v in values:
        words += [offset, v.ndim, *v.shape, *[0] * (4 - v.ndim)]
        offset += v.size
    for call in program_calls:
        words += [name_index[call.kernel], len(call.inputs)]
        for kind, i in call.inputs:
            words += [kind, i]
        words.append(len(call.outputs))
        for out in call.outputs:
            words += list(out)
    words += [slots[id(r)] for r in results]
    blob = np.concatenate([v.ravel() for v in values]) if values else np.zeros(1, np.float32)
    producers = {out[0]: out[1:] for call in program_calls for out in call.outputs}  # slot -> (c, source, rules)
    outputs = []
    for r in results:
        slot, chain = slots[id(r)], []
        while slot != 0:
            _, source, rule_h, rule_w = producers[slot]
            chain.append((rule_h, rule_w))
            slot = source
        outputs.append((shapes[slots[id(r)]][1], chain[::-1]))
    return Trace(np.asarray(words, np.int64), blob, live, outputs)


class NetworkProgram:
    """``net`` (folded, native kernels) as one operator: ``program(x)`` returns what ``net(x)`` returns, computed
    by the same kernel calls. Build it in pynative mode (:func:`trace` runs the network once)."""

    def __init__(self, net) -> None:
        import mindspore as ms
        from mindspore import ops

        traced = trace(net)
        self.program = ms.Tensor(traced.program)
        self.weights = ms.Tensor(traced.weights)
        self.live = traced.live
        self._outputs = traced.outputs
        n_outputs = len(traced.outputs)

        def out_shape(x, *_):
            return [self.output_shape(x, i) for i in range(n_outputs)]

        self.op = ops.Custom(f"{native.library_path()}:CfProgram", out_shape=out_shape,
                             out_dtype=lambda x, *_: [x] * n_outputs, func_type="aot")

    def output_shape(self, x_shape, index: int) -> list:
        """The shape of network output ``index`` for an input of shape ``x_shape``."""
        channels, chain = self._outputs[index]
        h, w = x_shape[2], x_shape[3]
        for rule_h, rule_w in chain:
            h, w = _apply_rule(h, rule_h), _apply_rule(w, rule_w)
        return [x_shape[0], channels, h, w]

    def __call__(self, x):
        return self.op(x, self.program, self.weights, *self.live)
