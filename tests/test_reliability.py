"""Issue 17 (reliability): every bad input meets a clear error, no input is ever lost, results are never silently
wrong. One test (or a few) per finding, each feeding the bad input and checking the message, the exit status and
that nothing else was touched. docs/reliability.md tabulates what these tests prove."""
from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from centerface_flow.errors import UserError
from centerface_flow.inference.candidates import CandidatesBuilder, load_candidates, save_candidates
from centerface_flow.io import atomic_write_text, remove_stale_staging, staging_prefix
from centerface_flow.postprocess.predictions import PostprocessConfig, write_tree

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``centerface ARGS`` in a child process (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "centerface_flow.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})})


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, one clear message naming what is wrong, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "error:" in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr[-3000:])


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (hidden ones too): relative path -> (type and mode, content)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[path.relative_to(root).as_posix()] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), content)
    return out


def jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (48, 64)) -> Path:
    import cv2

    image = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    return path


def candidates(n_images: int = 3, per_image: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    builder = CandidatesBuilder()
    for i in range(n_images):
        xy = rng.uniform(0, 200, size=(per_image, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 60, size=(per_image, 2))], 1)
        builder.add(f"0--Event/img_{i}.jpg", (300, 250), boxes, rng.uniform(0.1, 1, per_image),
                    xy[:, None, :] + rng.uniform(0, 5, size=(per_image, 5, 2)), passes=np.zeros(per_image, np.uint8))
    return builder.build({"weights": "x.ckpt"})


# --- 1. detect --draw never writes over an input ----------------------------------------------------------------


def test_detect_refuses_to_draw_over_an_input_photo(tmp_path):
    photos = tmp_path / "photos"
    jpeg(photos / "a.jpg", 1)
    jpeg(photos / "a_faces.jpg", 2)
    before = snapshot(tmp_path)
    proc = cli("detect", "--weights", tmp_path / "never-loaded.ckpt", "--out", photos, "--draw",
               photos / "a.jpg", photos / "a_faces.jpg")
    assert_user_error(proc, "a_faces.jpg", "would overwrite the input")
    assert snapshot(tmp_path) == before


def test_detect_out_that_is_a_file(tmp_path):
    jpeg(tmp_path / "a.jpg")
    (tmp_path / "out").write_text("a file")
    before = snapshot(tmp_path)
    proc = cli("detect", "--weights", tmp_path / "never-loaded.ckpt", "--out", tmp_path / "out", tmp_path / "a.jpg")
    assert_user_error(proc, f"--out {tmp_path / 'out'}: exists and is not a folder")
    assert snapshot(tmp_path) == before


# --- 2. postprocess never deletes an input or a user's file with an earlier tree -------------------------------


def test_postprocess_into_the_tree_holding_its_input(tmp_path):
    tree = tmp_path / "tree1"
    write_tree(candidates(), tree, PostprocessConfig())
    save_candidates(tree / "cands.npz", candidates(seed=1))
    before = snapshot(tmp_path)
    proc = cli("postprocess", tree / "cands.npz", "--out", tree)
    assert_user_error(proc, str(tree), "cands.npz", "refusing to replace")
    assert snapshot(tmp_path) == before


def test_postprocess_keeps_a_users_file_in_an_earlier_tree(tmp_path):
    save_candidates(tmp_path / "c.npz", candidates())
    tree = tmp_path / "tree"
    write_tree(load_candidates(tmp_path / "c.npz"), tree, PostprocessConfig())
    (tree / "0--Event" / "my_notes.md").write_text("keep")
    before = snapshot(tmp_path)
    assert_user_error(cli("postprocess", tmp_path / "c.npz", "--out", tree), "0--Event/my_notes.md")
    assert snapshot(tmp_path) == before


# --- 3. a tree that lost a file is not scored on fewer images; the summary compares like with like --------------


