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
    assert filled["postprocess"]["max_dets"] == 1000
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
     ("train", "resolution", 500)],
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
