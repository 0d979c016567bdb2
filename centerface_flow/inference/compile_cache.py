"""MindSpore's graph compile cache, kept on disk between processes where it is safe to reuse.

MindSpore 2.x (``enable_compile_cache``) saves the graphs a process compiles as ``compile_cache_<k>.mindir``, ``k``
being the order in which that process compiled them, and loads them in a later process when the entry script and
the Python files it imports from outside ``sys.path`` hash the same. Measured with MindSpore 2.10, that is not
enough to share one cache folder:

* the input shape is not checked: a graph compiled for one image size is loaded for another and its kernels refuse
  the tensors (or, with MindSpore's own operators, could compute on the wrong shape);
* an installed package (this one) is on ``sys.path``, so a changed network definition would load the old graph;
* the folder is read once per process, at the first cached compile; turning the cache off later is honoured.

So the cache serves the **first graph a process compiles** (the one that delays the first result), in a folder of
its own named by everything the graph depends on: MindSpore's version, this package's code and kernel library,
the device, the network's structure and the input shape. A process that finds the folder locked by another one
compiling the same graph compiles without the cache rather than wait; a folder whose compile did not finish (no
``complete`` marker) is emptied before it is used. Later graphs of the process compile as usual.

Where: ``$CENTERFACE_COMPILE_CACHE`` (``0`` turns the cache off), else ``$XDG_CACHE_HOME/centerface-flow/
mindspore-compile``, else ``~/.cache/centerface-flow/mindspore-compile``. The user's own MindSpore settings
(``MS_COMPILER_CACHE_ENABLE`` or ``enable_compile_cache``) win: then this module does nothing.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root", "code_identity", "first_graph", "graph_key"]

log = logging.getLogger(__name__)

#: The cache's folder, or ``0`` for no cache.
CACHE_ENV = "CENTERFACE_COMPILE_CACHE"

_COMPLETE = "complete"
_LOCK = ".lock"
#: Set once this process has compiled a graph through :func:`first_graph` (see the module docstring: MindSpore
#: reads the cache folder only once per process).
_used = False


def cache_root(environ: dict | None = None) -> Path | None:
    """The folder that holds one subfolder per cached graph, or None when the cache is off."""
    env = os.environ if environ is None else environ
    value = env.get(CACHE_ENV, "").strip()
    if value == "0":
        return None
    if value:
        return Path(value).expanduser()
    base = env.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "centerface-flow" / "mindspore-compile"


@functools.cache
def code_identity() -> str:
    """A hash of this package's Python files and its native kernel library: what the compiled graph came from."""
    from centerface_flow.ops import native

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    files = sorted(package.rglob("*.py"))
    library = native.library_path()
    if library is not None:
        files.append(library)
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def graph_key(network: dict, input_shape, device: str) -> str:
    """The name of the folder of one graph: ``network`` describes its structure (JSON-serialisable)."""
    from importlib import metadata

    described = {"mindspore": metadata.version("mindspore"), "code": code_identity(), "device": device,
                 "network": network, "input_shape": [int(d) for d in input_shape]}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]


def _user_configured(ms) -> bool:
    return bool(ms.get_context("enable_compile_cache")) or os.environ.get("MS_COMPILER_CACHE_ENABLE", "") != ""


@contextlib.contextmanager
def first_graph(ms, network: dict, input_shape, device: str):
    """Around the first call of a graph-mode network: that compile uses (and fills) the cache when this is the
    process's first graph through here and nothing rules it out. Yields the cache folder used, or None."""
    global _used
    root = cache_root()
    entry = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    # MindSpore hashes the entry script: with ``python -c`` / stdin it has none and its cache fails to open it
    if _used or root is None or _user_configured(ms) or entry is None or not entry.is_file():
        yield None
        return
    _used = True
    folder = root / graph_key(network, input_shape, device)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / _LOCK, "a+")  # noqa: SIM115 - held until the compile is written, closed below
    except OSError as exc:
        log.info("compile cache off: %s", exc)
        yield None
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("compile cache %s in use by another process; compiling without it", folder)
            yield None
            return
        complete = folder / _COMPLETE
        if not complete.exists():
            for child in folder.iterdir():  # an interrupted compile may have left a partial graph file
                if child.name != _LOCK:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        # MindSpore rewrites the graph when its entry script changed (a workflow job's script is new every time):
        # until this compile is through, the folder is not known to be whole
        complete.unlink(missing_ok=True)
        ms.set_context(enable_compile_cache=True, compile_cache_path=str(folder))
        try:
            yield folder
        finally:
            ms.set_context(enable_compile_cache=False)
        complete.touch()
        log.debug("compile cache %s", folder)