@pytest.fixture()
def wider(tmp_path):
    """A 3-image ground truth and a tree written by `write_tree` for its images."""
    from centerface_flow.evaluation import GroundTruth
    from centerface_flow.evaluation.synthetic import write_ground_truth

    gt = GroundTruth(events=("0--Event",), image_event=np.zeros(3, np.intp), image_names=("img_0", "img_1", "img_2"),
                     faces=np.array([[10, 10, 40, 40], [50, 50, 30, 30], [5, 5, 60, 60]], np.int32),
                     face_offsets=np.array([0, 1, 2, 3], np.intp),
                     keep={s: np.ones(3, bool) for s in ("easy", "medium", "hard")})
    gt_dir = write_ground_truth(gt, tmp_path / "gt")
    tree = tmp_path / "pred"
    write_tree(candidates(), tree, PostprocessConfig())
    return gt_dir, tree


def test_evaluation_refuses_a_tree_that_lost_a_file(tmp_path, wider):
    from centerface_flow.evaluation import evaluate_tree

    gt_dir, tree = wider
    (tree / "0--Event" / "img_1.txt").unlink()
    for subset in (False, True):
        with pytest.raises(UserError, match=r"1 of the 3 prediction files .* missing: 0--Event/img_1.txt"):
            evaluate_tree(tree, gt_dir, subset=subset)
    proc = cli("evaluate", "--pred", tree, "--gt", gt_dir, "--subset", "--out", tmp_path / "ap.tsv")
    assert_user_error(proc, "0--Event/img_1.txt", "incomplete")
    assert not (tmp_path / "ap.tsv").exists()


def test_ap_tables_record_images_and_summary_refuses_different_image_sets(tmp_path, wider):
    from centerface_flow.evaluation import evaluate_tree, read_ap_table, summarize, write_ap_table, write_pr_curves

    gt_dir, tree = wider
    full = evaluate_tree(tree, gt_dir, subset=True)
    write_ap_table(full, tmp_path / "ap" / "epoch_1.tsv")
    write_pr_curves(full, tmp_path / "ap" / "epoch_1_pr.tsv")
    table = read_ap_table(tmp_path / "ap" / "epoch_1.tsv")
    assert set(table["images"]) == {3} and dict(zip(table["setting"], table["faces"]))["hard"] == 3
    assert len(set(table["image_set"])) == 1 and len(table["image_set"][0]) == 16

    # a second model scored on two of the three images (a tree written for fewer images, evaluated as a subset)
    small = tmp_path / "pred_small"
    cands = candidates(n_images=2)
    write_tree(cands, small, PostprocessConfig())
    part = evaluate_tree(small, gt_dir, subset=True)
    write_ap_table(part, tmp_path / "ap" / "epoch_2.tsv")
    write_pr_curves(part, tmp_path / "ap" / "epoch_2_pr.tsv")
    before = snapshot(tmp_path / "ap")
    with pytest.raises(UserError, match=r"different image sets.*epoch_1 on 3 images / 3 faces.*epoch_2 on 2 images"):
        summarize(sorted((tmp_path / "ap").glob("epoch_?.tsv")), tmp_path / "summary")
    assert not (tmp_path / "summary").exists() and snapshot(tmp_path / "ap") == before

    # same counts, other images: caught by the fingerprint
    other = tmp_path / "ap2"
    write_ap_table(full, other / "epoch_1.tsv")
    text = (tmp_path / "ap" / "epoch_1.tsv").read_text().replace(full.image_set, "0123456789abcdef")
    (other / "epoch_2.tsv").write_text(text)
    with pytest.raises(UserError, match="same counts but other images"):
        summarize(sorted(other.glob("*.tsv")), tmp_path / "summary")

    # the summary shows what each model was scored on
    write_ap_table(full, tmp_path / "ap3" / "epoch_1.tsv")
    write_pr_curves(full, tmp_path / "ap3" / "epoch_1_pr.tsv")
    summarize([tmp_path / "ap3" / "epoch_1.tsv"], tmp_path / "summary")
    import pandas as pd

    frame = pd.read_csv(tmp_path / "summary" / "ap_by_epoch.csv")
    assert frame.loc[0, "images"] == 3 and frame.loc[0, "faces"] == 3


