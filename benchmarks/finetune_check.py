"""Fine-tuning the converted released model keeps its accuracy: train on the real WIDER val images of half the
events, compare AP@0.5 on the other half before and after (must stay within 1 point).

    CENTERFACE_SHARED_DATA=/work/shared .venv/bin/python benchmarks/finetune_check.py [--epochs 3] [--out DIR]

Events are split by their sorted index (even -> train: 310 images of 31 events; odd -> held out: 300 images,
2,326 faces). Fine-tuning: init released (BatchNorms frozen, as they are folded in the released weights; the first
conv at lr/255 because the released model takes raw 0-255 input), the model zoo's augmentation (data-anchor
sampling, random crops 0.6-0.95, flip, colour) at ``--resolution`` 256, Adam lr 1e-5, batch 8, no weight decay,
3 epochs, and two target settings: faces under 10 px in the training input are ignored (``min_face: 10``: no
centre, and their box left out of the heatmap loss) and the small-face weight mask is off
(``small_face_weights: false``). Evaluation: the released inference policy (input resized to a multiple of 32 of
the original size), through an ONNX export, decode top 200 at score > 0.02, NMS 0.4, AP@0.5 over all held-out
faces (VOC all-point AP; a plain AP, not the WIDER easy/medium/hard protocol). Exit status 0 when |dAP| <= 0.01.
``--min-face 0 --small-face-weights`` gives the model zoo's targets; ``--set key=value`` sets any TrainConfig key.

Measured (2-core CPU, shared): released 0.7304; this recipe 0.7249 after 3 epochs (-0.55 points, PASS; 6.3 min
of training), 0.7259 after 2 (-0.45), 0.7258 after 5 (-0.46): no drift with more epochs.

Why these targets are the right ones for fine-tuning *this* model. On native-scale training crops (faces as large as
at test time; 286 faces in 120 crops) the released model agrees with the model-zoo targets for faces of 12 px and
more (log-size error within +-0.05, offset within 0.1 cell, centre scores 0.46-0.64), but for faces under 8 px it
predicts boxes 2x the labelled size and scores their centres 0.05, and at 8-12 px 0.25: it was not trained to find
those faces at that size (the authors' own recipe, 800 px crops, evidently treated them otherwise). The model zoo's
targets make every such face a focal-loss positive and weight its size/offset loss x5-x15, so fine-tuning spends its
gradient on re-learning tiny faces and loses the larger ones. Ignoring them (as CenterNet ignores hard regions) and
dropping the extra weights keeps the loss consistent with what the model does. Ablations, 2 epochs each, lr 1e-5,
256 px: model-zoo recipe -4.4 points (-4.6 to -5.3 with weight decay, lr 1e-4 or 384 px in further
runs); zoo targets with native-scale crops (``--min-face 0 --small-face-weights --set anchor_sampling=false --set
"crop_scales=[0.25, 0.35]"``, faces as large as at test time) -2.37; the same crops with these targets -0.48 (-0.84
after 3 epochs); zoo augmentation with these targets (this recipe) -0.45. The targets, not the scale of the crops,
are what matters. A run at lr 1e-12 (1 epoch) gives exactly 0.7304: the train -> checkpoint -> export -> detect path
itself loses nothing. Conventions for ``init: released``: its checkpoint says ``landmark_origin: center`` and the
landmark targets follow the init weights' ModelMeta (``InputSpec``), so they are relative to the sub-pixel centre as
the converted head predicts them (these val labels have no landmarks, so the landmark loss is 0 here); size and
offset targets agree with its converted heads (errors above).
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
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--min-face", type=float, default=10.0,
                        help="faces under this side (training-input px) are ignored; 0 = every face trains (zoo)")
    parser.add_argument("--small-face-weights", action="store_true",
                        help="keep the model zoo's x5-x15 size/offset weights for small faces")
    parser.add_argument("--out", default="benchmarks/out/finetune")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra TrainConfig setting (YAML value), may repeat")
    parser.add_argument("--run-name", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from centerface_flow import runtime

    runtime.mindspore("graph")
    from centerface_flow.convert.released import convert_released
    from centerface_flow.data.annotations import read_labels
    from centerface_flow.training.train import TrainConfig

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
    import yaml

    extra = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    recipe = {"min_face": args.min_face, "small_face_weights": args.small_face_weights}
    cfg = TrainConfig.from_dict({"init": "released", "init_path": str(released), "epochs": args.epochs,
                                 "resolution": args.resolution, "batch_size": 8, "lr": args.lr, "milestones": [],
                                 "weight_decay": args.weight_decay, "num_workers": 2, **recipe, **extra})
    name = f"min{args.min_face:g}{'_sfw' if args.small_face_weights else ''}_lr{args.lr:g}_{args.resolution}"
    run = out / (args.run_name or f"run_{name}_e{args.epochs}")
    start = time.perf_counter()
    tuned = run_training(cfg.to_dict(), out / "train.json", on_disk, run)
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
