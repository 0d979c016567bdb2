"""The exported graph's interface: any (N, 3, H, W) input, padded inside the graph, outputs cropped back.

The network needs input sides that are multiples of :data:`ALIGN` (its total stride: the feature pyramid adds
upsampled maps to finer ones, whose sizes must agree). A dynamic export therefore zero-pads its input at the bottom
and right up to the next multiple of :data:`ALIGN` and crops each output to the cells that cover the input,
``(ceil(H / 4), ceil(W / 4))``: the same zeros, at the same place, as the MindSpore runner's padding
(:mod:`centerface_flow.inference.backends`, ``--pad-multiple``), in the network's input space (after the pixel
normalisation). For sides that are already multiples of 32 (every input ``centerface infer`` / ``detect``
prepares) nothing is padded and the outputs are the network's own.

:func:`pad_reference` is that function in numpy, the reference the export checks compare with;
:func:`padded_network` builds it as a MindSpore cell (dynamic MINDIR), :func:`make_onnx_dynamic` edits it into an
ONNX graph exported at one fixed size (MindSpore's ONNX exporter refuses dynamic shapes).
"""
from __future__ import annotations

import numpy as np

from centerface_flow.inference.backends import drop_transpose_output_shapes
from centerface_flow.inference.decode import STRIDE
from centerface_flow.inference.preprocess import SIZE_ALIGN

__all__ = ["ALIGN", "INPUT_NAME", "OUTPUT_CHANNELS", "OUTPUT_NAMES", "make_onnx_dynamic", "name_onnx_io",
           "output_hw", "pad_reference", "padded_network"]

#: Input sides are padded to multiples of this inside a dynamic export.
ALIGN = SIZE_ALIGN
#: Names of the exported graph's input and outputs (ONNX), in the order the network returns the outputs.
INPUT_NAME = "input"
OUTPUT_NAMES = ("heatmap", "size", "offset", "landmarks")
OUTPUT_CHANNELS = (1, 2, 2, 10)