# --- 4. a crafted .pth cannot make the converter allocate gigabytes --------------------------------------------


def _pth(path: Path, size: tuple[int, ...], stride: tuple[int, ...], numel: int, data: bytes) -> Path:
    """A torch.save-style zip: one float tensor of the given geometry on a storage declared to hold ``numel``."""
    def tup(values):
        return b"(" + b"".join(b"J" + int(v).to_bytes(4, "little", signed=True) for v in values) + b"t"

    payload = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
               b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ" + numel.to_bytes(4, "little") + b"tQK\x00"
               + tup(size) + tup(stride) + b"\x89ccollections\nOrderedDict\n)RtR.")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/data/0", data)
    return path


def test_crafted_pth_declaring_a_huge_tensor(tmp_path):
    from centerface_flow.convert.torch_pickle import load_torch_file

    # 100 000 x 100 000 floats (40 GB) viewing one element through zero strides
    crafted = _pth(tmp_path / "bomb.pth", (100_000, 100_000), (0, 0), 1, b"\0\0\0\0")
    assert crafted.stat().st_size < 1024
    with pytest.raises(UserError, match=r"bomb.pth: .*declares 10000000000 elements but its storage holds only 1"):
        load_torch_file(crafted)
    # a storage declared huge with few bytes behind it
    short = _pth(tmp_path / "short.pth", (4,), (1,), 2**31 - 1, b"\0" * 16)
    with pytest.raises(UserError, match="short.pth: .*over the cap of 2147483648 bytes"):
        load_torch_file(short)
    before = snapshot(tmp_path)
    proc = cli("convert", "backbone", "--pth", crafted, "--out", tmp_path / "backbone.ckpt")
    assert_user_error(proc, "bomb.pth", "declares 10000000000 elements")
    assert snapshot(tmp_path) == before


def test_pth_storage_cap_is_an_environment_variable(tmp_path, monkeypatch):
    from centerface_flow.convert.torch_pickle import load_torch_file

    ok = _pth(tmp_path / "ok.pth", (4,), (1,), 4, np.arange(4, dtype="<f4").tobytes())
    np.testing.assert_array_equal(load_torch_file(ok), np.arange(4))
    monkeypatch.setenv("CENTERFACE_MAX_PTH_BYTES", "8")
    with pytest.raises(UserError, match="over the cap of 8 bytes .*CENTERFACE_MAX_PTH_BYTES"):
        load_torch_file(ok)
    monkeypatch.setenv("CENTERFACE_MAX_PTH_BYTES", "0")
    np.testing.assert_array_equal(load_torch_file(ok), np.arange(4))


# --- 5. training labels --------------------------------------------------------------------------------------


@pytest.fixture()
def label_dir(tmp_path):
    jpeg(tmp_path / "images" / "0--E" / "a.jpg", 1, (100, 120))
    jpeg(tmp_path / "images" / "0--E" / "b.jpg", 2, (100, 120))
    return tmp_path


LABELS_OK = "# 0--E/a.jpg\n10 10 30 30\n# 0--E/b.jpg\n5 5 20 20\n"


@pytest.mark.parametrize("labels, message", [
    (LABELS_OK.replace("10 10 30 30", "10 nan 30 30"), "labels.txt:2: NaN or infinite number"),
    (LABELS_OK.replace("5 5 20 20", "5 5 inf 20"), "labels.txt:4: NaN or infinite number"),
    (LABELS_OK.replace("5 5 20 20", "500 500 20 20"),
     "labels.txt:4: box x=500 y=500 w=20 h=20 lies outside image 0--E/b.jpg (120x100)"),
    (LABELS_OK + "# 0--E/a.jpg\n1 1 5 5\n", "labels.txt:5: image '0--E/a.jpg' is listed twice (first at"),
    (LABELS_OK.replace("0--E/b.jpg", "../outside.jpg"), "labels.txt:3: image path '../outside.jpg' must be relative"),
    (LABELS_OK.replace("0--E/b.jpg", "/etc/passwd"), "labels.txt:3: image path '/etc/passwd' must be relative"),
])
def test_bad_training_labels(label_dir, labels, message):
    (label_dir / "labels.txt").write_text(labels)
    before = snapshot(label_dir)
    proc = cli("annotations", "--labels", label_dir / "labels.txt", "--images", label_dir / "images",
               "--out", label_dir / "train.json")
    assert_user_error(proc, message)
    assert snapshot(label_dir) == before


