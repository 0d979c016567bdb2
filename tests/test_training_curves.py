"""Training curves from metrics.csv: per-epoch means without skipped steps, the epoch filter, the PNG, bad input."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from centerface_flow.errors import UserError
from centerface_flow.training.curves import epoch_means, plot_training_curves, read_metrics
from centerface_flow.training.train import METRIC_FIELDS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_metrics(path, epochs: int = 3, steps: int = 4, skipped: tuple[int, ...] = ()) -> None:
    """Steps numbered from 1; loss terms fall with the step, lr drops tenfold after epoch 1."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        for step in range(1, epochs * steps + 1):
            epoch = (step - 1) // steps + 1
            bad = step in skipped
            terms = {"hm_loss": 2.0 / step, "wh_loss": 0.5, "off_loss": 0.2, "lm_loss": 0.1}
            writer.writerow({"epoch": epoch, "step": step, "loss": "nan" if bad else 2.0 / step + 0.1,
                             **terms, "lr": 1e-3 if epoch == 1 else 1e-4, "images_per_s": 3.0,
                             "skipped": int(bad)})


def test_read_metrics_places_steps_inside_their_epoch(tmp_path):
    write_metrics(tmp_path / "m.csv", epochs=2, steps=4)
    frame = read_metrics(tmp_path / "m.csv")
    np.testing.assert_allclose(frame["x"], [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    assert len(read_metrics(tmp_path / "m.csv", epochs=1)) == 4  # a state folder trained further


def test_epoch_means_leave_out_skipped_steps(tmp_path):
    write_metrics(tmp_path / "m.csv", epochs=2, steps=2, skipped=(2,))
    means = epoch_means(read_metrics(tmp_path / "m.csv"))
    assert means["epoch"].tolist() == [1, 2]
    assert means.loc[0, "loss"] == pytest.approx(2.1)  # step 1 only: step 2 was skipped
    assert means.loc[1, "hm_loss"] == pytest.approx((2 / 3 + 2 / 4) / 2)
    assert means["lr"].tolist() == [1e-3, 1e-4]


def test_plot_training_curves_writes_a_png(tmp_path):
    write_metrics(tmp_path / "m.csv", skipped=(5,))
    out = plot_training_curves(tmp_path / "m.csv", tmp_path / "out" / "curves.png", demo=True, epochs=2)
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20000


def test_bad_metrics_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="cannot read the training metrics"):
        read_metrics(tmp_path / "missing.csv")
    (tmp_path / "cols.csv").write_text("epoch,step,loss\n1,1,0.5\n")
    with pytest.raises(UserError, match="missing column.*hm_loss"):
        read_metrics(tmp_path / "cols.csv")
    write_metrics(tmp_path / "m.csv", epochs=1)
    with pytest.raises(UserError, match="no training step recorded up to epoch 0"):
        read_metrics(tmp_path / "m.csv", epochs=0)
