"""Pretrained backbones: torchvision ``mobilenet_v2`` ImageNet weights, or the backbone of a converted checkpoint.

torchvision names map onto ours (the model zoo's ``convert_weight_mobilenetv2.py`` name map, written out):

* ``features.i`` -> ``base.need_fpG.j`` with features 0-3 in ``need_fp1``, 4-6 in ``need_fp2``, 7-13 in
  ``need_fp3``, 14-17 in ``need_fp4``;
* ``features.0.0`` / ``features.0.1`` -> ``...0.features.0`` (conv) / ``...0.features.1`` (BN);
* ``features.1.conv.{0.0, 0.1, 1, 2}`` -> ``conv.{0.features.0, 0.features.1, 1, 2}``;
* ``features.k.conv.{0.0, 0.1, 1.0, 1.1, 2, 3}`` -> ``conv.{0.features.0, 0.features.1, 1.features.0,
  1.features.1, 2, 3}`` (k >= 2);
* BN ``weight``, ``bias``, ``running_mean``, ``running_var`` -> ``gamma``, ``beta``, ``moving_mean``,
  ``moving_variance``.

``features.18`` (the 1280-channel conv), ``classifier.*`` and ``num_batches_tracked`` are known and not used;
a ``module.`` prefix (DataParallel) is stripped. Any other key, a missing key or a wrong shape fails naming it.
The ``.pth`` is read by the restricted unpickler of ``centerface_flow.convert.torch_pickle`` (no torch needed,
no pickled code can run).

A backbone checkpoint holds only ``base.*`` parameters, ``extra["contents"] == "backbone"`` and a ModelMeta whose
``activation`` says which activation the weights were trained with.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError

__all__ = [
    "backbone_from_checkpoint",
    "backbone_from_torchvision",
    "convert_backbone",
    "load_pretrained_backbone",
    "torchvision_keys",
]

log = logging.getLogger(__name__)

_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def _layout() -> list[tuple[int, int, int, int, int, int]]:
    """Per torchvision feature 1..17: (feature index, group 1-4, index in group, in_ch, out_ch, expansion)."""
    from centerface_flow.nets.layout import INVERTED_RESIDUAL_SETTING, TAPS

    rows, feature, group, local, in_ch = [], 1, 1, 1, 32
    for stage, (t, c, n, _s) in enumerate(INVERTED_RESIDUAL_SETTING):
        for _ in range(n):
            rows.append((feature, group, local, in_ch, c, t))
            feature, local, in_ch = feature + 1, local + 1, c
        if stage in TAPS:
            group, local = group + 1, 0
    return rows


def torchvision_keys() -> dict[str, tuple[tuple[int, ...], str | None]]:
    """Every key of torchvision's ``mobilenet_v2().state_dict()`` -> (shape, our parameter name or None if unused)."""
    keys: dict[str, tuple[tuple[int, ...], str | None]] = {}

    def conv(tv: str, ours: str | None, shape: tuple[int, ...]) -> None:
        keys[f"{tv}.weight"] = (shape, None if ours is None else f"{ours}.weight")

    def bn(tv: str, ours: str | None, ch: int) -> None:
        for tv_name, ms_name in _BN.items():
            keys[f"{tv}.{tv_name}"] = ((ch,), None if ours is None else f"{ours}.{ms_name}")
        keys[f"{tv}.num_batches_tracked"] = ((), None)

    conv("features.0.0", "base.need_fp1.0.features.0", (32, 3, 3, 3))
    bn("features.0.1", "base.need_fp1.0.features.1", 32)
    for feature, group, local, in_ch, out_ch, t in _layout():
        tv, ours = f"features.{feature}.conv", f"base.need_fp{group}.{local}.conv"
        hidden = in_ch * t
        if t == 1:
            conv(f"{tv}.0.0", f"{ours}.0.features.0", (hidden, 1, 3, 3))
            bn(f"{tv}.0.1", f"{ours}.0.features.1", hidden)
            conv(f"{tv}.1", f"{ours}.1", (out_ch, hidden, 1, 1))
            bn(f"{tv}.2", f"{ours}.2", out_ch)
        else:
            conv(f"{tv}.0.0", f"{ours}.0.features.0", (hidden, in_ch, 1, 1))
            bn(f"{tv}.0.1", f"{ours}.0.features.1", hidden)
            conv(f"{tv}.1.0", f"{ours}.1.features.0", (hidden, 1, 3, 3))
            bn(f"{tv}.1.1", f"{ours}.1.features.1", hidden)
            conv(f"{tv}.2", f"{ours}.2", (out_ch, hidden, 1, 1))
            bn(f"{tv}.3", f"{ours}.3", out_ch)
    conv("features.18.0", None, (1280, 320, 1, 1))
    bn("features.18.1", None, 1280)
    keys["classifier.1.weight"] = ((1000, 1280), None)
    keys["classifier.1.bias"] = ((1000,), None)
    return keys


