"""``centerface train``: train CenterFace (model zoo recipe), one checkpoint per epoch, resumable, multi-device."""
from __future__ import annotations

import argparse

__all__ = ["load_config", "register", "run"]

#: Command-line flags that override config keys (flag dest == config key).
_OVERRIDES = {
    "init": str, "init_path": str, "epochs": int, "resolution": int, "batch_size": int, "lr": float, "seed": int,
    "num_workers": int, "devices": int, "head_width": int,
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train CenterFace; resumes from the last finished epoch",
                                   description=__doc__)
    parser.add_argument("--config",
                        help="YAML file of training options (keys of centerface_flow.training.train.TrainConfig)")
    parser.add_argument("--annotations", required=True, help="COCO-keypoints train.json (centerface annotations)")
    parser.add_argument("--images", required=True, help="folder the JSON's file names are relative to")
    parser.add_argument("--out-dir", required=True, help="epoch_{E}.ckpt and metrics.csv go here")
    parser.add_argument("--state-dir", default=None,
                        help="resumable state (default OUT_DIR/.state); keep it outside Snakemake's declared outputs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (YAML value syntax), e.g. --set milestones=[2,3]")
    from centerface_flow.settings import section_defaults

    defaults = section_defaults("train")
    for key, kind in _OVERRIDES.items():
        # None = not given: the --config file's value, else TrainConfig's default (shown)
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=None,
                            help=f"training key {key!r} (default: {defaults[key]!r})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def load_config(path: str | None, overrides: dict) -> dict:
    """YAML file (optional) merged with overrides → plain dict (validated later by TrainConfig.from_dict)."""
    import yaml

    from centerface_flow.errors import UserError

    values = {}
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                values = yaml.safe_load(handle) or {}
        except FileNotFoundError:
            raise UserError(f"{path}: training config not found") from None
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: invalid YAML ({exc})") from None
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of training options")
        values = values.get("train", values) if isinstance(values.get("train"), dict) else values
    values.update(overrides)
    return values


def run(args: argparse.Namespace) -> int:
    import yaml

    from centerface_flow.errors import UserError

    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    from centerface_flow.training.train import TrainConfig

    cfg = TrainConfig.from_dict(load_config(args.config, overrides), where=args.config or "command line")
    from centerface_flow.training.train import run_training

    return run_training(cfg, args.annotations, args.images, args.out_dir, args.state_dir,
                        progress=not args.no_progress)
