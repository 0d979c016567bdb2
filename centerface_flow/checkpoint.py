"""CenterFace checkpoints: MindSpore ``.ckpt`` files that always carry the metadata needed to run them.

A checkpoint written by :func:`save_checkpoint` holds

* the network parameters under the model zoo's names (``base.need_fp1.0.features.0.weight`` ...);
* ``centerface_meta``: a JSON string with :class:`ModelMeta` (head width, backbone activation, the input the
  weights expect, the landmark origin of the decoder, where the weights came from);
* optional ``extra`` entries (optimizer state, epoch counters, ...) stored under the prefix ``__extra__.``.

Checkpoints trained by the MindSpore model zoo carry no metadata. :func:`load_checkpoint` accepts them, strips the
training wrappers' name prefixes (``network.centerface_network.``), drops optimizer entries, and assumes the
model zoo's conventions (ReLU6, BGR mean/std input, head width read from ``hm_head.0.weight``), saying so in a
log message.

MindSpore only reads files whose name ends in ``.ckpt``; both functions insist on that suffix.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.io import discarded_on_error, publish, remove_stale_staging, staging_prefix

__all__ = [
    "EXTRA_PREFIX",
    "META_KEY",
    "MODEL_ZOO_MEAN_BGR",
    "MODEL_ZOO_STD_BGR",
    "ModelMeta",
    "build_network",
    "load_checkpoint",
    "load_network",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

#: Key of the JSON metadata string inside a checkpoint.
META_KEY = "centerface_meta"
#: Prefix of the ``extra`` entries inside a checkpoint.
EXTRA_PREFIX = "__extra__."
#: The model zoo's test-time normalisation (``default_config.yaml``), per channel in B, G, R order, on pixel/255.
MODEL_ZOO_MEAN_BGR = (0.408, 0.447, 0.470)
MODEL_ZOO_STD_BGR = (0.289, 0.274, 0.278)

_INPUT_FORMATS = ("rgb255", "bgr_meanstd")
_ACTIVATIONS = ("relu", "relu6")
_LANDMARK_ORIGINS = ("cell", "center")
# Entries a model-zoo training checkpoint holds besides the network (optimizer state, counters).
_ZOO_NON_NETWORK = ("moments.", "moment1.", "moment2.", "global_step", "learning_rate", "beta1_power",
                    "beta2_power", "scale_sense", "current_iterator_step", "last_overflow_iterator_step",
                    "epoch_num", "step_num")


@dataclass(frozen=True)
class ModelMeta:
    """What a set of weights needs to be run correctly.

    Attributes:
        head_width: neck / head channels (24 released model, 64 model-zoo default).
        activation: backbone activation, ``"relu"`` or ``"relu6"``.
        input_format: ``"rgb255"`` = raw RGB 0-255, NCHW (released model); ``"bgr_meanstd"`` = BGR, divided by
            255, then ``(x - mean) / std`` per channel (model zoo).
        mean, std: per-channel normalisation for ``bgr_meanstd`` in B, G, R order (ignored for ``rgb255``).
        landmark_origin: where the decoder anchors landmarks, see ``centerface_flow.inference.decode``: ``"cell"``
        (model
            zoo targets: the integer heatmap cell) or ``"center"`` (the sub-pixel box centre; the released model).
        source: free text naming the origin of the weights.
    """

    head_width: int = 24
    activation: str = "relu6"
    input_format: str = "bgr_meanstd"
    mean: tuple[float, float, float] = MODEL_ZOO_MEAN_BGR
    std: tuple[float, float, float] = MODEL_ZOO_STD_BGR
    landmark_origin: str = "cell"
    source: str = ""

    def __post_init__(self) -> None:
        if int(self.head_width) <= 0:
            raise ValueError(f"head_width must be positive, got {self.head_width}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        if self.input_format not in _INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {_INPUT_FORMATS}, got {self.input_format!r}")
        if self.landmark_origin not in _LANDMARK_ORIGINS:
            raise ValueError(f"landmark_origin must be one of {_LANDMARK_ORIGINS}, got {self.landmark_origin!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean/std must be 3 values with std > 0, got {self.mean} / {self.std}")
        object.__setattr__(self, "head_width", int(self.head_width))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @classmethod
    def released(cls, source: str = "released centerface.onnx") -> ModelMeta:
        """Metadata of the authors' released model converted by ``centerface convert released``."""
        return cls(head_width=24, activation="relu", input_format="rgb255", mean=(0.0, 0.0, 0.0),
                   std=(1.0, 1.0, 1.0), landmark_origin="center", source=source)

    @classmethod
    def model_zoo(cls, head_width: int = 64, activation: str = "relu6", source: str = "") -> ModelMeta:
        """Metadata of weights trained with the model zoo's conventions (BGR mean/std input, cell landmarks)."""
        return cls(head_width=head_width, activation=activation, source=source)

    def with_input_of(self, other: ModelMeta) -> ModelMeta:
        """This metadata with ``other``'s pixel format (``input_format``, ``mean``, ``std``): weights taken from a
        model keep the input that model was trained on."""
        return dataclasses.replace(self, input_format=other.input_format, mean=other.mean, std=other.std)

    def to_json(self) -> str:
        return json.dumps({"format_version": 1, **dataclasses.asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "checkpoint") -> ModelMeta:
        try:
            data = json.loads(text)
            data.pop("format_version", None)
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where}: invalid {META_KEY!r} entry ({exc})") from exc


def _check_suffix(path: Path) -> None:
    if path.suffix != ".ckpt":
        raise UserError(f"{path}: MindSpore checkpoints must be named *.ckpt")


