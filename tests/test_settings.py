"""One definition per setting: the schema, the command-line options and the workflow's params all derive from the
section dataclasses of centerface_flow.settings. Changing a default in one place only makes these tests fail."""
from __future__ import annotations

import dataclasses

import pytest

from centerface_flow.cli import build_parser
from centerface_flow.config import load_schema, validate_config
from centerface_flow.settings import enums, section_defaults, sections

#: command-line options whose default must be the section's: command, arguments it needs, section, {key: dest}
COMMANDS = {
    "demo": (["--out", "o"], "demo", {k: k for k in ("domain", "train_images", "val_images", "seed")}),
    "infer": (["--weights", "w.ckpt", "--images", "i", "--out", "o.npz"], "infer",
              {"size": "size", "decode": "decode", "min_score": "min_score", "top_k": "top_k", "tta": "tta",
               "flip": "flip", "scales": "scales", "max_side": "max_side"}),
    "postprocess": (["c.npz", "--out", "t"], "postprocess",
                    {k: k for k in ("score_threshold", "nms", "nms_iou", "nms_plus_one", "box_voting", "sigma",
                                    "soft_threshold", "max_dets", "clip")}),
    "evaluate": (["--pred", "p", "--gt", "g"], "evaluate", {"iou": "iou", "protocol": "protocol"}),
    "export": (["--weights", "w.ckpt", "--format", "onnx", "--out", "o", "--image", "i"], "export",
               {"height": "height", "width": "width", "dynamic": "dynamic"}),
}


def minimal_config() -> dict:
    return {"dataset": {"train_images": "", "train_labels": "", "val_images": "", "val_ground_truth": ""},
            "weights": {}, "train": {"init": "released", "epochs": 1}, "test": {}, "infer": {}, "postprocess": {},
            "evaluate": {}, "best": {}, "export": {}}


@pytest.mark.parametrize("section", sorted(sections()))
def test_schema_keys_and_defaults_are_the_dataclass_fields(section):
    fields = {f.name for f in dataclasses.fields(sections()[section]) if f.init}
    properties = load_schema()["properties"][section]["properties"]
    assert set(properties) == fields, f"schema and {sections()[section].__name__} disagree on the keys"
    filled = validate_config(minimal_config())[section]
    expected = section_defaults(section)
    for key in fields - set(minimal_config().get(section, {})):  # an absent section is filled too
        assert filled[key] == expected[key], f"{section}.{key}"
    # the workflow hands the filled section to the dataclass: it must accept it as is
    if section == "train":
        sections()[section].from_dict({**filled, "init_path": "x.ckpt"})
    else:
        sections()[section](**filled)


def test_every_train_config_key_passes_the_schema():
    config = minimal_config()
    config["train"] = {k: v for k, v in section_defaults("train").items() if v is not None}
    config["train"].update(init="checkpoint", init_path="some.ckpt", freeze_bn=True)
    assert validate_config(config)["train"]["freeze_bn"] is True


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_line_defaults_are_the_sections(command):
    argv, section, keys = COMMANDS[command]
    args = build_parser().parse_args([command, *argv])
    defaults = section_defaults(section)
    for key, dest in keys.items():
        value = getattr(args, dest)
        assert (list(value) if isinstance(value, tuple) else value) == defaults[key], f"--{dest} vs {section}.{key}"


def test_train_command_shows_the_train_defaults():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        if action.dest in section_defaults("train") and action.help:
            assert repr(section_defaults("train")[action.dest]) in action.help


def test_enumerations_come_from_the_code():
    schema = load_schema()["properties"]
    for (section, key), values in enums().items():
        assert schema[section]["properties"][key]["enum"] == list(values)
    parser = build_parser()
    choices = {}
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            if action.choices is not None:
                choices[(sub.prog.split()[-1], action.dest)] = list(action.choices)
    assert choices[("infer", "size")] == list(enums()[("infer", "size")])
    assert choices[("infer", "decode")] == list(enums()[("infer", "decode")])
    assert choices[("postprocess", "nms")] == list(enums()[("postprocess", "nms")])
    assert choices[("evaluate", "protocol")] == list(enums()[("evaluate", "protocol")])


def test_library_errors_name_the_key():
    from centerface_flow.errors import UserError
    from centerface_flow.inference.detect import InferenceConfig
    from centerface_flow.postprocess.predictions import PostprocessConfig

    with pytest.raises(UserError, match="min_score"):
        InferenceConfig(min_score=2.0)
    with pytest.raises(UserError, match="nms_iou"):
        PostprocessConfig(nms_iou=1.5)
    with pytest.raises(UserError, match="soft_threshold"):
        PostprocessConfig(soft_threshold=float("nan"))


@pytest.mark.parametrize(("command", "option", "value", "named"), [
    ("infer", "--min-score", "2", "--min-score"),
    ("postprocess", "--nms-iou", "1.5", "--nms-iou"),
    ("evaluate", "--iou", "3", "--iou"),
])
def test_command_line_errors_name_the_option(command, option, value, named, capsys):
    from centerface_flow.cli import main

    argv, _, _ = COMMANDS[command]
    assert main([command, *argv, option, value]) == 2
    assert f"centerface {command}: error: {named}: must be" in capsys.readouterr().err


@pytest.mark.parametrize(("section", "values", "named"), [
    ("infer", {"min_score": 2.0}, "config.yaml infer.min_score: must be"),
    ("postprocess", {"nms": "fast"}, "config.yaml postprocess.nms: unknown method"),
    ("evaluate", {"iou": 0}, "config.yaml evaluate.iou: must be"),
    ("best", {"metric": "mean"}, "config.yaml best.metric: must be"),
])
def test_workflow_errors_name_the_config_key(section, values, named):
    from centerface_flow.errors import UserError
    from centerface_flow.settings import from_section

    with pytest.raises(UserError) as info:
        from_section(section, values)
    assert str(info.value).startswith(named)
    assert from_section(section, {}) == sections()[section]()


def test_cli_parses_one_command_alone_and_refuses_an_unknown_one(capsys):
    from centerface_flow.cli import _command_of, main

    assert _command_of(["-v", "rank-table", "--out", "x"]) == "rank_table"
    assert _command_of(["postprocss"]) is None
    with pytest.raises(SystemExit) as exit_info:
        main(["postprocss", "c.npz"])
    assert exit_info.value.code == 2 and "invalid choice: 'postprocss'" in capsys.readouterr().err


def test_shipped_config_states_the_defaults():
    """config.yaml writes out the defaults of every section but ``train`` (the demo's fine-tuning recipe there is
    a choice, documented next to each key): a default changed in the dataclass and not in config.yaml, or the
    other way round, fails here."""
    from pathlib import Path

    import yaml

    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text(encoding="utf-8"))
    for section in sorted(set(sections()) - {"train"}):
        defaults = section_defaults(section)
        for key, value in (shipped.get(section) or {}).items():
            assert value == defaults[key], f"config.yaml {section}.{key} is {value!r}, the default {defaults[key]!r}"
