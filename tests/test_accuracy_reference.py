"""Our default test pass against the released model's authors' own decoding (benchmarks/authors_decoder.py).

On the first shared val image of every event (61 images, crowds included): the default single pass through
MindSpore (converted checkpoint) must score within 0.002 AP of the authors' decoding of the released ONNX file
through ONNX Runtime, on each of easy / medium / hard, and the 3x3-peak decoding must stay available.
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def one_image_per_event(widerface, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("val61")
    for event in sorted((widerface / "WIDER_val" / "images").iterdir()):
        first = min(event.glob("*.jpg"))
        (root / event.name).mkdir()
        (root / event.name / first.name).symlink_to(first)
    return root


def test_default_single_pass_matches_the_authors_decoding(tmp_path, widerface, released_onnx, one_image_per_event):
    import authors_decoder

    from centerface_flow import runtime
    from centerface_flow.convert.released import convert_released
    from centerface_flow.evaluation import evaluate_tree
    from centerface_flow.inference.detect import InferenceConfig, collect_images, infer_folder
    from centerface_flow.postprocess.predictions import PostprocessConfig, write_tree

    runtime.mindspore("pynative")  # as every command does: MindSpore imported with the CPU fast path
    gt = widerface / "ground_truth"
    post = PostprocessConfig()
    session = authors_decoder.released_session(released_onnx)
    authors_decoder.write_tree(session, collect_images(one_image_per_event), tmp_path / "authors",
                               post.score_threshold)
    reference = evaluate_tree(tmp_path / "authors", gt, subset=True)
    assert reference.images == 61

    ckpt = convert_released(released_onnx, tmp_path / "released.ckpt")
    cands = infer_folder(ckpt, one_image_per_event, tmp_path / "c.npz", InferenceConfig())
    write_tree(cands, tmp_path / "ours", post)
    ours = evaluate_tree(tmp_path / "ours", gt, subset=True)
    for setting in ("easy", "medium", "hard"):
        assert abs(ours.ap()[setting] - reference.ap()[setting]) <= 0.002, (setting, ours.ap(), reference.ap())

    # the peaks decoding loses crowded small faces: fewer candidates, lower hard AP than the cells decoding
    peaks = infer_folder(released_onnx, one_image_per_event, tmp_path / "p.npz", InferenceConfig(decode="peaks"))
    write_tree(peaks, tmp_path / "peaks", post)
    assert len(peaks.scores) < len(cands.scores)
    assert evaluate_tree(tmp_path / "peaks", gt, subset=True).ap()["hard"] < ours.ap()["hard"]
