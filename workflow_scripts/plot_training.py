"""Rule plot_training: the training run's per-step metrics -> results/summary/training_curves.png."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share (numpy, matplotlib)

from centerface_flow.training.curves import plot_training_curves
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
plot_training_curves(snakemake.input.metrics, snakemake.output[0], demo=snakemake.params.demo,  # noqa: F821
                     epochs=snakemake.params.epochs)  # noqa: F821