def test_non_utf8_labels_and_corrupt_image(label_dir):
    (label_dir / "labels.txt").write_bytes(LABELS_OK.replace("# 0--E/b.jpg", "# 0--E/b\xe9.jpg").encode("latin-1"))
    before = snapshot(label_dir)
    proc = cli("annotations", "--labels", label_dir / "labels.txt", "--out", label_dir / "train.json")
    assert_user_error(proc, "labels.txt:3: not UTF-8 text (byte 0xe9)")
    assert snapshot(label_dir) == before
    (label_dir / "labels.txt").write_text(LABELS_OK)
    (label_dir / "images" / "0--E" / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    before = snapshot(label_dir)
    proc = cli("annotations", "--labels", label_dir / "labels.txt", "--images", label_dir / "images",
               "--out", label_dir / "train.json")
    assert_user_error(proc, "b.jpg: not a readable image (labelled at", "labels.txt:3)")
    assert snapshot(label_dir) == before


def test_good_labels_still_convert(label_dir):
    (label_dir / "labels.txt").write_text(LABELS_OK)
    proc = cli("annotations", "--labels", label_dir / "labels.txt", "--images", label_dir / "images",
               "--out", label_dir / "train.json")
    assert proc.returncode == 0, proc.stderr
    coco = json.loads((label_dir / "train.json").read_text())
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 2
    assert stat.S_IMODE((label_dir / "train.json").stat().st_mode) == 0o666 & ~_umask()


def test_annotations_out_over_the_labels(label_dir):
    (label_dir / "labels.txt").write_text(LABELS_OK)
    before = snapshot(label_dir)
    proc = cli("annotations", "--labels", label_dir / "labels.txt", "--out", label_dir / "labels.txt")
    assert_user_error(proc, "would overwrite the input --labels")
    assert snapshot(label_dir) == before


# --- 6. corrupt candidates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, row, value, message", [
    ("boxes", (4, 2), np.inf, "array 'boxes' row 4 (image 0--Event/img_0.jpg) has a NaN or infinite coordinate"),
    ("scores", (8,), np.nan, "array 'scores' row 8 (image 0--Event/img_1.jpg) has a NaN or infinite score"),
    ("boxes", (13, 2), -1.0, "array 'boxes' row 13 (image 0--Event/img_2.jpg) has a negative width or height"),
    ("landmarks", (0, 1, 0), np.nan, "array 'landmarks' row 0 (image 0--Event/img_0.jpg)"),
])
def test_corrupt_candidates(tmp_path, field, row, value, message):
    cands = candidates()
    getattr(cands, field)[row] = value
    save_candidates(tmp_path / "c.npz", cands)
    with pytest.raises(UserError, match=r"c\.npz: " + message.replace("(", r"\(").replace(")", r"\)")):
        load_candidates(tmp_path / "c.npz")
    before = snapshot(tmp_path)
    assert_user_error(cli("postprocess", tmp_path / "c.npz", "--out", tmp_path / "tree"), "c.npz", message)
    assert snapshot(tmp_path) == before


# --- 7. messages instead of tracebacks -------------------------------------------------------------------------


