"""The on-disk compile cache of graph-mode inference (centerface_flow.inference.compile_cache): a second process on
the same input shape loads the first one's graph, another shape gets a folder of its own (MindSpore alone would
load the wrong graph), a compile that did not finish is not reused, and a folder locked by another process is left
alone."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from centerface_flow.inference import compile_cache

_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from centerface_flow import runtime
    runtime.mindspore("graph")
    from centerface_flow.inference.backends import make_runner
    runner = make_runner(sys.argv[1], "mindspore", "graph")
    for i, shape in enumerate(sys.argv[3:]):
        h, w = (int(v) for v in shape.split("x"))
        x = np.random.default_rng(h * 1000 + w).uniform(0, 255, (1, 3, h, w)).astype(np.float32)
        np.savez(f"{sys.argv[2]}_{i}.npz", *runner(x))
""")


def test_cache_root_follows_the_environment(tmp_path):
    assert compile_cache.cache_root({compile_cache.CACHE_ENV: "0"}) is None
    assert compile_cache.cache_root({compile_cache.CACHE_ENV: str(tmp_path)}) == tmp_path
    assert compile_cache.cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "centerface-flow" / \
        "mindspore-compile"
    assert compile_cache.cache_root({}) == Path.home() / ".cache" / "centerface-flow" / "mindspore-compile"


def test_graph_key_names_shape_structure_and_device():
    net = {"head_width": 24, "activation": "relu", "kernels": "native kernels"}
    key = compile_cache.graph_key(net, (1, 3, 64, 96), "CPU")
    assert key == compile_cache.graph_key(dict(net), [1, 3, 64, 96], "CPU")
    assert len({key, compile_cache.graph_key(net, (1, 3, 96, 64), "CPU"),
                compile_cache.graph_key({**net, "head_width": 64}, (1, 3, 64, 96), "CPU"),
                compile_cache.graph_key(net, (1, 3, 64, 96), "Ascend")}) == 4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from centerface_flow import runtime

    runtime.mindspore("pynative")
    from centerface_flow.checkpoint import ModelMeta, save_checkpoint
    from centerface_flow.nets.centerface import CenterFace

    path = tmp_path_factory.mktemp("ckpt") / "random.ckpt"
    save_checkpoint(path, CenterFace(24, "relu", init_seed=0), ModelMeta.released())
    return path


def _run(script: Path | str, ckpt: Path, out: Path, shapes: list[str], cache: str) -> list[list[np.ndarray]]:
    """``script``: a file, or the code itself for ``python -c``."""
    env = {**os.environ, compile_cache.CACHE_ENV: cache, "CENTERFACE_DEVICE": "CPU"}
    env.pop("MS_COMPILER_CACHE_ENABLE", None)
    entry = [str(script)] if isinstance(script, Path) else ["-c", script]
    done = subprocess.run([sys.executable, *entry, str(ckpt), str(out), *shapes], env=env, check=False,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [[f[k] for k in sorted(f.files)] for f in (np.load(f"{out}_{i}.npz") for i in range(len(shapes)))]


def _graph_files(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*.mindir")}


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_second_process_reuses_the_graph_of_its_shape_only(tmp_path, checkpoint):
    script = tmp_path / "infer_shapes.py"
    script.write_text(_SCRIPT)
    cache = tmp_path / "cache"
    plain = _run(script, checkpoint, tmp_path / "plain", ["64x96", "96x64"], "0")
    assert not cache.exists()

    first = _run(script, checkpoint, tmp_path / "a", ["64x96"], str(cache))
    _same(first[0], plain[0])
    folders = list(cache.iterdir())
    assert len(folders) == 1 and (folders[0] / "complete").is_file()
    written = _graph_files(cache)
    assert len(written) == 1  # the process's first graph only

    again = _run(script, checkpoint, tmp_path / "b", ["64x96"], str(cache))
    _same(again[0], plain[0])
    assert _graph_files(cache) == written  # loaded, not compiled and written again

    # a first graph of another shape: its own folder, right outputs (one shared MindSpore folder fails here)
    other = _run(script, checkpoint, tmp_path / "c", ["96x64", "64x96"], str(cache))
    _same(other[0], plain[1])
    _same(other[1], plain[0])
    assert len(list(cache.iterdir())) == 2
    assert {p: t for p, t in _graph_files(cache).items() if p in written} == written


def test_unfinished_or_locked_folders_are_not_trusted(tmp_path, checkpoint):
    script = tmp_path / "infer_shapes.py"
    script.write_text(_SCRIPT)
    cache = tmp_path / "cache"
    reference = _run(script, checkpoint, tmp_path / "a", ["64x96"], str(cache))
    (folder,) = cache.iterdir()
    (graph,) = _graph_files(cache)

    # a compile killed while writing: no marker, a damaged graph file
    (folder / "complete").unlink()
    graph.write_bytes(b"not a graph")
    _same(_run(script, checkpoint, tmp_path / "b", ["64x96"], str(cache))[0], reference[0])
    assert (folder / "complete").is_file() and graph.read_bytes() != b"not a graph"

    # another process compiling the same graph holds the lock: compile without the cache and leave its files alone
    # (the graph it is writing, here a damaged file, is neither read nor replaced)
    graph.write_bytes(b"being written")
    with open(folder / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _same(_run(script, checkpoint, tmp_path / "c", ["64x96"], str(cache))[0], reference[0])
    assert graph.read_bytes() == b"being written"


def test_no_usable_folder_or_entry_script_means_no_cache(tmp_path, checkpoint):
    """A cache path that cannot be a folder, or a process without an entry script file (``python -c``: MindSpore's
    own cache would fail opening it), compile as if there were no cache."""
    script = tmp_path / "infer_shapes.py"
    script.write_text(_SCRIPT)
    reference = _run(script, checkpoint, tmp_path / "a", ["64x96"], "0")
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    _same(_run(script, checkpoint, tmp_path / "b", ["64x96"], str(not_a_folder))[0], reference[0])
    assert not_a_folder.is_file()
    cache = tmp_path / "cache"
    _same(_run(_SCRIPT, checkpoint, tmp_path / "c", ["64x96"], str(cache))[0], reference[0])
    assert not cache.exists()
