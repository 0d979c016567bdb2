"""Rule build_demo: the embedded demo data set (centerface_flow.data.demo)."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from pathlib import Path

from centerface_flow.data.demo import DemoSpec, build_demo
from centerface_flow.workflow import DEMO_DIR, script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
build_demo(Path(DEMO_DIR), DemoSpec(**snakemake.params.spec))  # noqa: F821
