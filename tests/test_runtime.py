"""The environment set before MindSpore is imported: the oneDNN fast path and the native kernels' thread count."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from centerface_flow import runtime


def test_defaults_applied_to_an_empty_environment():
    env = {}
    applied = runtime.apply_fast_path_env(env)
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert int(env[runtime.THREADS_ENV]) == len(os.sched_getaffinity(0))
    assert set(applied) == set(runtime.FAST_PATH_ENV) | {runtime.THREADS_ENV}


def test_user_values_win_and_the_switch_turns_the_fast_path_off():
    env = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", runtime.THREADS_ENV: "1"}
    runtime.apply_fast_path_env(env)
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE" and env[runtime.THREADS_ENV] == "1"
    env = {"CENTERFACE_NO_FAST_PATH": "1"}
    runtime.apply_fast_path_env(env)
    assert "ONEDNN_MAX_CPU_ISA" not in env and "OMP_WAIT_POLICY" not in env
    assert runtime.THREADS_ENV in env  # the kernels' thread count is not a fast-path switch


def test_kernel_threads_ignores_omp_num_threads():
    """MindSpore sets OMP_NUM_THREADS=1 when imported and children inherit it: it must not size our kernels."""
    assert runtime.kernel_threads({"OMP_NUM_THREADS": "1"}) == len(os.sched_getaffinity(0))
    assert runtime.kernel_threads({runtime.THREADS_ENV: "3"}) == 3
    assert runtime.kernel_threads({runtime.THREADS_ENV: "zero"}) == len(os.sched_getaffinity(0))


@pytest.mark.slow
def test_fresh_process_sees_the_environment_before_mindspore():
    """In a new process, runtime.mindspore() leaves the fast path and the thread count in the C environment that
    oneDNN and our kernels read, and MindSpore has indeed overwritten OMP_NUM_THREADS (why THREADS_ENV exists)."""
    code = (
        "import ctypes\n"
        "from centerface_flow import runtime\n"
        "runtime.mindspore('pynative')\n"
        "libc = ctypes.CDLL(None); libc.getenv.restype = ctypes.c_char_p\n"
        "print([libc.getenv(k) for k in (b'ONEDNN_MAX_CPU_ISA', b'CENTERFACE_NUM_THREADS', b'OMP_NUM_THREADS')])\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("ONEDNN_MAX_CPU_ISA", runtime.THREADS_ENV, "OMP_NUM_THREADS", "CENTERFACE_NO_FAST_PATH")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    isa, threads, omp = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert isa == b"AVX2"
    assert int(threads) == len(os.sched_getaffinity(0))
    assert omp == b"1"


def test_use_threads_gives_the_job_its_share(monkeypatch):
    """A workflow job's threads replace whatever count it inherited (e.g. from a shell that exported one)."""
    monkeypatch.setattr(os, "environ", {**os.environ, runtime.THREADS_ENV: "16"})
    assert runtime.use_threads(2) == 2 and os.environ[runtime.THREADS_ENV] == "2"
    assert runtime.kernel_threads() == 2
    assert runtime.use_threads(0) == 1  # never zero threads