def _param_list(net_or_params: Any) -> list[dict]:
    """Network or ``{name: Parameter | Tensor | ndarray}`` -> MindSpore's ``[{"name", "data"}]`` list."""
    from mindspore import Tensor, nn

    if isinstance(net_or_params, nn.Cell):
        items = [(p.name, p) for p in net_or_params.get_parameters()]
    else:
        items = list(net_or_params.items())
    out = []
    for name, value in items:
        if name == META_KEY or name.startswith(EXTRA_PREFIX):
            raise ValueError(f"parameter name {name!r} is reserved")
        if isinstance(value, np.ndarray):
            value = Tensor(value)
        out.append({"name": name, "data": value})
    return out


def save_checkpoint(path: str | os.PathLike, net_or_param_dict: Any, meta: ModelMeta,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``net_or_param_dict`` (a Cell or ``{name: Parameter | Tensor | ndarray}``) with ``meta`` to ``path``.

    ``extra`` values may be str, int, float, bool, numpy arrays or MindSpore tensors. The file is written to a
    temporary ``*.ckpt`` next to ``path`` and renamed over it, so readers never see a partial checkpoint.
    Returns ``path``.
    """
    import mindspore as ms

    path = Path(path)
    _check_suffix(path)
    if path.is_symlink():  # replace the file it points to, never the link
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        raise UserError(f"{path}: exists and is not a regular file; a checkpoint replaces regular files only")
    path.parent.mkdir(parents=True, exist_ok=True)
    append: dict[str, Any] = {META_KEY: meta.to_json()}
    for key, value in (extra or {}).items():
        if isinstance(value, np.ndarray):
            value = ms.Tensor(value)
        append[EXTRA_PREFIX + key] = value
    remove_stale_staging(path)
    # MindSpore appends ".ckpt" to a name without it, so the staging name ends with it
    fd, tmp = tempfile.mkstemp(prefix=staging_prefix(path), suffix=".ckpt", dir=path.parent)
    os.close(fd)
    with discarded_on_error(tmp, path):
        ms.save_checkpoint(_param_list(net_or_param_dict), tmp, append_dict=append)
        publish(tmp, path)  # MindSpore leaves its checkpoints 0400
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value
    array = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
    return array.item() if array.ndim == 0 else array


def _strip_zoo_prefix(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    anchors = [k for k in raw if k.endswith("hm_head.0.weight")]
    if not anchors:
        raise UserError(f"{path}: not a CenterFace checkpoint (no {META_KEY!r} entry and no hm_head.0.weight)")
    prefix = anchors[0][: -len("hm_head.0.weight")]
    params, dropped = {}, []
    for key, value in raw.items():
        if key.startswith(prefix) and not key.startswith(_ZOO_NON_NETWORK):
            params[key[len(prefix):]] = value
        else:
            dropped.append(key)
    if dropped:
        log.info("%s: ignored %d non-network entries (optimizer state etc.), e.g. %s", path, len(dropped),
                 dropped[:3])
    return params


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], ModelMeta, dict[str, Any]]:
    """Read a checkpoint -> ``(param_dict {name: mindspore.Parameter}, meta, extra)``.

    ``extra`` maps the keys given to :func:`save_checkpoint` to str / Python scalars / numpy arrays. A
    checkpoint without metadata is taken to be a model-zoo checkpoint (see module docstring).
    """
    import mindspore as ms

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    _check_suffix(path)
    try:
        raw = ms.load_checkpoint(str(path))
    except (ValueError, RuntimeError, OSError) as exc:
        raise UserError(f"{path}: cannot read checkpoint ({exc})") from exc
    extra = {k[len(EXTRA_PREFIX):]: _plain(v) for k, v in raw.items() if k.startswith(EXTRA_PREFIX)}
    if META_KEY in raw:
        meta = ModelMeta.from_json(str(raw[META_KEY]), where=str(path))
        params = {k: v for k, v in raw.items() if k != META_KEY and not k.startswith(EXTRA_PREFIX)}
        return params, meta, extra
    params = _strip_zoo_prefix(raw, path)
    head_width = int(params["hm_head.0.weight"].shape[1])
    meta = ModelMeta.model_zoo(head_width=head_width, source=f"model-zoo checkpoint {path.name} (no metadata)")
    log.warning("%s carries no %s; assuming model-zoo conventions: head width %d (from hm_head.0.weight), "
                "ReLU6 backbone, BGR input normalised with mean %s / std %s, landmarks anchored at the cell",
                path, META_KEY, head_width, meta.mean, meta.std)
    return params, meta, extra


def build_network(meta: ModelMeta):
    """An uninitialised-weights ``CenterFace`` shaped as ``meta`` says."""
    from centerface_flow.nets.centerface import CenterFace

    return CenterFace(head_width=meta.head_width, activation=meta.activation, init_seed=None)


def load_network(path: str | os.PathLike):
    """Checkpoint -> ``(net in eval mode, meta)``. Missing or surplus network parameters raise ``UserError``."""
    import mindspore as ms

    params, meta, _ = load_checkpoint(path)
    net = build_network(meta)
    expected = {p.name: tuple(p.shape) for p in net.get_parameters()}
    missing = sorted(set(expected) - set(params))
    surplus = sorted(set(params) - set(expected))
    wrong = sorted(k for k in expected.keys() & params.keys() if tuple(params[k].shape) != expected[k])
    if missing or surplus or wrong:
        details = "; ".join(
            f"{label}: {names[:5]}{' ...' if len(names) > 5 else ''}"
            for label, names in (("missing", missing), ("unexpected", surplus), ("wrong shape", wrong)) if names
        )
        raise UserError(f"{path}: parameters do not fit CenterFace(head_width={meta.head_width}): {details}")
    ms.load_param_into_net(net, params, strict_load=True)
    net.set_train(False)
    return net, meta