def test_evaluate_out_is_a_folder(tmp_path, wider):
    gt_dir, tree = wider
    (tmp_path / "folder").mkdir()
    before = snapshot(tmp_path)
    proc = cli("evaluate", "--pred", tree, "--gt", gt_dir, "--out", tmp_path / "folder")
    assert_user_error(proc, f"{tmp_path / 'folder'}: is a folder")
    assert snapshot(tmp_path) == before


def test_full_disk_is_a_message(tmp_path, wider):
    """/dev/full fails every write with ENOSPC: the device itself is written through, the error named."""
    gt_dir, tree = wider
    proc = cli("evaluate", "--pred", tree, "--gt", gt_dir, "--out", "/dev/full")
    assert_user_error(proc, "/dev/full: cannot write (No space left on device)")


def test_full_disk_while_writing_a_tree_keeps_the_old_tree(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    write_tree(candidates(), tree, PostprocessConfig())
    before = snapshot(tmp_path)
    calls = {"n": 0}
    real = Path.write_text

    def full_disk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(UserError, match=f"{tree}: cannot write \\(No space left on device\\)"):
        write_tree(candidates(seed=3), tree, PostprocessConfig())
    assert snapshot(tmp_path) == before  # the old tree intact, no staging folder left


def test_full_disk_while_writing_a_file(tmp_path, monkeypatch):
    atomic_write_text(tmp_path / "table.tsv", "old\n")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(UserError, match="table.tsv: cannot write \\(No space left on device\\)"):
        atomic_write_text(tmp_path / "table.tsv", "new\n")
    assert [p.name for p in tmp_path.iterdir()] == ["table.tsv"]
    assert (tmp_path / "table.tsv").read_text() == "old\n"


@pytest.mark.parametrize("width, height", [(0, 480), (640, -32), (100, 480), (640, 100_000)])
def test_export_sizes(tmp_path, width, height):
    (tmp_path / "m.ckpt").write_bytes(b"not loaded")
    jpeg(tmp_path / "i.jpg")
    before = snapshot(tmp_path)
    proc = cli("export", "--weights", tmp_path / "m.ckpt", "--format", "onnx", "--out", tmp_path / "m.onnx",
               "--image", tmp_path / "i.jpg", "--width", width, "--height", height)
    bad = "width" if width != 640 else "height"
    assert_user_error(proc, f"{bad}: must be a multiple of 32 between 32 and 8192")
    assert snapshot(tmp_path) == before


def test_export_over_its_checkpoint(tmp_path):
    (tmp_path / "m.ckpt").write_bytes(b"not loaded")
    jpeg(tmp_path / "i.jpg")
    before = snapshot(tmp_path)
    proc = cli("export", "--weights", tmp_path / "m.ckpt", "--format", "onnx", "--out", tmp_path / "m.ckpt",
               "--image", tmp_path / "i.jpg", "--width", 64, "--height", 64)
    assert_user_error(proc, "would overwrite the input --weights")
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_export_of_a_checkpoint_holding_nan(tmp_path):
    from centerface_flow import runtime

    runtime.mindspore()
    from centerface_flow.checkpoint import ModelMeta, build_network, save_checkpoint

    meta = ModelMeta.model_zoo(head_width=24, source="nan test")
    net = build_network(meta)
    params = {name: p.asnumpy() for name, p in net.parameters_dict().items()}
    name = next(n for n in params if n.endswith("weight"))
    params[name] = params[name].copy()
    params[name].flat[3] = np.nan
    save_checkpoint(tmp_path / "nan.ckpt", params, meta)
    jpeg(tmp_path / "i.jpg")
    before = snapshot(tmp_path)
    proc = cli("export", "--weights", tmp_path / "nan.ckpt", "--format", "onnx", "--out", tmp_path / "m.onnx",
               "--image", tmp_path / "i.jpg", "--width", 64, "--height", 64, timeout=300)
    assert_user_error(proc, f"nan.ckpt: parameter {name} holds 1 NaN/inf value(s)")
    assert snapshot(tmp_path) == before


# --- 8. permissions and leftovers of killed runs ---------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_published_outputs_have_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        tree = tmp_path / "tree"
        write_tree(candidates(), tree, PostprocessConfig())
        atomic_write_text(tmp_path / "ap.tsv", "x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(tree.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in tree.rglob("*") if p.is_dir()} == {0o755}
    assert {stat.S_IMODE(p.stat().st_mode) for p in tree.rglob("*") if p.is_file()} == {0o644}
    assert stat.S_IMODE((tmp_path / "ap.tsv").stat().st_mode) == 0o644


@pytest.mark.slow
def test_checkpoints_are_published_readable(tmp_path):
    from centerface_flow import runtime

    runtime.mindspore()
    from centerface_flow.checkpoint import ModelMeta, save_checkpoint

    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "m.ckpt", {"w": np.zeros(3, np.float32)}, ModelMeta.released())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.ckpt").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def test_leftovers_of_a_killed_run_are_removed_by_the_next_run(tmp_path):
    import socket

    host = socket.gethostname().replace("-", "_").replace("@", "_")
    dead, alive = _dead_pid(), os.getppid()
    tree = tmp_path / "tree"
    stale = [tmp_path / f".tree.tmp-{dead}@{host}-abc", tmp_path / f".tree.old-{dead}@{host}-def",
             tmp_path / ".tree.tmp-k2j3h4"]  # the last: the layout of earlier versions
    for path in stale:
        (path / "0--Event").mkdir(parents=True)
        (path / "0--Event" / "x.txt").write_text("half written")
    running = tmp_path / f".tree.tmp-{alive}@{host}-ghi"  # another run still writing
    running.mkdir()
    unrelated = tmp_path / ".other.tmp-1@x-y"
    unrelated.mkdir()
    write_tree(candidates(), tree, PostprocessConfig())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".other.tmp-1@x-y", running.name, "tree"])

    files = tmp_path / "tables"
    files.mkdir()
    (files / f".ap.tsv.tmp-{dead}@{host}-xyz").write_text("half")
    (files / f".pr.tsv.tmp-{dead}@{host}-uvw").write_text("half")  # another file's, same folder
    (files / ".notes.tmp-mine").write_text("a hidden file of the user's that merely looks alike")
    atomic_write_text(files / "ap.tsv", "done\n")
    assert sorted(p.name for p in files.iterdir()) == [".notes.tmp-mine", "ap.tsv"]
    assert staging_prefix(files / "ap.tsv").startswith(f".ap.tsv.tmp-{os.getpid()}@{host}-")
    assert remove_stale_staging(files / "ap.tsv") == []