def backbone_from_torchvision(state: dict, where: str = "state dict") -> dict[str, np.ndarray]:
    """torchvision ``mobilenet_v2`` state dict {name: array} -> {our ``base.*`` name: float32 array}."""
    if not isinstance(state, dict):
        raise UserError(f"{where}: expected a state dict (name -> tensor), got {type(state).__name__}")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {(k.removeprefix("module.")): v for k, v in state.items()}
    spec = torchvision_keys()
    unexpected = sorted(k for k in state if k not in spec)
    if unexpected:
        raise UserError(f"{where}: unexpected key(s) for torchvision mobilenet_v2: {', '.join(unexpected[:5])}")
    out: dict[str, np.ndarray] = {}
    missing = []
    for key, (shape, ours) in spec.items():
        if ours is None:
            continue
        if key not in state:
            missing.append(key)
            continue
        value = np.asarray(state[key])
        if tuple(value.shape) != shape:
            raise UserError(f"{where}: {key} has shape {tuple(value.shape)}, expected {shape}")
        out[ours] = value.astype(np.float32)
    if missing:
        raise UserError(f"{where}: missing key(s) for torchvision mobilenet_v2: {', '.join(missing[:5])}"
                        + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
    return out


def backbone_from_checkpoint(path: str | os.PathLike):
    """A CenterFace checkpoint (e.g. the converted released model) -> ({``base.*``: float32 array}, its meta)."""
    from centerface_flow.checkpoint import load_checkpoint

    params, meta, _ = load_checkpoint(path)
    base = {k: v.asnumpy().astype(np.float32) for k, v in params.items() if k.startswith("base.")}
    if not base:
        raise UserError(f"{path}: checkpoint has no backbone (base.*) parameters")
    return base, meta


def _check_complete(base: dict[str, np.ndarray], where: str) -> None:
    from centerface_flow.nets.mobilenetv2 import MobileNetV2

    expected = {f"base.{p.name}": tuple(p.shape) for p in MobileNetV2().get_parameters()}
    missing = sorted(set(expected) - set(base))
    extra = sorted(set(base) - set(expected))
    wrong = sorted(k for k in expected if k in base and tuple(base[k].shape) != expected[k])
    if missing or extra or wrong:
        raise UserError(f"{where}: backbone does not fit MobileNetV2 (missing {missing[:3]}, unexpected "
                        f"{extra[:3]}, wrong shape {wrong[:3]})")


def convert_backbone(out_path: str | os.PathLike, pth: str | os.PathLike | None = None,
                     from_ckpt: str | os.PathLike | None = None) -> Path:
    """Write a backbone checkpoint from a torchvision ``.pth`` or from a CenterFace checkpoint's backbone."""
    from centerface_flow.checkpoint import ModelMeta, save_checkpoint

    if (pth is None) == (from_ckpt is None):
        raise UserError("give exactly one of --pth and --from-ckpt")
    if pth is not None:
        from centerface_flow.convert.torch_pickle import load_torch_file

        base = backbone_from_torchvision(load_torch_file(pth), where=str(pth))
        meta = ModelMeta.model_zoo(activation="relu6", source=f"torchvision mobilenet_v2 {Path(pth).name} (backbone)")
    else:
        base, source_meta = backbone_from_checkpoint(from_ckpt)
        # the backbone keeps the pixel format it was trained on (raw RGB 0-255 for the released model)
        meta = ModelMeta.model_zoo(activation=source_meta.activation,
                                   source=f"backbone of {Path(from_ckpt).name} ({source_meta.source})")
        meta = meta.with_input_of(source_meta)
    _check_complete(base, str(pth or from_ckpt))
    path = save_checkpoint(out_path, base, meta, extra={"contents": "backbone"})
    log.info("wrote backbone (%d tensors, trained with %s) -> %s", len(base), meta.activation.upper(), path)
    return path


def load_pretrained_backbone(net, path: str | os.PathLike):
    """Load the ``base.*`` parameters of a backbone (or full) checkpoint into CenterFace ``net``; returns its meta.

    Warns when the checkpoint's activation differs from the network's.
    """
    import mindspore as ms

    from centerface_flow.checkpoint import load_checkpoint

    params, meta, _ = load_checkpoint(path)
    base = {k: v for k, v in params.items() if k.startswith("base.")}
    _check_complete({k: v.asnumpy() for k, v in base.items()}, str(path))
    if getattr(net, "activation", meta.activation) != meta.activation:
        log.warning("%s was trained with %s but the network uses %s", path, meta.activation, net.activation)
    not_loaded, _ = ms.load_param_into_net(net, base, strict_load=True)
    if any(name.startswith("base.") for name in not_loaded):
        raise UserError(f"{path}: backbone parameters not loaded: {[n for n in not_loaded if n.startswith('base.')][:3]}")
    return meta
