"""Everything that must happen before MindSpore is imported, in one place.

MindSpore's CPU backend hands oneDNN plain NCHW tensors. On AVX-512 machines oneDNN then runs depthwise and
transposed convolutions through a reference implementation (``jit_uni_ncsp:conv+ref``) that is ~15x slower than
its AVX2 kernels. Capping oneDNN at AVX2 *before MindSpore is imported* avoids that path. Users can override any
of these defaults by exporting the variable themselves; ``CENTERFACE_NO_FAST_PATH=1`` disables them all.
"""
from __future__ import annotations

import logging
import os
import sys

__all__ = ["FAST_PATH_ENV", "THREADS_ENV", "apply_fast_path_env", "device_target", "idle_mindspore_threads",
           "kernel_threads", "launch_on_actor_threads", "mindspore", "use_threads"]

#: Threads of the native kernels' worker pool (read by ``kernels/cf_threads.h``); default: the CPUs this process
#: may run on. OMP_NUM_THREADS cannot serve: MindSpore sets it to 1 in the process environment when it is imported,
#: and every child process then inherits that 1.
THREADS_ENV = "CENTERFACE_NUM_THREADS"


def kernel_threads(environ: dict | None = None) -> int:
    """The native kernels' thread count: ``CENTERFACE_NUM_THREADS``, else the CPUs this process may run on."""
    env = os.environ if environ is None else environ
    value = env.get(THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: Environment defaults applied before MindSpore is imported (only where the variable is not already set).
FAST_PATH_ENV = {
    # oneDNN: keep depthwise / transposed convs off the reference path (see module docstring).
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # OpenMP code in the process (libraries MindSpore loads) must not spin-wait against MindSpore's thread pool.
    "OMP_WAIT_POLICY": "PASSIVE",
    # MindSpore's C++ logging at WARNING+ only (its INFO output is thousands of lines per graph compile).
    "GLOG_v": "3",
}


def _fast_path_off(env) -> bool:
    """``CENTERFACE_NO_FAST_PATH`` is set to anything but ``0``: leave MindSpore's own defaults alone."""
    return env.get("CENTERFACE_NO_FAST_PATH", "") not in ("", "0")


def apply_fast_path_env(environ: dict | None = None) -> dict:
    """Set the fast-path defaults in ``environ`` (default ``os.environ``); return what was set.

    Has no effect once MindSpore is imported (oneDNN reads the variable once), so it warns in that case.
    """
    env = os.environ if environ is None else environ
    applied = {}
    if THREADS_ENV not in env:  # always (not a fast-path switch): before MindSpore overrides OMP_NUM_THREADS
        env[THREADS_ENV] = applied[THREADS_ENV] = str(kernel_threads(env))
    if _fast_path_off(env):
        return applied
    for key, value in FAST_PATH_ENV.items():
        if key not in env:
            env[key] = value
            applied[key] = value
    if set(applied) - {THREADS_ENV} and environ is None and "mindspore" in sys.modules:
        import warnings

        warnings.warn(
            "MindSpore was imported before centerface_flow.runtime could set "
            f"{sorted(applied)}; the CPU fast path is not active in this process",
            RuntimeWarning,
            stacklevel=2,
        )
    return applied


def use_threads(threads: int) -> int:
    """Give this process (a workflow job) ``threads`` CPU threads: the native kernels' pool and, once MindSpore is
    imported through :func:`mindspore`, its CPU kernel and dispatch threads. Also applies the fast-path defaults.

    Call it first thing in a job, with ``snakemake.threads``, before anything imports MindSpore or calls a kernel:
    both read their thread counts once. Overrides ``CENTERFACE_NUM_THREADS`` inherited from the caller (a job's
    share is what the scheduler gave it); child processes (the training subprocess) inherit the value.
    """
    threads = max(1, int(threads))
    os.environ[THREADS_ENV] = str(threads)
    apply_fast_path_env()
    return threads


#: MindSpore's runtime (dispatch) threads default to 5; a job never gets more than its share.
_MS_DISPATCH_DEFAULT = 5


def _set_mindspore_threads(ms, threads: int, device: str) -> None:
    """MindSpore's CPU kernel threads (default 25, whatever the CPU count) at most ``threads``, and its dispatch
    (actor) threads: one on CPU, else at most ``threads``. MindSpore accepts each setting once per process, so later
    calls keep the first values.

    One actor thread on CPU: every kernel already runs on all the job's threads (the native kernels' pool, MindSpore's
    kernel threads), so a second actor running another kernel at the same time only oversubscribes the CPUs. A
    graph-mode training step (batch 8, 512x512, 2 cores) took 1.97 s with two actor threads and 1.70 s with one
    (docs/performance.md, "Graph mode on CPU")."""
    from mindspore.device_context.cpu import op_tuning

    conf = op_tuning.RuntimeConf.get_instance()
    if not conf.is_op_threads_num_configured():
        op_tuning.threads_num(threads)
        logging.getLogger(__name__).info("CPU threads: %d (MindSpore kernels and native kernels)", threads)
    if not conf.is_dispatch_threads_num_configured():
        ms.runtime.dispatch_threads_num(1 if device == "CPU" else min(threads, _MS_DISPATCH_DEFAULT))


def device_target() -> str:
    """The MindSpore device to run on: ``CENTERFACE_DEVICE`` if set, else Ascend when available, else CPU."""
    forced = os.environ.get("CENTERFACE_DEVICE")
    if forced:
        return forced
    import mindspore as ms

    try:
        if ms.hal.is_available("Ascend"):
            return "Ascend"
    except Exception as exc:  # noqa: BLE001 - device probing must never stop a CPU run
        logging.getLogger(__name__).debug("no Ascend device (%s)", exc)
    return "CPU"


def mindspore(mode: str = "graph"):
    """Import MindSpore with the fast-path environment applied, set its context, and return the module.

    ``mode`` is ``"graph"`` or ``"pynative"``. MindSpore's CPU threads follow :func:`kernel_threads` (a job's
    share after :func:`use_threads`).
    """
    apply_fast_path_env()
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    if mode == "graph":
        idle_mindspore_threads(idle=False)  # a pynative runner earlier in this process may have set them idle
    device = device_target()
    ms.set_device(device)
    _set_mindspore_threads(ms, kernel_threads(), device)
    if device == "CPU" and mode == "graph":
        launch_on_actor_threads()
    elif device == "CPU":
        _run_operators_on_caller(ms)
    return ms


#: MindSpore's runtime settings (``key:value,key:value``), read when its runtime starts (the first operator or
#: graph of the process).
RUNTIME_CONF_ENV = "MS_DEV_RUNTIME_CONF"


def launch_on_actor_threads(environ: dict | None = None) -> bool:
    """Graph mode on CPU: each kernel runs on the actor thread that schedules it instead of being queued to
    MindSpore's launch thread (``pipeline:False`` in ``MS_DEV_RUNTIME_CONF``); returns whether it was set.

    With the pipeline on, the actor thread spins while the launch thread runs the kernel, and on 2 cores that takes
    a third of the CPU time from the kernels: a training step (batch 8, 512x512) took 3.2-3.4 s with the pipeline
    and 1.9 s without (docs/performance.md, "Graph mode on CPU"). The pipeline overlaps host work with an
    accelerator's, so this is for CPU only. A ``pipeline`` key the user set wins, and ``CENTERFACE_NO_FAST_PATH=1``
    turns this off. Cost: with the variable set, MindSpore prints its configuration, and the executor of each
    graph it compiles, on stdout.
    """
    env = os.environ if environ is None else environ
    if _fast_path_off(env):
        return False
    conf = env.get(RUNTIME_CONF_ENV, "").strip()
    if any(item.split(":", 1)[0].strip() == "pipeline" for item in conf.split(",")):
        return False
    env[RUNTIME_CONF_ENV] = f"{conf},pipeline:False" if conf else "pipeline:False"
    return True


def _run_operators_on_caller(ms) -> None:
    """Pynative operators run on the calling thread. By default MindSpore queues each one to a dispatch thread
    and the caller waits for it, spinning: on a 2-core VM the two threads and the native kernels' worker then
    share 2 CPUs, and a small operator took 1.37 ms per call against 0.19 ms run in place
    (the benchmark in docs/performance.md, "Execution mode"). MindSpore accepts the setting once per process."""
    from mindspore.device_context.cpu import op_tuning

    conf = op_tuning.RuntimeConf.get_instance()
    if not conf.is_launch_blocking():
        ms.runtime.launch_blocking()


#: Name prefix of MindSpore's runtime threads that busy-wait: they call sched_yield in a loop for a while after each
#: task, which costs nothing on an idle core but takes a core from the native kernels when the process has as
#: many kernel threads as CPUs.
_SPINNING_THREAD_PREFIX = "ActorThread"


def idle_mindspore_threads(idle: bool = True) -> int:
    """Put MindSpore's busy-waiting runtime threads of this process under ``SCHED_IDLE`` (Linux; elsewhere
    nothing), or back under the normal policy with ``idle=False``; returns how many threads were changed. Idle, they
    run only on a CPU nothing else wants.

    For pynative inference on CPU, where the network runs on the calling thread and the native kernels' workers
    (``launch_blocking``, one operator): there these threads only spin. Measured on the 2-core VM, the first 10-20
    calls of a runner at 640x480 took 57 ms instead of 27 while two of them spun (docs/performance.md, "MindSpore's
    spinning threads"). Graph mode runs the graph on them: :func:`mindspore` puts them back for it.
    """
    tasks = "/proc/self/task"
    if not hasattr(os, "sched_setscheduler") or not os.path.isdir(tasks):
        return 0
    policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
    changed = 0
    for tid in os.listdir(tasks):
        try:
            with open(f"{tasks}/{tid}/comm", encoding="utf-8") as f:
                name = f.read().strip()
            if name.startswith(_SPINNING_THREAD_PREFIX) and os.sched_getscheduler(int(tid)) != policy:
                os.sched_setscheduler(int(tid), policy, os.sched_param(0))
                changed += 1
        except OSError:  # the thread has exited, or the policy cannot be changed here: leave it
            continue
    return changed
