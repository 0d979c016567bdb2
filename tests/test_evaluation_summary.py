"""The summary across models: ap_by_epoch.csv/.md and the two plots."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from centerface_flow.cli import main
from centerface_flow.errors import UserError
from centerface_flow.evaluation import EvalResult, SettingResult, summarize, write_ap_table, write_pr_curves
from centerface_flow.evaluation.core import thresholds

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_result(easy: float, medium: float, hard: float) -> EvalResult:
    thr = thresholds()
    recall = np.linspace(0, 0.9, thr.size)
    settings = {}
    for name, ap in (("easy", easy), ("medium", medium), ("hard", hard)):
        precision = np.clip(1.0 - recall * (1 - ap), 0, 1)
        settings[name] = SettingResult(name, ap, 100, 10, thr, precision, recall * ap)
    return EvalResult(protocol="python", iou=0.5, subset=False, images=10, settings=settings)


@pytest.fixture()
def tables(tmp_path):
    models = {"epoch_5": (0.5, 0.4, 0.2), "epoch_20": (0.85, 0.8, 0.55), "epoch_10": (0.8, 0.7, 0.6),
              "released": (0.93, 0.92, 0.87)}
    paths = []
    for name, aps in models.items():
        result = fake_result(*aps)
        write_ap_table(result, tmp_path / "ap" / f"{name}.tsv")
        write_pr_curves(result, tmp_path / "ap" / f"{name}_pr.tsv")
        paths.append(tmp_path / "ap" / f"{name}.tsv")
    return paths


def test_summarize_outputs(tmp_path, tables):
    out = summarize(tables, tmp_path / "summary")
    frame = pd.read_csv(out["csv"], keep_default_na=False)
    assert list(frame.columns[:5]) == ["model", "epoch", "easy", "medium", "hard"]
    assert frame["model"].tolist() == ["epoch_5", "epoch_10", "epoch_20", "released"]
    assert frame["epoch"].astype(str).tolist() == ["5", "10", "20", ""]
    assert frame.loc[1, "hard"] == 0.6 and frame.loc[3, "easy"] == 0.93  # full precision
    md = out["md"].read_text()
    assert md.splitlines()[0].split("|")[1].strip() == "model" and "| released" in md and "0.8700" in md
    for key in ("png", "pr"):
        data = out[key].read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_summarize_dict_and_explicit_pr(tmp_path, tables):
    mapping = {"first": tables[0], "second": tables[1]}
    out = summarize(mapping, tmp_path / "s", pr_models=["first"], pr_tables={"first": tables[2].with_name("epoch_10_pr.tsv")})
    frame = pd.read_csv(out["csv"])
    assert frame["model"].tolist() == ["first", "second"] and frame["epoch"].isna().all()


def test_summarize_errors(tmp_path, tables):
    with pytest.raises(UserError, match="unknown model"):
        summarize(tables, tmp_path / "s", pr_models=["epoch_99"])
    tables[1].with_name("epoch_20_pr.tsv").unlink()  # default: epoch_10 (best hard AP) and released
    summarize(tables, tmp_path / "s")
    with pytest.raises(UserError, match=r"epoch_20_pr\.tsv does not exist"):
        summarize(tables, tmp_path / "s", pr_models=["epoch_20"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("setting\tvalue\neasy\t1\n")
    with pytest.raises(UserError, match="missing column"):
        summarize([bad], tmp_path / "s")


def test_cli_summarize(tmp_path, tables, capsys):
    # a glob such as ap/*.tsv also catches the PR tables: they are skipped
    all_tsv = sorted((tmp_path / "ap").glob("*.tsv"))
    assert main(["summarize", "--ap", *map(str, all_tsv), "--out-dir", str(tmp_path / "out"),
                 "--pr-models", "epoch_10", "released"]) == 0
    assert (tmp_path / "out" / "pr_curves.png").is_file()
    assert len(pd.read_csv(tmp_path / "out" / "ap_by_epoch.csv")) == 4
    assert "ap_by_epoch.csv" in capsys.readouterr().out


def test_default_pr_models(tables):
    from centerface_flow.evaluation.summary import ap_frame, default_pr_models

    assert default_pr_models(ap_frame(tables)) == ["epoch_10", "released"]
    assert default_pr_models(ap_frame(tables[:2])) == ["epoch_20"]
    assert default_pr_models(ap_frame(tables[3:])) == ["released"]
