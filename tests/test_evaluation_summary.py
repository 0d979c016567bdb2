"""The summary across models: ap_by_epoch.csv/.md/.html and the two plots, titled with what they show."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from centerface_flow.cli import main
from centerface_flow.errors import UserError
from centerface_flow.evaluation import EvalResult, SettingResult, summarize, write_ap_table, write_pr_curves
from centerface_flow.evaluation.core import thresholds
from centerface_flow.evaluation.summary import ValSet, ap_frame, describe

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_result(easy: float, medium: float, hard: float, images: int = 10, iou: float = 0.5,
                protocol: str = "python", subset: bool = False) -> EvalResult:
    thr = thresholds()
    recall = np.linspace(0, 0.9, thr.size)
    settings = {}
    for name, ap in (("easy", easy), ("medium", medium), ("hard", hard)):
        precision = np.clip(1.0 - recall * (1 - ap), 0, 1)
        settings[name] = SettingResult(name, ap, 100, images, thr, precision, recall * ap)
    return EvalResult(protocol=protocol, iou=iou, subset=subset, images=images, settings=settings)


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
    assert frame["subset"].tolist() == [False] * 4 and frame["iou"].tolist() == [0.5] * 4
    md = out["md"].read_text().splitlines()
    assert md[0] == "AP on WIDER FACE val (10 images), IoU 0.5, python protocol."  # what the numbers are
    assert md[2].split("|")[1].strip() == "model" and "| released" in md[-1] and "0.8700" in md[-1]
    page = out["html"].read_text()
    assert "<h2>AP by epoch on WIDER FACE val (10 images)</h2>" in page and "IoU 0.5, python protocol" in page
    assert page.count("</tr>") == 5 and "<td>released</td>" in page and "<td>0.8700</td>" in page
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
                 "--pr-models", "epoch_10", "released", "--demo"]) == 0
    assert (tmp_path / "out" / "pr_curves.png").is_file()
    assert (tmp_path / "out" / "ap_by_epoch.md").read_text().startswith("AP on demo val (10 images)")
    assert len(pd.read_csv(tmp_path / "out" / "ap_by_epoch.csv")) == 4
    assert "ap_by_epoch.csv" in capsys.readouterr().out


def test_default_pr_models(tables):
    from centerface_flow.evaluation.summary import ap_frame, default_pr_models

    assert default_pr_models(ap_frame(tables)) == ["epoch_10", "released"]
    assert default_pr_models(ap_frame(tables[:2])) == ["epoch_20"]
    assert default_pr_models(ap_frame(tables[3:])) == ["released"]


def _tables(tmp_path, **kwargs) -> list:
    paths = []
    for name, aps in (("epoch_1", (0.5, 0.4, 0.3)), ("released", (0.9, 0.8, 0.7))):
        result = fake_result(*aps, **kwargs)
        write_ap_table(result, tmp_path / f"{name}.tsv")
        write_pr_curves(result, tmp_path / f"{name}_pr.tsv")
        paths.append(tmp_path / f"{name}.tsv")
    return paths


@pytest.mark.parametrize(("kwargs", "val_set", "expected"), [
    ({"images": 3226}, None, ("WIDER FACE val (3,226 images)", "IoU 0.5, python protocol")),
    ({"images": 610, "subset": True, "protocol": "official"}, ValSet(subset=True, protocol="official"),
     ("WIDER FACE val subset (610 images)", "IoU 0.5, official protocol")),
    ({"images": 12, "iou": 0.4}, ValSet(demo=True, subset=False, iou=0.4, protocol="python"),
     ("demo val (12 images)", "IoU 0.4, python protocol")),
])
def test_describe_names_the_val_set_and_protocol(tmp_path, kwargs, val_set, expected):
    frame = ap_frame(_tables(tmp_path, **kwargs))
    assert describe(frame, val_set) == expected


def test_describe_refuses_settings_the_tables_contradict(tmp_path):
    frame = ap_frame(_tables(tmp_path, iou=0.4))
    with pytest.raises(UserError, match="scored with iou 0.4, the configuration says 0.5"):
        describe(frame, ValSet(iou=0.5))
    with pytest.raises(UserError, match="scored with subset False"):
        describe(frame, ValSet(subset=True))
    mixed = [*_tables(tmp_path / "a"), *_tables(tmp_path / "b", protocol="official")[1:]]
    mixed[1] = mixed[1].rename(mixed[1].with_name("other.tsv"))
    with pytest.raises(UserError, match="different protocols"):
        describe(ap_frame(mixed))


def test_summarize_titles_name_the_demo(tmp_path):
    out = summarize(_tables(tmp_path, images=12), tmp_path / "s", val_set=ValSet(demo=True, iou=0.5))
    assert out["md"].read_text().startswith("AP on demo val (12 images), IoU 0.5, python protocol.\n")
    for key in ("png", "pr"):
        assert out[key].read_bytes().startswith(PNG_MAGIC)
