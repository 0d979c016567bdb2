"""Input-size policies, pixel formats and the transform back to original-image pixels."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from centerface_flow.inference.preprocess import ImageReadError, InputTransform, input_size, prepare, read_image

MEAN = (0.408, 0.447, 0.470)
STD = (0.289, 0.274, 0.278)


def square_image(w: int, h: int, box: tuple[int, int, int, int]) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 255
    return img


def bright_extent(chw: np.ndarray) -> np.ndarray:
    """xyxy extent (pixel edges) of pixels brighter than half in the first channel."""
    ys, xs = np.nonzero(chw[0] > chw[0].min() + (chw[0].max() - chw[0].min()) / 2)
    return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)


@pytest.mark.parametrize(("w", "h", "scale", "expect"), [
    (640, 480, 1.0, (640, 480)), (1024, 683, 1.0, (1024, 704)), (33, 1, 1.0, (64, 32)), (1024, 768, 0.5, (512, 384)),
    (1000, 700, 1.5, (1504, 1056)),
])
def test_released_input_size(w, h, scale, expect):
    assert input_size(w, h, "released", scale) == expect
    assert input_size(w, h, "letterbox", scale) == (832, 832)
    with pytest.raises(ValueError, match="size policy"):
        input_size(w, h, "square")


@pytest.mark.parametrize("policy", ["released", "letterbox"])
@pytest.mark.parametrize("scale", [1.0, 0.5, 1.3])
@pytest.mark.parametrize("flip", [False, True])
def test_geometry_maps_back_to_original(policy, scale, flip):
    box = (100, 60, 260, 200)
    img = square_image(500, 333, box)
    chw, tr = prepare(img, policy, "rgb255", scale=scale, flip=flip)
    assert chw.shape == (3, tr.input_h, tr.input_w) and chw.dtype == np.float32
    assert (tr.input_w, tr.input_h) == input_size(500, 333, policy, scale)
    back = tr.boxes_to_original(bright_extent(chw))
    tol = 1.5 / min(tr.sx, tr.sy)
    np.testing.assert_allclose(back[0], box, atol=tol)


def test_rgb255_and_bgr_meanstd_pixel_formats():
    img = np.zeros((64, 96, 3), np.uint8)
    img[..., 0] = 200  # blue in BGR
    img[..., 2] = 10  # red
    rgb, _ = prepare(img, "released", "rgb255")
    np.testing.assert_array_equal(rgb[:, 5, 5], [10, 0, 200])
    bgr, _ = prepare(img, "released", "bgr_meanstd", MEAN, STD)
    expect = (np.array([200, 0, 10], np.float32) / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    np.testing.assert_allclose(bgr[:, 5, 5], expect, rtol=1e-6)
    # plane by plane, the same float32 operations as on the whole image: the same values, bit for bit
    noise = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    whole = (noise.astype(np.float32) / np.float32(255) - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    np.testing.assert_array_equal(prepare(noise, "released", "bgr_meanstd", MEAN, STD)[0], whole.transpose(2, 0, 1))
    np.testing.assert_array_equal(prepare(noise, "released", "rgb255")[0], noise[..., ::-1].transpose(2, 0, 1))
    with pytest.raises(ValueError, match="mean and std"):
        prepare(img, "released", "bgr_meanstd")
    with pytest.raises(ValueError, match="input format"):
        prepare(img, "released", "yuv")


def _centernet_affine(c: np.ndarray, s: float, out_w: int, out_h: int) -> np.ndarray:
    """CenterNet's get_affine_transform (rotation 0) restated: three point pairs through getAffineTransform."""
    src = np.float32([c, c + [0, -0.5 * s], c + [-0.5 * s, -0.5 * s]])
    dst_c = np.array([out_w * 0.5, out_h * 0.5])
    dst = np.float32([dst_c, dst_c + [0, -0.5 * out_w], dst_c + [-0.5 * out_w, -0.5 * out_w]])
    return cv2.getAffineTransform(src, dst)


@pytest.mark.parametrize("scale", [1.0, 0.75])
@pytest.mark.parametrize("wh", [(500, 333), (300, 640)])
def test_letterbox_equals_model_zoo_transform(scale, wh):
    rng = np.random.default_rng(0)
    w, h = wh
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    chw, tr = prepare(img, "letterbox", "bgr_meanstd", MEAN, STD, scale=scale)
    # the model zoo: resize by scale, c = resized size / 2, s = longest ORIGINAL side, warp to 832x832
    new_w, new_h = int(w * scale), int(h * scale)
    resized = cv2.resize(img, (new_w, new_h))
    mtx = _centernet_affine(np.array([new_w / 2.0, new_h / 2.0]), max(h, w) * 1.0, 832, 832)
    ref = cv2.warpAffine(resized, mtx, (832, 832), flags=cv2.INTER_LINEAR)
    ref = ((ref / 255.0 - np.array(MEAN)) / np.array(STD)).astype(np.float32).transpose(2, 0, 1)
    assert np.mean(np.abs(chw - ref) < 1e-3) > 0.999
    # the model zoo maps detections back with the inverse affine and then divides by scale
    pts = np.array([[10.0, 20.0], [400.0, 700.0]])
    inv = cv2.invertAffineTransform(mtx)
    zoo = (pts @ inv[:, :2].T + inv[:, 2]) / scale
    ours = tr.boxes_to_original(pts.reshape(1, 4)).reshape(2, 2)
    np.testing.assert_allclose(ours, zoo, atol=1e-3)
    # padding is black, i.e. -mean/std after normalisation
    if h < w:
        np.testing.assert_allclose(chw[:, 0, 416], -np.array(MEAN) / np.array(STD), rtol=1e-5)


def test_flip_swaps_landmark_sides():
    tr = InputTransform(sx=2.0, sy=2.0, tx=0.0, ty=0.0, input_w=200, input_h=100, orig_w=100, orig_h=50,
                        flipped=True)
    # a face seen in the flipped input: "left eye" at x=150 is the right eye in the original image
    lm = np.array([[[150, 20], [170, 20], [160, 30], [152, 40], [168, 40]]], np.float32)
    out = tr.landmarks_to_original(lm)
    np.testing.assert_allclose(out[0], [[15, 10], [25, 10], [20, 15], [16, 20], [24, 20]])
    np.testing.assert_allclose(tr.boxes_to_original(np.array([[140, 10, 180, 50]])), [[10, 5, 30, 25]])


def test_read_image(tmp_path):
    good = tmp_path / "ok.png"
    gray = np.full((7, 9), 128, np.uint8)
    cv2.imwrite(str(good), gray)
    img = read_image(good)
    assert img.shape == (7, 9, 3) and img.dtype == np.uint8
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="missing.jpg"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.jpg"):
        read_image(tmp_path / "empty.jpg")