def output_hw(height: int, width: int) -> tuple[int, int]:
    """Output grid (h, w) of an input of ``height`` × ``width`` pixels: the cells covering it."""
    return -(-height // STRIDE), -(-width // STRIDE)


def pad_reference(run, x: np.ndarray) -> list[np.ndarray]:
    """What a dynamic export computes, with ``run`` (N, 3, H', W') -> 4 outputs as the network: ``x`` (N, 3, H, W)
    zero-padded at the bottom / right to multiples of :data:`ALIGN`, outputs cropped to :func:`output_hw`."""
    n, c, h, w = x.shape
    padded = np.zeros((n, c, -(-h // ALIGN) * ALIGN, -(-w // ALIGN) * ALIGN), np.float32)
    padded[:, :, :h, :w] = x
    oh, ow = output_hw(h, w)
    return [np.asarray(o)[:, :, :oh, :ow] for o in run(padded)]


def padded_network(net):
    """``net`` wrapped to take any (N, 3, H, W) (see the module docstring); for an export with a dynamic input."""
    import mindspore as ms
    from mindspore import nn, ops
    from mindspore.ops.operations.nn_ops import PadV3

    class PaddedCenterFace(nn.Cell):
        def __init__(self, inner) -> None:
            super().__init__()
            self.net = inner
            # PadV3 takes its paddings as a tensor, which a dynamic shape needs (ops.pad wants Python ints)
            self.pad = PadV3(mode="constant")

        def construct(self, x):
            hw = ops.dyn_shape(x)[2:]
            extra = (ALIGN - hw % ALIGN) % ALIGN
            zero = ops.zeros((1,), ms.int64)
            # PadV3 paddings run from the last axis: (left, right, top, bottom)
            padded = self.pad(x, ops.concat((zero, extra[1:2], zero, extra[0:1])), ms.Tensor(0.0, ms.float32))
            out_hw = (hw + (STRIDE - 1)) // STRIDE
            begin, step = ops.zeros((4,), ms.int64), ops.ones((4,), ms.int64)
            outputs = ()
            for out in self.net(padded):
                end = ops.concat((ops.dyn_shape(out)[:2], out_hw))
                outputs += (ops.strided_slice(out, begin, end, step),)
            return outputs

    return PaddedCenterFace(net)


def _rename(graph, old: str, new: str) -> None:
    """Rename tensor ``old`` to ``new`` everywhere in ``graph`` (node inputs / outputs, graph inputs / outputs)."""
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new
    for value in (*graph.input, *graph.output):
        if value.name == old:
            value.name = new


def name_onnx_io(model) -> None:
    """Name the graph's input :data:`INPUT_NAME` and its outputs :data:`OUTPUT_NAMES` (MindSpore numbers them)."""
    graph = model.graph
    if len(graph.input) < 1 or len(graph.output) != len(OUTPUT_NAMES):
        raise RuntimeError(f"exported ONNX graph has {len(graph.input)} input(s) and {len(graph.output)} "
                           f"output(s); expected 1 and {len(OUTPUT_NAMES)}")
    _rename(graph, graph.input[0].name, INPUT_NAME)
    for value, name in zip(list(graph.output), OUTPUT_NAMES):
        _rename(graph, value.name, name)


def make_onnx_dynamic(model) -> None:
    """Turn a fixed-size ONNX export of the network (named by :func:`name_onnx_io`) into one taking any
    (batch, 3, height, width): Pad in front, a Slice behind each output (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inner_input = "cf_padded_input"
    _rename(graph, INPUT_NAME, inner_input)
    inner_outputs = [f"cf_padded_{name}" for name in OUTPUT_NAMES]
    for name, inner in zip(OUTPUT_NAMES, inner_outputs):
        _rename(graph, name, inner)
    drop_transpose_output_shapes(graph)

    def const(name: str, values) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    pad_nodes = [
        helper.make_node("Shape", [INPUT_NAME], ["cf_shape"]),
        helper.make_node("Slice", ["cf_shape", const("cf_axis_h", [2]), const("cf_axis_end", [4])], ["cf_hw"]),
        helper.make_node("Add", ["cf_hw", const("cf_align_m1", [ALIGN - 1])], ["cf_hw_up"]),
        helper.make_node("Div", ["cf_hw_up", const("cf_align", [ALIGN])], ["cf_blocks"]),
        helper.make_node("Mul", ["cf_blocks", "cf_align"], ["cf_padded_hw"]),
        helper.make_node("Sub", ["cf_padded_hw", "cf_hw"], ["cf_extra"]),
        # ONNX pads: begins of the 4 axes, then ends; only the ends of H and W grow
        helper.make_node("Concat", [const("cf_zeros6", [0] * 6), "cf_extra"], ["cf_pads"], axis=0),
        helper.make_node("Pad", [INPUT_NAME, "cf_pads"], [inner_input], mode="constant"),
    ]
    crop_nodes = [
        helper.make_node("Add", ["cf_hw", const("cf_stride_m1", [STRIDE - 1])], ["cf_hw_cells_up"]),
        helper.make_node("Div", ["cf_hw_cells_up", const("cf_stride", [STRIDE])], ["cf_out_hw"]),
    ]
    starts, axes = const("cf_zeros2", [0, 0]), const("cf_axes_hw", [2, 3])
    crop_nodes += [helper.make_node("Slice", [inner, starts, "cf_out_hw", axes], [name])
                   for name, inner in zip(OUTPUT_NAMES, inner_outputs)]
    nodes = [*pad_nodes, *graph.node, *crop_nodes]
    del graph.node[:]
    graph.node.extend(nodes)

    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, "height", "width"]))
    del graph.output[:]
    for name, channels in zip(OUTPUT_NAMES, OUTPUT_CHANNELS):
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                          ["batch", channels, "out_height", "out_width"]))
    del graph.value_info[:]
    onnx.checker.check_model(model)
