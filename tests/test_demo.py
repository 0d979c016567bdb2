"""The embedded demo data set is in the exact WIDER FACE formats and its labels are exact."""
import numpy as np
import pytest
from scipy.io import loadmat

from centerface_flow.data.demo import DemoSpec, build_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, build_demo(out, DemoSpec(train_images=6, val_images=4))


def test_layout(demo):
    _, paths = demo
    train = sorted(paths["train_images"].rglob("*.jpg"))
    val = sorted(paths["val_images"].rglob("*.jpg"))
    assert len(train) == 6 and len(val) == 4
    assert all(p.parent.name.split("--")[0].isdigit() for p in train + val)  # <event>/<image>.jpg, "N--Name"
    for name in ("face", "easy", "medium", "hard"):
        assert (paths["val_ground_truth"] / f"wider_{name}_val.mat").is_file()


def test_label_file_matches_images(demo):
    _, paths = demo
    from centerface_flow.data.annotations import read_labels

    images = read_labels(paths["train_labels"])
    assert len(images) == 6
    for record in images:
        assert (paths["train_images"] / record.file_name).is_file()
        for face in record.faces:
            x, y, w, h = face.box
            kps = face.keypoints
            assert w > 0 and h > 0
            # every landmark lies inside its face box
            assert np.all((kps[:, 0] >= x) & (kps[:, 0] <= x + w) & (kps[:, 1] >= y) & (kps[:, 1] <= y + h))


def test_mat_files_have_official_structure(demo):
    _, paths = demo
    face = loadmat(paths["val_ground_truth"] / "wider_face_val.mat")
    hard = loadmat(paths["val_ground_truth"] / "wider_hard_val.mat")
    easy = loadmat(paths["val_ground_truth"] / "wider_easy_val.mat")
    assert face["event_list"].shape[1] == 1 and face["event_list"][0, 0][0].startswith("0--")
    n_images = sum(len(face["file_list"][i, 0]) for i in range(face["event_list"].shape[0]))
    assert n_images == 4
    for i in range(face["event_list"].shape[0]):
        for j in range(len(face["file_list"][i, 0])):
            boxes = face["face_bbx_list"][i, 0][j, 0]
            assert boxes.dtype == np.int32 and boxes.shape[1] == 4
            # hard keeps every face (1-based), easy only the large ones
            assert hard["gt_list"][i, 0][j, 0].ravel().tolist() == list(range(1, len(boxes) + 1))
            easy_idx = easy["gt_list"][i, 0][j, 0].ravel() - 1
            assert np.all(boxes[easy_idx, 3] >= 40)


def test_deterministic(tmp_path):
    a = build_demo(tmp_path / "a", DemoSpec(train_images=2, val_images=2, seed=7))
    b = build_demo(tmp_path / "b", DemoSpec(train_images=2, val_images=2, seed=7))
    assert a["train_labels"].read_text() == b["train_labels"].read_text()
