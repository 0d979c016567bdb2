"""Fine-tuning the converted released model keeps its accuracy: train on the real WIDER val images of half the
events, compare AP@0.5 on the other half before and after (must stay within 1 point).

    CENTERFACE_SHARED_DATA=/work/shared .venv/bin/python benchmarks/finetune_check.py [--epochs 2] [--out DIR]

Events are split by their sorted index (even → train, odd → held out). Fine-tuning: init released (BatchNorms
frozen, as they are folded in the released weights; the first conv at lr/255 because the released model takes raw
0-255 input), the model-zoo augmentation and targets at ``--resolution`` (256), Adam lr 1e-5, batch 8, no weight
decay. Evaluation: the released inference policy (input resized to a multiple of 32 of the original size), through
an ONNX export, decode top 200 at score > 0.02, NMS 0.4, AP@0.5 over all held-out faces (VOC all-point AP; a plain
AP, not the WIDER easy/medium/hard protocol). Exit status 0 when |ΔAP| <= 0.01.

Measured (2 epochs, 310 train / 300 held-out images, 2,326 faces): released 0.7304, fine-tuned 0.6770 (lr 1e-4,
384 px, wd 5e-4), 0.6841 (lr 1e-5, 256 px), 0.6800 (no weight decay), 0.6864 (+ first conv at lr/255): the check
FAILS by 4-5 points. Diagnosis: on the training crops the released model predicts boxes ~1.8x larger than the
zoo-recipe targets for faces under 12 px (log-size error +0.6) and scores their centres low (0.16), while it fits
larger faces (size error -0.02, centre score 0.59). The zoo recipe (small-face weight mask x5-x15, every tiny WIDER
face a focal positive) pulls the model toward tiny faces: after fine-tuning tiny-face centres score 0.27, larger
faces 0.46 with boxes 10 % smaller, and AP@0.5 over all faces drops. The released model was evidently not
trained with these targets for tiny faces; matching it would need its authors' recipe, not the model zoo's.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_common import average_precision, detect_all, run_training, shared_widerface, write_subset_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--out", default="benchmarks/out/finetune")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from centerface_flow import runtime

    runtime.mindspore("graph")
    from centerface_flow.convert.released import convert_released
    from centerface_flow.data.annotations import read_labels
    from centerface_flow.train import TrainConfig

    wf = shared_widerface()
    on_disk = wf / "WIDER_val" / "images"
    events = sorted(p.name for p in on_disk.iterdir() if p.is_dir())
    train_events = set(events[0::2])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    released = convert_released(None, out / "released.ckpt")
    train_names = write_subset_json(wf, lambda n: n.split("/")[0] in train_events, out / "train.json")
    images = {im.file_name: im for im in read_labels(wf / "wider_face_split" / "wider_face_val_bbx_gt.txt")}
    held_out = sorted(n for n in images if n.split("/")[0] not in train_events and (on_disk / n).is_file())
    gts = {n: [f.box for f in images[n].faces] for n in held_out}
    cfg = TrainConfig.from_dict({"init": "released", "init_path": str(released), "epochs": args.epochs,
                                 "resolution": args.resolution, "batch_size": 8, "lr": args.lr, "milestones": [],
                                 "weight_decay": args.weight_decay,
                                 "num_workers": 2})
    start = time.perf_counter()
    tuned = run_training(cfg.to_dict(), out / "train.json", on_disk, out / f"run_lr{args.lr:g}_{args.resolution}_wd{args.weight_decay:g}")
    minutes = (time.perf_counter() - start) / 60
    cached = out / "released_ap.json"  # the released model's AP does not depend on the fine-tuning settings
    if cached.is_file() and json.loads(cached.read_text()).get("images") == len(held_out):
        ap_before = json.loads(cached.read_text())["ap"]
    else:
        ap_before = average_precision(detect_all(released, on_disk, held_out), gts)
        cached.write_text(json.dumps({"images": len(held_out), "ap": ap_before}))
    ap_after = average_precision(detect_all(tuned, on_disk, held_out), gts)
    delta = ap_after - ap_before
    print(f"fine-tune: {len(train_names)} train images ({len(train_events)} events), {len(held_out)} held-out images "
          f"({sum(len(g) for g in gts.values())} faces); {args.epochs} epochs at {args.resolution} px in "
          f"{minutes:.1f} min")
    print(f"AP@0.5 held out: released {ap_before:.4f}, fine-tuned {ap_after:.4f}, delta {delta * 100:+.2f} points "
          f"-> {'PASS' if abs(delta) <= 0.01 else 'FAIL'} (needs within 1 point)")
    return 0 if abs(delta) <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
