"""A from-scratch CenterFace overfits 8 real WIDER val images: AP@0.5 on those 8 images must exceed 0.9.

    CENTERFACE_SHARED_DATA=/work/shared .venv/bin/python benchmarks/overfit_check.py [--epochs 150] [--out DIR]

The 8 images are the first (by name) with 1-4 faces whose sides are all >= 128 px. Training: init scratch (head
24, ReLU), 128 px input (those faces become >= 16 px), batch 2, Adam lr 0.004 (the model zoo's) ×0.1 after 90 % of
the epochs, augmentation off (the crop is the whole image, letterboxed) so that the evaluation input (the same
letterbox) is what the network saw. It takes many steps: with the zoo's zero-initialised heatmap bias (sigmoid 0.5
everywhere) the focal loss starts in the hundreds, Adam moves each weight by about lr per step, and the size head
(loss weight 0.1, small-face mask 1 for large faces) converges last; runs with too few steps (150 of batch 8 at
256 px: AP 0.33; 600 of batch 2 at 256 px with faces >= 40 px: AP 0.41) had predicted boxes ~0.6x too small.
Exit status 0 when AP > 0.9.

Measured: 1,200 steps (300 epochs) AP 0.5625, 2,000 steps (500 epochs, resumed from 300) AP 0.6607 with training
loss 0.26: the check FAILS here. The detections are in the right places; centre scores plateau near 0.46 and the
two largest faces (44x60 and 38x56 px at 128) are predicted too small (IoU < 0.5). More steps keep improving it
(0.41 -> 0.56 -> 0.66); the CPU time on this shared machine ran out first.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_common import average_precision, detect_all, run_training, shared_widerface, write_subset_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--min-face", type=float, default=128, help="smallest face side (original pixels)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.004)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--out", default="benchmarks/out/overfit128")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from centerface_flow import runtime

    runtime.mindspore("graph")
    from centerface_flow.data.annotations import read_labels
    from centerface_flow.train import TrainConfig

    wf = shared_widerface()
    images = {im.file_name: im for im in read_labels(wf / "wider_face_split" / "wider_face_val_bbx_gt.txt")}
    on_disk = wf / "WIDER_val" / "images"

    def small_and_clear(name: str) -> bool:
        faces = images[name].faces
        return 1 <= len(faces) <= 4 and all(min(f.box[2], f.box[3]) >= args.min_face for f in faces)

    candidates = sorted(n for n in images if (on_disk / n).is_file() and small_and_clear(n))[:8]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = write_subset_json(wf, lambda n: n in candidates, out / "train.json")
    cfg = TrainConfig.from_dict({
        "init": "scratch", "head_width": 24, "activation": "relu", "epochs": args.epochs,
        "resolution": args.resolution, "batch_size": args.batch_size, "lr": args.lr,
        "milestones": [int(args.epochs * 0.9)],
        "num_workers": 0, "anchor_sampling": False, "rand_crop": False, "flip": 0.0, "color_aug": False,
    })
    start = time.perf_counter()
    last = run_training(cfg.to_dict(), out / "train.json", on_disk, out / "run")
    minutes = (time.perf_counter() - start) / 60
    dets = detect_all(last, on_disk, names, policy="letterbox", letterbox_size=args.resolution)
    gts = {n: [f.box for f in images[n].faces] for n in names}
    ap = average_precision(dets, gts, iou=0.5)
    print(f"overfit: {len(names)} images, {sum(len(g) for g in gts.values())} faces, {args.epochs} epochs "
          f"({minutes:.1f} min): AP@0.5 = {ap:.4f} -> {'PASS' if ap > 0.9 else 'FAIL'} (needs > 0.9)")
    return 0 if ap > 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