# --- 9. the README says how to resume after a kill -9 -----------------------------------------------------------


def test_readme_says_unlock_after_a_kill():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Configuration and what reruns when"):readme.index("## Cluster and Ascend")]
    assert "--unlock" in section and "kill -9" in section
    training = (REPO / "docs" / "training.md").read_text()
    section = training[training.index("## Resume"):training.index("## More than one device")]
    assert "--unlock" in section and "kill -9" in section


# --- 10. devices, FIFOs and symlinks are written through, never replaced ---------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a character device needs root")
def test_evaluate_out_to_a_device_writes_through_it(tmp_path, wider):
    gt_dir, tree = wider
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null: the machine's stays untouched
    proc = cli("evaluate", "--pred", tree, "--gt", gt_dir, "--out", null, "--pr-out", null)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(null.lstat().st_mode) and os.major(null.lstat().st_rdev) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".null")] == []


def test_fifo_and_symlink_outputs(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("text", fifo.read_text()))
    reader.start()
    atomic_write_text(fifo, "through the pipe\n")
    reader.join(10)
    assert got["text"] == "through the pipe\n" and stat.S_ISFIFO(fifo.lstat().st_mode)

    target = tmp_path / "real.tsv"
    target.write_text("old")
    link = tmp_path / "link.tsv"
    link.symlink_to(target)
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link.tsv", "real.tsv"]

    dangling = tmp_path / "dangling.tsv"
    dangling.symlink_to(tmp_path / "made.tsv")
    atomic_write_text(dangling, "x\n")
    assert dangling.is_symlink() and (tmp_path / "made.tsv").read_text() == "x\n"


