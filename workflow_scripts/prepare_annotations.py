"""Rule prepare_annotations: WIDER FACE training labels -> COCO-keypoints train.json."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.data.annotations import labels_to_coco
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
labels_to_coco(snakemake.input.labels, snakemake.input.images, snakemake.output[0])  # noqa: F821
