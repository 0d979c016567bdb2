"""Exports of a checkpoint that people can deploy: ONNX / MINDIR (/ AIR on Ascend) files verified against the
checkpoint (:mod:`.core`), their dynamic-shape interface (:mod:`.graph`) and the model card (:mod:`.card`)."""
from centerface_flow.export.core import (
    FORMATS,
    TOLERANCE,
    ExportSettings,
    export_checkpoint,
    first_image,
    relative_error,
    relative_errors,
)

__all__ = ["FORMATS", "TOLERANCE", "ExportSettings", "export_checkpoint", "first_image", "relative_error",
           "relative_errors"]
