"""config.yaml schema validation and epoch selection."""
from pathlib import Path

import pytest
import yaml

from centerface_flow.config import select_epochs, validate_config
from centerface_flow.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_shipped_config_is_valid_and_gets_defaults(config):
    del config["postprocess"]["max_dets"]
    filled = validate_config(config)
    assert filled["postprocess"]["max_dets"] == 0
    assert "max_dets" not in config["postprocess"]  # the input is not modified


def test_unknown_key_is_named_with_its_section(config):
    config["postprocess"]["nmsiou"] = 0.3
    with pytest.raises(UserError, match=r"unknown key 'postprocess\.nmsiou'.*allowed here: .*nms_iou"):
        validate_config(config)


def test_unknown_section_is_named(config):
    config["postprocessing"] = {}
    with pytest.raises(UserError, match=r"unknown key 'postprocessing'"):
        validate_config(config)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("evaluate", "iou", "high"), ("postprocess", "nms", "fast"), ("train", "epochs", 0), ("test", "epochs", "some"),
     ("train", "resolution", 500), ("train", "min_face", -1), ("train", "small_face_weights", "no"),
     ("train", "crop_scales", [0.5])],
)
def test_wrong_type_or_value_names_the_key(config, section, key, value):
    config[section][key] = value
    with pytest.raises(UserError, match=rf"key '{section}\.{key}'"):
        validate_config(config)


def test_missing_required_key(config):
    del config["dataset"]["val_images"]
    with pytest.raises(UserError, match=r"missing key 'dataset\.val_images'"):
        validate_config(config)


@pytest.mark.parametrize(
    ("spec", "epochs", "expected"),
    [("all", 3, [1, 2, 3]), ("89-140", 100, list(range(89, 101))), ("every:5", 12, [5, 10, 12]),
     ([3, 1, 3], 3, [1, 3]), ("every:1", 2, [1, 2])],
)
def test_select_epochs(spec, epochs, expected):
    assert select_epochs(spec, epochs) == expected


@pytest.mark.parametrize(("spec", "epochs"), [("200-300", 140), ([5], 3)])
def test_select_epochs_rejects_empty_or_beyond(spec, epochs):
    with pytest.raises(UserError, match="test.epochs"):
        select_epochs(spec, epochs)


def test_train_section_defaults_are_train_config_defaults(config):
    """Every training key the schema knows is a TrainConfig key, and the schema's defaults are TrainConfig's."""
    from centerface_flow.training.train import TrainConfig

    for key in ("weight_decay", "heatmap_bias", "min_face", "small_face_weights", "anchor_sampling", "crop_scales"):
        config["train"].pop(key, None)
    filled = validate_config(config)["train"]
    defaults = TrainConfig().to_dict()
    assert set(filled) <= set(defaults)
    for key in ("weight_decay", "heatmap_bias", "min_face", "small_face_weights", "anchor_sampling", "crop_scales"):
        assert filled[key] == defaults[key], key
    TrainConfig.from_dict({**filled, "init_path": "x.ckpt"})  # the workflow passes the section through
