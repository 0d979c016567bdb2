"""Rule train_model: `centerface train` in its own process (it may launch several ranks), resumable state in
params.state_dir, every epoch's checkpoint published to results/train/."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from centerface_flow.io import atomic_write_text
from centerface_flow.workflow import script_logging

log = script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
inp, out = snakemake.input, snakemake.output  # noqa: F821
config = {**snakemake.params.train, "init_path": str(inp.init or "")}  # noqa: F821
# One state folder per training configuration: a rerun after a crash resumes, a changed config starts afresh
# (num_workers does not change the result: data order and augmentation depend on seed, epoch and image only).
identity = {k: v for k, v in config.items() if k != "num_workers"}
key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
state_dir = Path(snakemake.params.state_dir) / key  # noqa: F821
atomic_write_text(state_dir / "train_config.yaml", yaml.safe_dump(config, sort_keys=False))
env = {**os.environ, **({"RANK_TABLE_FILE": str(Path(inp.rank_table).resolve())} if inp.rank_table else {})}
cmd = [sys.executable, "-m", "centerface_flow.cli", "train", "--config", str(state_dir / "train_config.yaml"),
       "--annotations", inp.annotations, "--images", inp.images, "--out-dir", str(Path(out.metrics).parent),
       "--state-dir", str(state_dir), "--no-progress"]
log.info("running %s", " ".join(cmd))
sys.exit(subprocess.call(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr))
