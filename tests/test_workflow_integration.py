"""The Snakemake workflow, run for real on the embedded demo: artefacts, and which jobs a change reruns.

One module-scoped run builds everything (tiny training settings); each later test changes one thing, runs
Snakemake again and reads from its log which jobs ran.
"""
from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_FILES = ("Snakefile", "config.yaml", "rules", "workflow_scripts", "profiles", "report")
#: Small enough to train in seconds on 2 cores; otherwise the shipped config.yaml.
TINY = {"demo": {"train_images": 24, "val_images": 12},
        "train": {"epochs": 2, "resolution": 128, "batch_size": 4, "milestones": [1], "num_workers": 1},
        "export": {"height": 128, "width": 160}}
JOB_LINE = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):", re.MULTILINE)


def _merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        base[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def run_snakemake(workdir: Path, *targets: str, check: bool = True, env: dict | None = None) -> tuple[list[str], str]:
    """Run Snakemake in ``workdir``; return (names of the jobs that ran, the whole log)."""
    env = {**os.environ, "CENTERFACE_DEVICE": "CPU", **(env or {})}
    proc = subprocess.run([SNAKEMAKE, "--cores", "2", *targets], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=1500, check=False)
    text = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake failed ({proc.returncode}):\n{text[-6000:]}")
    return JOB_LINE.findall(text), text


def set_config(workdir: Path, section: str, key: str, value) -> None:
    path = workdir / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config[section][key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def copy_workflow(workdir: Path) -> Path:
    """The workflow files (not the package: that is installed) copied into ``workdir``, with the tiny settings."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, workdir / name)
    config = _merge(yaml.safe_load((workdir / "config.yaml").read_text()), TINY)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """A copy of the workflow (not the package: that is installed) with the tiny settings, run once to the end."""
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    jobs, log = run_snakemake(workdir)
    return workdir, jobs, log


def test_full_run_builds_every_artefact(workflow):
    workdir, jobs, _ = workflow
    results = workdir / "results"
    for rel in ("released/centerface.ckpt", "train/epoch_1.ckpt", "train/epoch_2.ckpt", "candidates/released.npz",
                "ap/epoch_2.tsv", "summary/ap_by_epoch.csv", "summary/ap_by_epoch.md", "summary/ap_by_epoch.png",
                "summary/pr_curves.png", "summary/ap_by_epoch.html", "summary/training_curves.png", "train/metrics.csv",
                "best.txt", "best.ckpt", "best.mindir", "best.onnx",
                "best.onnx.check.json", "best.mindir.check.json", "best.md"):
        assert (results / rel).is_file(), rel
    table = pd.read_csv(results / "summary/ap_by_epoch.csv")
    assert sorted(table["model"]) == ["epoch_1", "epoch_2", "released"]
    assert table[["easy", "medium", "hard"]].notna().all().all()
    assert jobs.count("train_model") == 1 and jobs.count("infer_candidates") == 3
    assert "demo train split (rotated): 24 images" in (results / "logs/build_demo.log").read_text()


def test_nothing_to_do_when_up_to_date(workflow):
    jobs, _ = run_snakemake(workflow[0])
    assert jobs == []


def test_training_metrics_lost_with_a_killed_job_come_back_without_training(workflow):
    """results/train/metrics.csv is not an output of train_model (Snakemake deletes a killed job's outputs, and a
    rerun of training killed once every epoch is final is needed by nothing downstream): the default target copies
    it back from the training state, without training, whenever it is missing."""
    results = workflow[0] / "results"
    metrics = results / "train/metrics.csv"
    published = metrics.read_bytes()
    (results / "train/done_2_epochs.json").unlink()
    metrics.unlink()
    jobs, _ = run_snakemake(workflow[0])
    assert [job for job in jobs if job != "all"] == ["publish_training_metrics"]
    assert metrics.read_bytes() == published


def _report_variable(page: str, name: str):
    """The JSON value of ``var <name> = ...;`` in the report's ``<script id="<name>">`` (Snakemake's report is one
    page that renders these with JavaScript)."""
    script = page.index(f'<script id="{name.replace("_", "-")}">')
    start = page.index(f"var {name} = ", script) + len(f"var {name} = ")
    return json.JSONDecoder().raw_decode(page, start)[0]


def _embedded(entry: dict) -> bytes:
    header, data = entry["data_uri"].split(",", 1)
    assert header.endswith(";base64"), header
    return base64.b64decode(data)


def test_report_shows_the_summary_and_the_export_checks(workflow):
    """`snakemake --report results/report.html`: one self-contained page (not a zip) whose front page names the
    demo, with the AP table, the three plots, the best model and each export's check, captioned."""
    workdir = workflow[0]
    jobs, log = run_snakemake(workdir, "--report", "results/report.html")
    assert jobs == [] and "Report created" in log, log[-3000:]
    page = (workdir / "results/report.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "embedded demo" in _report_variable(page, "workflow_desc")
    results, categories = _report_variable(page, "results"), _report_variable(page, "categories")
    summary = {path for paths in categories["Summary"].values() for path in paths}
    best = {path for paths in categories["Best model"].values() for path in paths}
    assert summary == {f"results/summary/{name}" for name in ("ap_by_epoch.csv", "ap_by_epoch.html",
                                                               "ap_by_epoch.png", "pr_curves.png",
                                                               "training_curves.png")}
    assert best == {"results/best.txt", "results/best.onnx.check.json", "results/best.mindir.check.json"}
    for path in summary | best:
        assert results[path]["caption"].strip(), path
    table = _embedded(results["results/summary/ap_by_epoch.html"]).decode()
    assert re.search(r"AP by epoch on demo val \(\d+ images\)", table) and "IoU 0.5, python protocol" in table
    for model in ("epoch_1", "epoch_2", "released"):
        assert f"<td>{model}</td>" in table
    for name in ("ap_by_epoch", "pr_curves", "training_curves"):
        assert _embedded(results[f"results/summary/{name}.png"]).startswith(b"\x89PNG"), name
    # the report offers JSON and text only as downloads, so each caption carries its file's content
    for path in best:
        text = (workdir / path).read_text()
        keys = json.loads(text).keys() if path.endswith(".json") else text.splitlines()
        caption = html.unescape(results[path]["caption"])
        assert all(str(key) in caption for key in keys), (path, caption)


def test_nms_change_reruns_only_postprocessing_onward(workflow):
    workdir = workflow[0]
    before = (workdir / "results/best.txt").read_text().splitlines()[0]
    set_config(workdir, "postprocess", "nms_iou", 0.4)  # the default is 0.3
    jobs, _ = run_snakemake(workdir)
    ran = set(jobs)
    assert {"postprocess_predictions", "evaluate_widerface", "summarize_ap", "select_best"} <= ran
    assert not ran & {"train_model", "infer_candidates", "convert_released", "build_demo", "prepare_annotations"}
    after = (workdir / "results/best.txt").read_text().splitlines()[0]
    if after == before:  # export reruns only when the chosen model changes
        assert not ran & {"copy_best", "export_model"}


def test_evaluation_change_reruns_only_evaluation_onward(workflow):
    workdir = workflow[0]
    set_config(workdir, "evaluate", "iou", 0.4)
    ran = set(run_snakemake(workdir)[0])
    assert {"evaluate_widerface", "summarize_ap", "select_best"} <= ran
    assert not ran & {"train_model", "infer_candidates", "postprocess_predictions"}


def test_script_comment_edit_does_not_retrain(workflow):
    workdir = workflow[0]
    script = workdir / "workflow_scripts/train_model.py"
    script.write_text(script.read_text() + "\n# an edited comment\n")
    assert run_snakemake(workdir)[0] == []


def test_other_demo_data_retrains(workflow):
    """The trained epochs belong to the training data too: a changed demo section builds, annotates and trains
    again (a dry run, so the module's workflow folder stays as it is)."""
    workdir = workflow[0]
    shipped = (workdir / "config.yaml").read_text()
    try:
        set_config(workdir, "demo", "seed", 7)
        jobs = set(run_snakemake(workdir, "--dry-run")[0])
    finally:
        (workdir / "config.yaml").write_text(shipped)
    assert {"build_demo", "prepare_annotations", "train_model"} <= jobs, jobs


def test_air_fails_before_any_job(workflow):
    workdir = workflow[0]
    jobs, log = run_snakemake(workdir, "results/best.air", check=False)
    assert jobs == []
    assert "AIR format only with the Ascend backend" in log and "results/best.onnx" in log


def test_unknown_config_key_stops_at_parse_time(workflow):
    workdir = workflow[0]
    set_config(workdir, "postprocess", "nms_threshold", 0.3)
    try:
        jobs, log = run_snakemake(workdir, check=False)
        assert jobs == []
        assert "unknown key 'postprocess.nms_threshold'" in log
    finally:
        config = yaml.safe_load((workdir / "config.yaml").read_text())
        del config["postprocess"]["nms_threshold"]
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_more_epochs_train_and_test_only_the_new_one(workflow, tmp_path):
    """Raising train.epochs (multistep schedule) continues from the last epoch, tests only the new epoch, and the
    new epoch equals that of a run trained from scratch for the same number of epochs."""
    workdir = workflow[0]
    set_config(workdir, "train", "epochs", 3)
    jobs, log = run_snakemake(workdir)
    assert jobs.count("train_model") == 1, log[-3000:]
    for rule in ("infer_candidates", "postprocess_predictions", "evaluate_widerface"):
        assert jobs.count(rule) == 1, (rule, jobs)
    assert "results/candidates/epoch_3.npz" in log and "results/candidates/epoch_1.npz" not in log
    assert "resumed from epoch 2" in (workdir / "results/logs/train_model.log").read_text()

    fresh = tmp_path / "fresh"  # the same workflow and inputs, trained from scratch for 3 epochs
    for name in (*WORKFLOW_FILES, "results/demo", "results/released", "results/data"):
        src = workdir / name
        (fresh / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, fresh / name)
    run_snakemake(fresh, "results/train/done_3_epochs.json")
    from test_train import _params

    continued, scratch = _params(workdir / "results/train/epoch_3.ckpt"), _params(fresh / "results/train/epoch_3.ckpt")
    assert continued.keys() == scratch.keys()
    for key in continued:
        np.testing.assert_array_equal(continued[key], scratch[key], err_msg=key)
    set_config(workdir, "train", "epochs", 2)


def test_killed_training_resumes_under_snakemake(workflow):
    """A training job killed mid-epoch 2 loses no finished epoch: the rerun resumes from epoch 1."""
    workdir = workflow[0]
    set_config(workdir, "train", "seed", 2)  # new settings: trains afresh, in a new state folder
    crash = {"CENTERFACE_CRASH_AFTER_STEPS": "8"}  # 6 steps per epoch: killed in epoch 2
    jobs, log = run_snakemake(workdir, "results/train/done_2_epochs.json", check=False, env=crash)
    assert "train_model" in jobs and not (workdir / "results/train/done_2_epochs.json").exists(), log[-3000:]
    states = list((workdir / "results/train/state").glob("*/epoch_1.ckpt"))
    assert len(states) == 2  # the first run's folder and this one's
    jobs, _ = run_snakemake(workdir, "results/train/done_2_epochs.json")
    assert jobs == ["train_model"]
    train_log = (workdir / "results/logs/train_model.log").read_text()
    assert "resumed from epoch 1" in train_log


def _kernel_pools(script: str) -> dict[int, int]:
    """pid -> worker threads of the native kernels' pool (named cf_kernels), for the running jobs of ``script``."""
    pools = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if script not in Path(f"/proc/{pid}/cmdline").read_text():
                continue
            names = [Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                     for tid in os.listdir(f"/proc/{pid}/task")]
        except OSError:  # the process or one of its threads has just exited
            continue
        pools[int(pid)] = names.count("cf_kernels")
    return pools


def test_two_inference_jobs_side_by_side_use_two_threads_each(workflow):
    """--cores 4 and two inference jobs of 2 threads: both run at once, each with a pool of 2 kernel threads (the
    calling thread + 1 worker, counted as tests/test_thread_pool.py does), and MindSpore set to 2 threads."""
    workdir = workflow[0]
    targets = ["results/candidates/released.npz", "results/candidates/epoch_1.npz"]
    env = {**os.environ, "CENTERFACE_DEVICE": "CPU"}
    env.pop("CENTERFACE_NUM_THREADS", None)
    cmd = [SNAKEMAKE, *targets, "--cores", "4", "--set-threads", "infer_candidates=2", "--forcerun", "infer_candidates"]
    seen: dict[int, int] = {}
    together = False
    with subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        while proc.poll() is None:
            pools = {pid: n for pid, n in _kernel_pools("infer_candidates.py").items() if n}
            together |= len(pools) == 2
            for pid, n in pools.items():
                seen[pid] = max(seen.get(pid, 0), n)
            time.sleep(0.05)
        log = proc.stdout.read()
    assert proc.returncode == 0, log[-4000:]
    assert JOB_LINE.findall(log).count("infer_candidates") == 2
    # every process of the two jobs with a kernel pool had 1 worker (a job may start more than one such process)
    assert len(seen) >= 2 and set(seen.values()) == {1}, seen
    assert together, "the two inference jobs never ran at the same time"
    for model in ("released", "epoch_1"):
        job_log = (workdir / f"results/logs/infer_candidates/{model}.log").read_text()
        assert "CPU threads: 2 (MindSpore kernels and native kernels)" in job_log
