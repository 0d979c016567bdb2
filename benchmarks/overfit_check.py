"""A from-scratch CenterFace overfits 8 real WIDER val images: AP@0.5 on those 8 images must exceed 0.9.

    CENTERFACE_SHARED_DATA=/work/shared .venv/bin/python benchmarks/overfit_check.py [--epochs 300] [--out DIR]

The 8 images are the first (by name) with 1-4 faces whose sides are all >= 128 px (as it happens, one face each).
Training: init scratch (head 24, ReLU), 128 px input (the faces become 16-60 px), batch 8 = all 8 images in every
step, Adam lr 0.004 (the model zoo's) x0.1 after 90 % of the epochs, heatmap bias initialised to -2.19
(``heatmap_bias``, CenterNet's prior 0.1), augmentation off (the crop is the whole image, letterboxed) so that the
evaluation input (the same letterbox, through the normal export + detect path) is what the network saw. Before
training, the script checks that the training targets themselves, decoded like network outputs and mapped back
through the letterbox, give AP 1.0 on those images (targets, decoding and the letterbox agree). Exit status 0 when
AP > 0.9. Only the last epoch's checkpoint is kept (``--keep-all`` keeps every epoch).

Measured (2-core CPU, shared with other jobs), two runs: 300 steps in 3.0-3.8 min of training (~6 min in all),
final training loss ~0.002, AP@0.5 = 1.0000 (PASS), best score per image 0.87-0.93 and 0.90-0.98.

Why the earlier recipe (batch 2, zero heatmap bias, 2,000 steps) stalled at AP 0.66 with centre scores ~0.47:

* Zero heatmap bias (the model zoo's init): every cell starts at sigmoid 0.5, the focal loss starts at ~180, and
  the fastest way down is to make *all* 24 heatmap weights negative over the non-negative (post-ReLU) neck
  features. Faces then become cells where those features are 0, whose logit can never exceed the bias (~0), so
  centre scores are capped near 0.5 and the loss at ~0.2-0.4 (measured: all 24 weights -0.15...-0.20, bias -0.04).
  With bias -2.19 some weights become positive and centres reach 0.9+ (loss 0.0017 vs 0.42 at 300 steps of
  batch 8).
* Batch 2: BatchNorm trains on the statistics of each pair of images, but evaluation uses the running averages;
  the from-scratch network learns to depend on the pair (a batch-2 network with bias -2.19 after 600 steps:
  AP 1.0 with batch statistics, 0.77 with the running statistics evaluation uses). With all 8 images in every batch the batch statistics are the
  running statistics: even the zero-bias network reaches AP 1.0 at batch 8 (but with centre scores ~0.45).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_common import average_precision, detect_all, run_training, shared_widerface, write_subset_json


def targets_ap(annotations: Path, image_dir: Path, resolution: int, gts: dict) -> float:
    """AP@0.5 of the training targets decoded as if they were network outputs (must be 1.0)."""
    from centerface_flow.checkpoint import ModelMeta
    from centerface_flow.data.annotations import load_coco
    from centerface_flow.data.augment import AugmentConfig
    from centerface_flow.data.pipeline import InputSpec, TrainSource
    from centerface_flow.data.targets import TARGET_KEYS
    from centerface_flow.inference.decode import peaks_and_decode
    from centerface_flow.inference.preprocess import prepare, read_image
    from centerface_flow.postprocess.nms import nms

    meta = ModelMeta.model_zoo(24, "relu")
    augment = AugmentConfig(resolution, anchor_sampling=False, rand_crop=False, flip=0.0, color=False)
    source = TrainSource(load_coco(annotations), image_dir, augment, InputSpec(), seed=1)
    dets = {}
    for index, (name, _, _) in enumerate(source.samples):
        t = dict(zip(TARGET_KEYS, source.load(index, np.random.default_rng(0))[1:]))
        det = peaks_and_decode(t["heatmap"], t["size"], t["offset"], t["landmarks"], threshold=0.99)
        _, tf = prepare(read_image(image_dir / name), "letterbox", meta.input_format, meta.mean, meta.std,
                        letterbox_size=resolution)
        boxes = det.boxes.copy()
        boxes[:, 0::2] = (boxes[:, 0::2] - tf.tx) / tf.sx
        boxes[:, 1::2] = (boxes[:, 1::2] - tf.ty) / tf.sy
        keep, scores = nms(boxes, det.scores, "hard", 0.4)
        dets[name] = (boxes[keep], scores)
    return average_precision(dets, gts, iou=0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--min-face", type=float, default=128, help="smallest face side (original pixels)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.004)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--heatmap-bias", type=float, default=-2.19)
    parser.add_argument("--out", default="benchmarks/out/overfit_check")
    parser.add_argument("--keep-all", action="store_true", help="keep every epoch's checkpoint")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from centerface_flow import runtime

    runtime.mindspore("graph")
    from centerface_flow.data.annotations import read_labels
    from centerface_flow.training.train import TrainConfig

    wf = shared_widerface()
    images = {im.file_name: im for im in read_labels(wf / "wider_face_split" / "wider_face_val_bbx_gt.txt")}
    on_disk = wf / "WIDER_val" / "images"

    def large_and_few(name: str) -> bool:
        faces = images[name].faces
        return 1 <= len(faces) <= 4 and all(min(f.box[2], f.box[3]) >= args.min_face for f in faces)

    candidates = sorted(n for n in images if (on_disk / n).is_file() and large_and_few(n))[:8]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = write_subset_json(wf, lambda n: n in candidates, out / "train.json")
    gts = {n: [f.box for f in images[n].faces] for n in names}
    sanity = targets_ap(out / "train.json", on_disk, args.resolution, gts)
    print(f"targets decoded as outputs: AP@0.5 = {sanity:.4f} (must be 1.0)")
    if sanity < 1.0:
        return 1
    cfg = TrainConfig.from_dict({
        "init": "scratch", "head_width": 24, "activation": "relu", "epochs": args.epochs,
        "resolution": args.resolution, "batch_size": args.batch_size, "lr": args.lr,
        "milestones": [int(args.epochs * 0.9)], "heatmap_bias": args.heatmap_bias,
        "num_workers": 0, "anchor_sampling": False, "rand_crop": False, "flip": 0.0, "color_aug": False,
    })
    run = out / (f"run_b{args.batch_size}_r{args.resolution}_lr{args.lr:g}_hb{args.heatmap_bias:g}"
                 f"_e{args.epochs}")
    start = time.perf_counter()
    last = run_training(cfg.to_dict(), out / "train.json", on_disk, run)
    minutes = (time.perf_counter() - start) / 60
    if not args.keep_all:  # 22 MB per epoch; the resume state is not needed once the run has finished
        for path in [*run.glob("epoch_*.ckpt"), *(run / ".state").glob("epoch_*.ckpt")]:
            if path.name != last.name:
                path.unlink()
    dets = detect_all(last, on_disk, names, policy="letterbox", letterbox_size=args.resolution)
    ap = average_precision(dets, gts, iou=0.5)
    peaks = sorted(float(s.max()) for _, s in dets.values() if len(s))
    print(f"overfit: {len(names)} images, {sum(len(g) for g in gts.values())} faces, {args.epochs} epochs of batch "
          f"{args.batch_size} ({minutes:.1f} min): best score per image {peaks[0]:.2f}-{peaks[-1]:.2f}, "
          f"AP@0.5 = {ap:.4f} -> {'PASS' if ap > 0.9 else 'FAIL'} (needs > 0.9)")
    return 0 if ap > 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
