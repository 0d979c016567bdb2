"""The embedded demo data set is in the exact WIDER FACE formats, its labels are exact, and its domains move the
labels with the image."""
import cv2
import numpy as np
import pytest
from scipy.io import loadmat

from centerface_flow.data.demo import SPLITS, DemoSpec, apply_domain, build_demo, infrared, rotate90
from centerface_flow.errors import UserError


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


def test_val_split_does_not_depend_on_the_train_size(tmp_path):
    build_demo(tmp_path / "a", DemoSpec(train_images=2, val_images=2))
    build_demo(tmp_path / "b", DemoSpec(train_images=3, val_images=2))
    val_gt = "wider_face_split/wider_face_val_bbx_gt.txt"
    assert (tmp_path / "a" / val_gt).read_text() == (tmp_path / "b" / val_gt).read_text()


def test_spec_refuses_an_unknown_domain():
    with pytest.raises(UserError, match="domain"):
        DemoSpec(domain="sideways")


def test_train_and_val_share_no_photo():
    train, val = SPLITS["train"], SPLITS["val"]
    assert not set(train.backgrounds) & set(val.backgrounds)
    assert not set(train.lfw_faces) & set(val.lfw_faces)
    assert train.astronaut and not val.astronaut  # the one colour face trains only


def _marked_scene():
    """A 40×60 (h×w) image with one face box x 10-30, y 5-25 and its 5 landmarks drawn as single pixels."""
    image = np.zeros((40, 60, 3), np.uint8)
    boxes = np.array([[10, 5, 20, 20]], np.float32)
    marks = np.array([[[14.5, 10.5], [25.5, 10.5], [20.5, 15.5], [15.5, 20.5], [24.5, 20.5]]], np.float32)
    image[5:25, 10:30] = 100
    for value, (x, y) in enumerate(marks[0], start=1):
        image[int(y), int(x)] = 200 + value
    return image, boxes, marks


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotate90_moves_boxes_and_landmarks_with_the_image(k):
    image, boxes, marks = _marked_scene()
    rotated, rboxes, rmarks = rotate90(image, boxes, marks, k)
    assert rotated.shape == np.rot90(image, k).shape and np.array_equal(rotated, np.rot90(image, k))
    # the box is exactly the rotated face's pixels
    ys, xs = np.nonzero(rotated[:, :, 0])
    x, y, w, h = rboxes[0]
    assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    # each landmark is still the pixel that carries its mark (labels keep their order)
    for value, (lx, ly) in enumerate(rmarks[0], start=1):
        assert rotated[int(ly), int(lx), 0] == 200 + value
        assert x <= lx <= x + w and y <= ly <= y + h


def test_quarter_turns_compose():
    image, boxes, marks = _marked_scene()
    once = rotate90(*rotate90(image, boxes, marks, 1), 3)
    for a, b in zip(once, (image, boxes, marks)):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_rotated_demo_is_the_upright_scene_turned(tmp_path):
    """The domain draws from its own generator: the same scenes, each turned a quarter turn one way or the other."""
    from centerface_flow.data.annotations import read_labels

    spec = {"train_images": 4, "val_images": 1, "seed": 3}
    upright = read_labels(build_demo(tmp_path / "u", DemoSpec(domain="upright", **spec))["train_labels"])
    paths = build_demo(tmp_path / "r", DemoSpec(domain="rotated", **spec))
    rotated = read_labels(paths["train_labels"])
    assert [r.file_name for r in rotated] == [r.file_name for r in upright]
    for up, rot in zip(upright, rotated):
        height, width = cv2.imread(str(tmp_path / "u/WIDER_train/images" / up.file_name)).shape[:2]
        assert cv2.imread(str(paths["train_images"] / rot.file_name)).shape[:2] == (width, height)
        boxes = np.array([f.box for f in up.faces], np.float32)
        marks = np.array([f.keypoints[:, :2] for f in up.faces], np.float32)
        turns = []
        for k in (1, 3):
            _, kb, km = rotate90(np.zeros((height, width, 1), np.uint8), boxes, marks, k)
            rb = np.array([f.box for f in rot.faces])
            rm = np.array([f.keypoints[:, :2] for f in rot.faces])
            turns.append(np.allclose(kb, rb, atol=0.02) and np.allclose(km, rm, atol=0.02))
        assert any(turns), up.file_name


def test_infrared_is_low_contrast_grey():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    out = infrared(image, np.random.default_rng(1))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    assert out.std() < 0.4 * image.astype(float).mean(axis=2).std()


@pytest.mark.parametrize("domain", ["infrared", "blur", "upright"])
def test_photometric_domains_keep_the_labels(domain):
    image, boxes, marks = _marked_scene()
    out, out_boxes, out_marks = apply_domain(domain, image, boxes, marks, np.random.default_rng(0))
    assert out.shape == image.shape
    assert np.array_equal(out_boxes, boxes) and np.array_equal(out_marks, marks)
