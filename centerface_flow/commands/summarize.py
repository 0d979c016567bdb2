"""``centerface summarize``: AP across models/epochs (CSV + Markdown) and plots (AP vs epoch, PR curves)."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "summarize",
        help="AP table across models and epochs, with plots",
        description="Collect AP tables written by `centerface evaluate --out` (model name = file stem; epoch from "
        "epoch_{E}) into ap_by_epoch.csv/.md/.html, and plot ap_by_epoch.png and pr_curves.png. PR curves are read "
        "from <stem>_pr.tsv next to each AP table. Titles name the val set and the IoU and protocol the tables "
        "record.",
    )
    parser.add_argument("--ap", nargs="+", required=True, metavar="FILE.tsv", help="AP tables, one per model")
    parser.add_argument("--out-dir", required=True, help="output folder")
    parser.add_argument("--pr-models", nargs="+", metavar="MODEL",
                        help="models whose PR curves are plotted (default: best by hard AP, and 'released' if present)")
    parser.add_argument("--demo", action="store_true",
                        help="the tables score the embedded demo's val set (titles say so, not WIDER FACE val)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from centerface_flow.evaluation.summary import ValSet, summarize

    outputs = summarize(args.ap, args.out_dir, pr_models=args.pr_models, val_set=ValSet(demo=args.demo))
    for path in outputs.values():
        print(path)
    return 0
