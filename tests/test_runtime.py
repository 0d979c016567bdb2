"""The environment set before MindSpore is imported: the oneDNN fast path and the native kernels' thread count; and
MindSpore's spinning runtime threads put under SCHED_IDLE."""
from __future__ import annotations

import ast
import ctypes
import os
import subprocess
import sys
import threading

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


def test_cpu_graphs_launch_kernels_on_their_actor_thread():
    env = {}
    assert runtime.launch_on_actor_threads(env) and env[runtime.RUNTIME_CONF_ENV] == "pipeline:False"
    env = {runtime.RUNTIME_CONF_ENV: "memory_statistics:True"}  # the user's other keys are kept
    assert runtime.launch_on_actor_threads(env)
    assert env[runtime.RUNTIME_CONF_ENV] == "memory_statistics:True,pipeline:False"
    env = {runtime.RUNTIME_CONF_ENV: "memory_statistics:True, pipeline:True"}  # the user's choice wins
    assert not runtime.launch_on_actor_threads(env)
    assert env[runtime.RUNTIME_CONF_ENV] == "memory_statistics:True, pipeline:True"
    env = {"CENTERFACE_NO_FAST_PATH": "1"}
    assert not runtime.launch_on_actor_threads(env) and runtime.RUNTIME_CONF_ENV not in env


@pytest.mark.slow
def test_graph_mode_on_cpu_runs_kernels_on_one_actor_thread_without_the_launch_pipeline():
    code = ("import os\nfrom centerface_flow import runtime\nms = runtime.mindspore('graph')\n"
            "ms.nn.Dense(3, 4)(ms.Tensor([[1.0, 2.0, 3.0]]))\n"
            "names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]\n"
            "print(repr((os.environ.get('MS_DEV_RUNTIME_CONF'), sum(n.startswith('ActorThread') for n in names))))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in (runtime.RUNTIME_CONF_ENV, "CENTERFACE_NO_FAST_PATH", "CENTERFACE_DEVICE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "('pipeline:False', 1)" in out.stdout.splitlines()  # MindSpore prints its own lines on stdout too


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
           if k not in ("ONEDNN_MAX_CPU_ISA", runtime.THREADS_ENV, "OMP_NUM_THREADS", "CENTERFACE_NO_FAST_PATH",
                        runtime.RUNTIME_CONF_ENV)}  # set by graph-mode tests earlier in this pytest process
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names and SCHED_IDLE are Linux's")
def test_only_mindspore_runtime_threads_are_set_idle():
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_void_p
    named, done = threading.Event(), threading.Event()
    tids = {}

    def thread(name: bytes) -> None:
        libc.pthread_setname_np(ctypes.c_void_p(libc.pthread_self()), name)
        tids[name] = threading.get_native_id()
        if len(tids) == 2:
            named.set()
        done.wait(30)

    workers = [threading.Thread(target=thread, args=(n,)) for n in (b"ActorThread_9", b"cf_kernels")]
    for w in workers:
        w.start()
    try:
        assert named.wait(30)
        assert runtime.idle_mindspore_threads() >= 1
        assert os.sched_getscheduler(tids[b"ActorThread_9"]) == os.SCHED_IDLE
        assert os.sched_getscheduler(tids[b"cf_kernels"]) == os.SCHED_OTHER
        assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER
        assert runtime.idle_mindspore_threads() == 0  # already idle: nothing to change
        assert runtime.idle_mindspore_threads(idle=False) >= 1
        assert os.sched_getscheduler(tids[b"ActorThread_9"]) == os.SCHED_OTHER
    finally:
        done.set()
        for w in workers:
            w.join()
