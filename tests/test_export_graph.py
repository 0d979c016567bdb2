"""The dynamic-shape interface of exported ONNX graphs, on a tiny stand-in graph run by ONNX Runtime (no MindSpore):
padding inside the graph and the cropped outputs equal the network run on the input padded outside it."""
import numpy as np
import pytest

from centerface_flow.export import graph as export_graph


def tiny_graph(fixed: bool, up_stride: int = 2):
    """Stride-4 stand-in for the network: 4x4/4 conv, 3x3 conv (moves values across positions, so padding shows
    near the edges), a stride-2 transposed conv with MindSpore's explicit output_shape and back, four outputs."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    dims = [1, 3, 64, 64] if fixed else ["n", 3, "h", "w"]
    up = {"output_shape": [1, 15, 32, 32]} if fixed else {}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["f1"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Relu", ["f1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["f2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["f2", "wt"], ["up"], kernel_shape=[up_stride, up_stride],
                         strides=[up_stride, up_stride], **up),
        helper.make_node("Conv", ["up", "wd"], ["down"], kernel_shape=[up_stride, up_stride],
                         strides=[up_stride, up_stride]),
        helper.make_node("Split", ["down"], ["o1", "o2", "o3", "o4"], axis=1, split=[1, 2, 2, 10]),
    ]
    outputs = [helper.make_tensor_value_info(f"o{k + 1}", TensorProto.FLOAT, None) for k in range(4)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)], outputs,
                              [weight("w1", 15, 3, 4, 4), weight("b1", 15), weight("w2", 15, 15, 3, 3),
                               weight("wt", 15, 15, up_stride, up_stride), weight("wd", 15, 15, up_stride, up_stride)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)


def session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_output_grid_covers_the_input():
    assert export_graph.output_hw(480, 640) == (120, 160)
    assert export_graph.output_hw(481, 643) == (121, 161)
    assert export_graph.output_hw(1, 3) == (1, 1)


def test_dynamic_graph_equals_the_network_on_padded_input():
    model = tiny_graph(fixed=True)
    export_graph.name_onnx_io(model)
    export_graph.make_onnx_dynamic(model)
    dynamic, reference = session(model), session(tiny_graph(fixed=False))
    assert [i.name for i in dynamic.get_inputs()] == [export_graph.INPUT_NAME]
    assert dynamic.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    assert [o.name for o in dynamic.get_outputs()] == list(export_graph.OUTPUT_NAMES)
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 64, 64), (2, 3, 37, 90), (1, 3, 65, 33), (1, 3, 1, 1)]:
        x = rng.uniform(0, 255, shape).astype(np.float32)
        outs = dynamic.run(None, {export_graph.INPUT_NAME: x})
        refs = export_graph.pad_reference(lambda p: reference.run(None, {"x": p}), x)
        oh, ow = export_graph.output_hw(*shape[2:])
        assert [o.shape for o in outs] == [(shape[0], c, oh, ow) for c in (1, 2, 2, 10)]
        for out, ref in zip(outs, refs):
            np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # what is in the padding reaches the edge cells, so the comparison above checks the zeros
    x = rng.uniform(0, 255, (1, 3, 37, 90)).astype(np.float32)
    other = np.full((1, 3, 64, 96), 255.0, np.float32)
    other[:, :, :37, :90] = x
    assert not np.allclose(reference.run(None, {"x": other})[0][:, :, :10, :23], dynamic.run(None, {export_graph.INPUT_NAME: x})[0])


def test_other_transposed_convs_are_refused():
    model = tiny_graph(fixed=True, up_stride=3)
    export_graph.name_onnx_io(model)
    from centerface_flow.errors import UserError

    with pytest.raises(UserError, match="stride-2 kernel-2"):
        export_graph.make_onnx_dynamic(model)
