"""Where every setting of ``config.yaml`` is defined: one typed dataclass per section that the package acts on.

The dataclass fields are the settings' one definition. From them derive:

* the schema's defaults and enumerations (:func:`centerface_flow.config.load_schema` fills them in, so
  ``schemas/config.schema.yaml`` states only types and ranges for these sections);
* the command-line options' defaults (each ``centerface`` command reads them from the same dataclass);
* what the workflow hands to each job (``params:`` are the validated sections, turned into these dataclasses by
  the job's script with :func:`from_section`).

A value a dataclass refuses is reported under the name the user gave it: ``config.yaml infer.min_score`` from the
workflow (:func:`from_section`), ``--min-score`` from the command line (:func:`from_args`).

``tests/test_settings.py`` walks every key of every section and checks that the three agree.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from centerface_flow.errors import UserError

__all__ = ["BEST_METRICS", "BestSettings", "EvaluateSettings", "enums", "from_args", "from_section", "section_defaults",
           "sections"]

#: ``best.metric`` choices: one AP setting, or their sum.
BEST_METRICS = ("easy", "medium", "hard", "sum")


@dataclass(frozen=True)
class EvaluateSettings:
    """WIDER FACE evaluation: match IoU (0.5 official; the model zoo used 0.4) and the protocol's semantics."""

    iou: float = 0.5
    protocol: str = "python"

    def __post_init__(self) -> None:
        from centerface_flow.evaluation.core import PROTOCOLS

        if not 0 < self.iou <= 1:
            raise UserError(f"iou: must be in (0, 1], got {self.iou!r}")
        if self.protocol not in PROTOCOLS:
            raise UserError(f"protocol: must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")


@dataclass(frozen=True)
class BestSettings:
    """How ``results/best.txt`` picks the model that is exported."""

    metric: str = "hard"
    exclude_released: bool = False

    def __post_init__(self) -> None:
        if self.metric not in BEST_METRICS:
            raise UserError(f"metric: must be one of {', '.join(BEST_METRICS)}, got {self.metric!r}")


@lru_cache(maxsize=1)
def sections() -> dict[str, type]:
    """config.yaml section -> the dataclass that defines its keys (imported on first use: they need numpy)."""
    from centerface_flow.data.demo import DemoSpec
    from centerface_flow.export import ExportSettings
    from centerface_flow.inference.detect import InferenceConfig
    from centerface_flow.postprocess.predictions import PostprocessConfig
    from centerface_flow.training.train import TrainConfig

    return {"demo": DemoSpec, "train": TrainConfig, "infer": InferenceConfig, "postprocess": PostprocessConfig,
            "evaluate": EvaluateSettings, "best": BestSettings, "export": ExportSettings}


@lru_cache(maxsize=1)
def enums() -> dict[tuple[str, str], tuple]:
    """(section, key) -> the allowed values, each defined next to the code that acts on it."""
    from centerface_flow.data.demo import DEMO_DOMAINS
    from centerface_flow.evaluation.core import PROTOCOLS
    from centerface_flow.inference.decode import DECODE_MODES
    from centerface_flow.inference.preprocess import SIZE_POLICIES
    from centerface_flow.postprocess.nms import NMS_METHODS
    from centerface_flow.training.train import ACTIVATIONS, INITS

    return {("demo", "domain"): DEMO_DOMAINS, ("train", "init"): INITS, ("train", "activation"): ACTIVATIONS,
            ("infer", "size"): SIZE_POLICIES, ("infer", "decode"): DECODE_MODES,
            ("postprocess", "nms"): tuple(NMS_METHODS), ("evaluate", "protocol"): PROTOCOLS,
            ("best", "metric"): BEST_METRICS}


def section_defaults(section: str) -> dict:
    """{key: default} of a section's dataclass (fields that are derived, ``init=False``, left out)."""
    out = {}
    for f in dataclasses.fields(sections()[section]):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _named(cls: type, values: dict, name_of) -> Any:
    """``cls(**values)``; a :class:`UserError` about one of its fields (``"<field>: why"``) is raised again with the
    field named by ``name_of(field)``."""
    try:
        return cls(**values)
    except UserError as exc:
        key, sep, why = str(exc).partition(": ")
        if sep and key in {f.name for f in dataclasses.fields(cls)}:
            raise UserError(f"{name_of(key)}: {why}") from None
        raise


def from_section(section: str, values: Mapping[str, Any]) -> Any:
    """The dataclass of config.yaml section ``section`` built from its (validated) values; a value it refuses is
    named ``config.yaml <section>.<key>``."""
    return _named(sections()[section], dict(values), lambda key: f"config.yaml {section}.{key}")


def from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """``cls`` built from the command-line options of the same names (``--min-score`` is ``min_score``) plus
    ``overrides``; a value it refuses is named by its option."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and hasattr(args, f.name)}
    return _named(cls, {**values, **overrides}, lambda key: "--" + key.replace("_", "-"))