def test_tree_out_that_is_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    write_tree(candidates(), real, PostprocessConfig())
    (tmp_path / "link").symlink_to(real)
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="link: is a symlink"):
        write_tree(candidates(seed=2), tmp_path / "link", PostprocessConfig())
    assert snapshot(tmp_path) == before


# --- user-supplied numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("option, values, message", [
    ("--scales", ["nan"], "--scales: need one or more numbers in (0, 16]"),
    ("--scales", ["1", "inf"], "--scales: need one or more numbers in (0, 16]"),
    ("--scales", ["0"], "--scales: need one or more numbers in (0, 16]"),
    ("--scales", ["-1"], "--scales: need one or more numbers in (0, 16]"),
    ("--score-threshold", ["nan"], "--score-threshold: must be in [0, 1)"),
    ("--score-threshold", ["-0.5"], "--score-threshold: must be in [0, 1)"),
    ("--min-score", ["inf"], "--min-score: must be in (0, 1)"),
    ("--max-side", ["-5"], "--max-side: must be 0 (no cap) or positive"),
    ("--nms-iou", ["nan"], "--nms-iou: must be in [0, 1]"),
])
def test_detect_numbers_are_checked_before_any_work(tmp_path, option, values, message):
    jpeg(tmp_path / "a.jpg")
    before = snapshot(tmp_path)
    proc = cli("detect", "--weights", tmp_path / "never-loaded.ckpt", "--out", tmp_path / "out", option, *values,
               "--", tmp_path / "a.jpg")
    assert_user_error(proc, message)
    assert snapshot(tmp_path) == before


def test_image_pixel_cap(tmp_path, monkeypatch):
    """A 200-byte PNG whose header declares 100 000 x 100 000 pixels is refused before it is decoded."""
    import struct
    import zlib

    from centerface_flow.inference.preprocess import ImageReadError, read_image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match=r"bomb.png: 10000 megapixels, over the cap of 100 megapixels "
                                             r"\(set CENTERFACE_MAX_IMAGE_PIXELS"):
        read_image(bomb)
    small = jpeg(tmp_path / "small.jpg", size=(20, 30))
    assert read_image(small).shape == (20, 30, 3)
    monkeypatch.setenv("CENTERFACE_MAX_IMAGE_PIXELS", "500")
    with pytest.raises(ImageReadError, match="small.jpg: 0 megapixels, over the cap of 0.0005 megapixels"):
        read_image(small)
    monkeypatch.setenv("CENTERFACE_MAX_IMAGE_PIXELS", "0")
    assert read_image(small).shape == (20, 30, 3)
    monkeypatch.setenv("CENTERFACE_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(UserError, match="CENTERFACE_MAX_IMAGE_PIXELS='lots': expected a number of pixels"):
        read_image(small)
    monkeypatch.setenv("CENTERFACE_MAX_IMAGE_PIXELS", "-5")
    with pytest.raises(UserError, match=r"CENTERFACE_MAX_IMAGE_PIXELS='-5': expected a number of pixels .* >= 0, got -5"):
        read_image(small)



@pytest.mark.parametrize("key, value, message", [
    ("lr", float("nan"), "lr: must be a positive finite number"),
    ("lr", float("inf"), "lr: must be a positive finite number"),
    ("gamma", float("nan"), "gamma: must be a positive finite number"),
    ("resolution", 65536, "resolution: must be a multiple of 32 up to 4096"),
    ("resolution", 0, "resolution: must be a positive integer"),
])
def test_training_numbers(key, value, message):
    from centerface_flow.training.train import TrainConfig

    with pytest.raises(UserError, match=f"train: {message}"):
        TrainConfig.from_dict({"init": "scratch", key: value}, where="train")
