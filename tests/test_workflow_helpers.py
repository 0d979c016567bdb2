"""Parse-time helpers of the Snakefile: data set resolution, Ascend detection, best-model choice."""
import pandas as pd
import pytest

from centerface_flow.errors import UserError
from centerface_flow.workflow import (
    DEMO_PATHS,
    air_unavailable_message,
    dataset_paths,
    on_ascend,
    pick_best,
    read_best,
    select_best,
    write_best,
)


def test_empty_dataset_means_demo():
    paths, demo = dataset_paths({"train_images": "", "train_labels": "", "val_images": "", "val_ground_truth": ""})
    assert demo and paths == DEMO_PATHS


def test_partial_dataset_names_the_empty_keys(tmp_path):
    with pytest.raises(UserError, match=r"empty: dataset\.train_labels, dataset\.val_ground_truth"):
        dataset_paths({"train_images": str(tmp_path), "train_labels": "", "val_images": str(tmp_path),
                       "val_ground_truth": ""})


def test_missing_dataset_path_is_named(tmp_path):
    given = {k: str(tmp_path) for k in ("train_images", "train_labels", "val_images")}
    given["val_ground_truth"] = str(tmp_path / "nope")
    with pytest.raises(UserError, match=r"dataset\.val_ground_truth.*does not exist"):
        dataset_paths(given)


def test_ascend_detection_override(monkeypatch):
    monkeypatch.setenv("CENTERFACE_DEVICE", "CPU")
    assert not on_ascend()
    monkeypatch.setenv("CENTERFACE_DEVICE", "Ascend")
    assert on_ascend()


def test_air_message_names_alternatives():
    msg = air_unavailable_message("results/best.air")
    assert "Ascend" in msg and "results/best.mindir" in msg and "results/best.onnx" in msg


@pytest.fixture()
def summary(tmp_path):
    path = tmp_path / "ap_by_epoch.csv"
    pd.DataFrame(
        {"model": ["epoch_1", "epoch_2", "epoch_3", "released"], "epoch": [1, 2, 3, None],
         "easy": [0.5, 0.9, 0.8, 0.95], "medium": [0.5, 0.8, 0.8, 0.7], "hard": [0.4, 0.6, 0.6, 0.5]}
    ).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("metric", "exclude", "expected"),
    [("hard", False, "epoch_3"), ("easy", False, "released"), ("easy", True, "epoch_2"), ("sum", False, "epoch_2")],
)
def test_pick_best(summary, metric, exclude, expected):
    model, row = pick_best(summary, metric, exclude)
    assert model == expected and row["model"] == expected


def test_best_file_round_trip(tmp_path, summary):
    model, row = pick_best(summary, "hard")
    write_best(tmp_path / "best.txt", model, row, "hard", False)
    assert read_best(tmp_path / "best.txt") == "epoch_3"
    assert select_best(summary, tmp_path / "chosen.txt", "hard") == "epoch_3"
    assert (tmp_path / "chosen.txt").read_text() == (tmp_path / "best.txt").read_text()
    assert "hard: 0.6" in (tmp_path / "best.txt").read_text()


def test_empty_best_file_is_an_error(tmp_path):
    (tmp_path / "best.txt").write_text("")
    with pytest.raises(UserError, match="best.txt"):
        read_best(tmp_path / "best.txt")
