"""Backbone conversion: torchvision mobilenet_v2 key set -> our backbone; clear errors; released backbone reuse.

The full torchvision structure (314 tensors, ~14 MB) is not committed: ``write_torch_zip`` below writes it in
torch's zip+pickle layout without torch, and is first checked against the torch-written fixture.
"""
from __future__ import annotations

import collections
import pickle
import pickletools
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from centerface_flow import runtime
from centerface_flow.convert.backbone import backbone_from_torchvision, torchvision_keys
from centerface_flow.convert.torch_pickle import load_torch_file
from centerface_flow.errors import UserError

DATA = Path(__file__).parent / "data"
_STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
                  np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage",
                  np.dtype("int32"): "IntStorage", np.dtype("uint8"): "ByteStorage", np.dtype("bool"): "BoolStorage"}


def write_torch_zip(path: Path, state: dict[str, np.ndarray], monkeypatch) -> None:
    """Write ``state`` as ``torch.save`` would (zip: data.pkl protocol 2, data/<key>, version, byteorder)."""
    torch_mod, utils_mod = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # only pickled by reference, never called
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in set(_STORAGE_NAMES.values()):
        setattr(torch_mod, name, type(name, (), {"__module__": "torch"}))
    torch_mod._utils = utils_mod
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)

    class Storage:
        def __init__(self, key: str, array: np.ndarray) -> None:
            self.key, self.array = key, np.ascontiguousarray(array).ravel()

    class Tensor:
        def __init__(self, storage: Storage, shape: tuple[int, ...]) -> None:
            self.storage, self.shape = storage, shape

        def __reduce__(self):
            strides = tuple(int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))
            return (_rebuild_tensor_v2, (self.storage, 0, self.shape, strides, False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                kind = getattr(torch_mod, _STORAGE_NAMES[obj.array.dtype])
                return ("storage", kind, obj.key, "cpu", int(obj.array.size))
            return None

    storages = {str(i): Storage(str(i), np.asarray(v)) for i, v in enumerate(state.values())}
    tensors = collections.OrderedDict(
        (k, Tensor(storages[str(i)], tuple(np.shape(v)))) for i, (k, v) in enumerate(state.items()))
    buffer = __import__("io").BytesIO()
    Pickler(buffer, protocol=2).dump(tensors)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", b"little")
        for key, storage in storages.items():
            archive.writestr(f"archive/data/{key}", storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
        archive.writestr("archive/version", b"3\n")


def _globals(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    return {str(arg) for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def test_writer_matches_torch_written_fixture(tmp_path, monkeypatch):
    expected = {k: v for k, v in np.load(DATA / "tiny_state_expected.npz").items() if k != "bf16"}
    ours = tmp_path / "ours.pth"
    write_torch_zip(ours, expected, monkeypatch)
    monkeypatch.undo()
    assert "torch" not in sys.modules or hasattr(sys.modules["torch"], "__file__")
    a, b = load_torch_file(ours), load_torch_file(DATA / "tiny_state.pth")
    for key, value in expected.items():
        assert a[key].dtype == b[key].dtype == value.dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert _globals(ours) <= _globals(DATA / "tiny_state.pth")
    with zipfile.ZipFile(ours) as x, zipfile.ZipFile(DATA / "tiny_state.pth") as y:
        layout = {n.split("/", 1)[1].split("/")[0] for n in x.namelist()}
        assert layout <= {n.split("/", 1)[1].split("/")[0] for n in y.namelist()}


def _torchvision_state(rng) -> dict[str, np.ndarray]:
    state = {}
    for key, (shape, _) in torchvision_keys().items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(7, np.int64)
        else:
            state[key] = rng.standard_normal(shape).astype(np.float32)
    return state


@pytest.fixture(scope="module")
def ms():
    return runtime.mindspore("pynative")


def test_full_torchvision_structure(ms, tmp_path, monkeypatch):
    from centerface_flow.checkpoint import load_checkpoint
    from centerface_flow.convert.backbone import convert_backbone, load_pretrained_backbone
    from centerface_flow.nets.centerface import CenterFace

    state = _torchvision_state(np.random.default_rng(0))
    assert len(state) == 314
    pth = tmp_path / "mobilenet_v2.pth"
    write_torch_zip(pth, state, monkeypatch)
    monkeypatch.undo()
    ckpt = convert_backbone(tmp_path / "backbone.ckpt", pth=pth)
    params, meta, extra = load_checkpoint(ckpt)
    assert extra == {"contents": "backbone"} and meta.activation == "relu6"
    net = CenterFace(head_width=64, activation="relu6")
    expected = {p.name: tuple(p.shape) for p in net.get_parameters() if p.name.startswith("base.")}
    assert {k: tuple(v.shape) for k, v in params.items()} == expected  # every backbone tensor, right shape
    pairs = {
        "features.0.0.weight": "base.need_fp1.0.features.0.weight",
        "features.0.1.running_var": "base.need_fp1.0.features.1.moving_variance",
        "features.1.conv.1.weight": "base.need_fp1.1.conv.1.weight",
        "features.3.conv.1.1.bias": "base.need_fp1.3.conv.1.features.1.beta",
        "features.4.conv.0.0.weight": "base.need_fp2.0.conv.0.features.0.weight",
        "features.13.conv.3.weight": "base.need_fp3.6.conv.3.gamma",
        "features.17.conv.2.weight": "base.need_fp4.3.conv.2.weight",
    }
    for tv, ours in pairs.items():
        np.testing.assert_array_equal(params[ours].asnumpy(), state[tv], err_msg=tv)
    load_pretrained_backbone(net, ckpt)
    np.testing.assert_array_equal(net.parameters_dict()["base.need_fp4.3.conv.2.weight"].asnumpy(),
                                  state["features.17.conv.2.weight"])


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_bad_state_dict_names_the_key(change):
    state = _torchvision_state(np.random.default_rng(1))
    if change == "missing":
        del state["features.9.conv.1.0.weight"]
        key = "features.9.conv.1.0.weight"
    elif change == "extra":
        state["features.19.weight"] = np.zeros(3, np.float32)
        key = "features.19.weight"
    else:
        state["features.5.conv.2.weight"] = np.zeros((32, 192, 3, 3), np.float32)
        key = "features.5.conv.2.weight"
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        backbone_from_torchvision(state, where="w.pth")


def test_optional_keys_and_prefix():
    state = _torchvision_state(np.random.default_rng(2))
    state = {f"module.{k}": v for k, v in state.items()
             if not k.startswith(("classifier", "features.18")) and "num_batches" not in k}
    assert len(backbone_from_torchvision(state)) == 255


def test_backbone_of_converted_released_model(ms, released_onnx, tmp_path):
    from centerface_flow.checkpoint import load_checkpoint
    from centerface_flow.convert.backbone import convert_backbone
    from centerface_flow.convert.released import convert_released

    full = convert_released(released_onnx, tmp_path / "released.ckpt")
    ckpt = convert_backbone(tmp_path / "bb.ckpt", from_ckpt=full)
    params, meta, extra = load_checkpoint(ckpt)
    source, _, _ = load_checkpoint(full)
    assert meta.activation == "relu" and extra["contents"] == "backbone"
    assert meta.input_format == "rgb255"  # the released backbone was trained on raw RGB 0-255
    assert set(params) == {k for k in source if k.startswith("base.")} and len(params) == 255
    np.testing.assert_array_equal(params["base.need_fp3.2.conv.1.features.0.weight"].asnumpy(),
                                  source["base.need_fp3.2.conv.1.features.0.weight"].asnumpy())
    with pytest.raises(UserError, match="exactly one"):
        convert_backbone(tmp_path / "x.ckpt")
