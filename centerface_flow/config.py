"""The workflow configuration: schema validation with errors that name the key, defaults, and epoch selection.

Used by ``rules/common.smk`` at parse time: it imports yaml, jsonschema and the settings' dataclasses (numpy),
never MindSpore.
"""
from __future__ import annotations

import copy
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from centerface_flow.errors import UserError

__all__ = ["load_schema", "select_epochs", "validate_config"]


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The JSON Schema of ``config.yaml`` shipped in the package, with the defaults and enumerations of the sections
    defined by :mod:`centerface_flow.settings` filled in from their dataclasses."""
    import yaml

    from centerface_flow.settings import enums, section_defaults, sections

    text = resources.files("centerface_flow").joinpath("schemas/config.schema.yaml").read_text(encoding="utf-8")
    schema = yaml.safe_load(text)
    for section in sections():
        properties = schema["properties"][section]["properties"]
        for key, default in section_defaults(section).items():
            properties[key]["default"] = default
    for (section, key), values in enums().items():
        schema["properties"][section]["properties"][key]["enum"] = list(values)
    return schema


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def _describe(error, schema: dict) -> str:
    """One line per schema violation, naming the config key as ``section.key``."""
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = f"{where}." if where else ""
        return "; ".join(f"unknown key '{prefix}{key}' (allowed here: {', '.join(allowed)})" for key in unknown)
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        prefix = f"{where}." if where else ""
        return "; ".join(f"missing key '{prefix}{key}'" for key in missing) or error.message
    return f"key '{where}': {error.message}"


def _fill_defaults(config: dict, schema: dict) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(config[key], sub)


def validate_config(config: dict[str, Any], source: str = "config.yaml") -> dict[str, Any]:
    """Validate ``config`` against the schema; return a copy with defaults filled in.

    Raises :class:`UserError` listing every problem, each naming its key (``postprocess.nms_iou``).
    """
    import jsonschema

    schema = load_schema()
    if not isinstance(config, dict):
        raise UserError(f"{source}: the configuration must be a mapping of sections, got {type(config).__name__}")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (_key_path(e), e.validator))
    if errors:
        lines = "\n  ".join(_describe(e, schema) for e in errors)
        raise UserError(f"{source} is not valid:\n  {lines}")
    filled = copy.deepcopy(config)
    _fill_defaults(filled, schema)
    return filled


def select_epochs(spec: str | list[int], epochs: int) -> list[int]:
    """The epochs (1-based) the test stage runs on.

    ``spec`` is ``"all"``, a range ``"89-140"`` (inclusive, clipped to the trained epochs), ``"every:k"`` (every
    k-th epoch, always including the last) or an explicit list. An empty selection is an error.
    """
    if isinstance(spec, list):
        chosen = sorted(set(spec))
        beyond = [e for e in chosen if e > epochs]
        if beyond:
            raise UserError(f"key 'test.epochs': epochs {beyond} are beyond train.epochs={epochs}")
    elif spec == "all":
        chosen = list(range(1, epochs + 1))
    elif spec.startswith("every:"):
        step = int(spec.split(":", 1)[1])
        chosen = sorted(set(range(step, epochs + 1, step)) | {epochs})
    else:
        first, last = (int(v) for v in spec.split("-"))
        chosen = [e for e in range(first, last + 1) if 1 <= e <= epochs]
    if not chosen:
        raise UserError(f"key 'test.epochs': {spec!r} selects no epoch out of 1..{epochs}")
    return chosen
