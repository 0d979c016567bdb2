"""Training throughput (images/s) and peak memory on CPU: batch 8 at 512×512, model-zoo recipe (head 64, ReLU6,
full augmentation, 2 loader workers), on the real WIDER val images under CENTERFACE_SHARED_DATA.

    CENTERFACE_SHARED_DATA=/work/shared .venv/bin/python benchmarks/bench_train.py [--steps 8] [--workers 2]

Images/s is the median over the steps after the first (the first includes graph compilation); peak memory is the
maximum resident set size of this process and, separately, of its loader workers (ru_maxrss).

    .venv/bin/python benchmarks/bench_train.py --compare-torch [--steps 4] [--torch-python /tmp/torchenv/bin/python]

instead compares the training step alone (fixed synthetic batch, no data pipeline) of our MindSpore network (native
kernels on / off) with PyTorch eager NCHW / channels-last on the same architecture and weights
(``train_compare.py``).
"""
from __future__ import annotations

import argparse
import csv
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import train_compare
from train_common import shared_widerface, write_subset_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare-torch", action="store_true", help="step throughput vs PyTorch (train_compare.py)")
    parser.add_argument("--torch-python", default=train_compare.DEFAULT_TORCH)
    parser.add_argument("--rounds", type=int, default=1, help="--compare-torch: runtimes take turns, best kept")
    args = parser.parse_args()
    if args.compare_torch:
        args.batch, args.skip = args.batch_size, []
        return train_compare.compare(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from centerface_flow import runtime

    runtime.mindspore("graph")
    from centerface_flow.training.train import TrainConfig, train

    wf = shared_widerface()
    n = args.steps * args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = write_subset_json(wf, lambda name: True, tmp / "all.json")
        import json

        coco = json.loads((tmp / "all.json").read_text())
        keep = {im["id"] for im in coco["images"][:n]}
        coco["images"] = [im for im in coco["images"] if im["id"] in keep]
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
        (tmp / "train.json").write_text(json.dumps(coco))
        cfg = TrainConfig.from_dict({"init": "scratch", "epochs": 1, "resolution": args.resolution,
                                     "batch_size": args.batch_size, "num_workers": args.workers})
        start = time.perf_counter()
        train(cfg, tmp / "train.json", wf / "WIDER_val" / "images", tmp / "out", progress=False)
        wall = time.perf_counter() - start
        with open(tmp / "out" / "metrics.csv", newline="") as handle:
            speeds = [float(r["images_per_s"]) for r in csv.DictReader(handle)]
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"images: {n} of {len(names)}; steps: {len(speeds)}; wall {wall:.1f} s (incl. compile + checkpoint)")
    print(f"images/s (median of steps 2..): {statistics.median(speeds[1:]):.2f}  per step: "
          + " ".join(f"{s:.2f}" for s in speeds))
    print(f"peak RSS: main process {self_mb:.0f} MB, largest loader worker {child_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
