"""The native kernels' worker-thread pool (``kernels/cf_threads.h``): correct results whatever the thread count and
spin setting, with kernels called from several threads at once, and in a child forked after the pool started."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from centerface_flow.export import relative_error as _rel
from centerface_flow.ops import native

pytestmark = pytest.mark.skipif(native.library_path() is None, reason="native kernel library not built")

# Runs a depthwise and a 1x1 kernel many times and checks them against the numpy twins, then forks: the child (which
# inherits a pool whose worker threads do not exist in it) must compute the same results and exit.
_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from centerface_flow.ops import native
    from centerface_flow.ops import pointwise
    pointwise.available()  # sets CENTERFACE_OPENBLAS_LIB
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 33, 17)).astype(np.float32)
    k = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    w = rng.standard_normal((5, 8, 1, 1)).astype(np.float32)
    ref_dw = native.dw3x3_forward(x, k, 2, b, "relu")
    ref_pw = np.einsum("oc,nchw->nohw", w[:, :, 0, 0].astype(np.float64), x.astype(np.float64))

    def check():
        for _ in range(50):
            out = native.call_kernel("CfDw3x3S2BiasRelu", [x, k, b], ref_dw.shape)
            assert np.abs(out - ref_dw).max() <= 1e-5 * np.abs(ref_dw).max()
            out = native.call_kernel("CfPw", [x, w], ref_pw.shape)
            assert np.abs(out - ref_pw).max() <= 1e-5 * np.abs(ref_pw).max()

    check()
    names = [open(f"/proc/self/task/{tid}/comm").read().strip() for tid in os.listdir("/proc/self/task")]
    assert names.count("cf_kernels") == int(os.environ["CENTERFACE_NUM_THREADS"]) - 1, names
    pid = os.fork()
    if pid == 0:
        try:
            check()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "forked child failed"
    check()
    print("ok")
""")


# "fast" is not an integer: the kernels fall back to the default spin
@pytest.mark.parametrize("threads, spin", [("1", "200"), ("2", "0"), ("2", "200"), ("3", "50"), ("2", "fast")])
def test_results_and_fork_for_every_setting(threads, spin, tmp_path):
    env = {"CENTERFACE_NUM_THREADS": threads, "CENTERFACE_SPIN_US": spin, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], check=False, env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_kernels_called_from_several_threads_at_once():
    """Only one kernel at a time gets the pool; the others run on their calling thread. All must be right."""
    rng = np.random.default_rng(1)
    jobs = []
    for i in range(4):
        x = rng.standard_normal((1, 6, 40 + i, 29)).astype(np.float32)
        k = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(6).astype(np.float32)
        jobs.append((x, k, b, native.dw3x3_forward(x, k, 1, b, "relu6")))
    errors: list[float] = []

    def work(x, k, b, ref):
        for _ in range(40):
            errors.append(_rel(native.call_kernel("CfDw3x3S1BiasRelu6", [x, k, b], ref.shape), ref))

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(errors) == 160 and max(errors) <= 1e-5


def test_reductions_are_bit_identical_whether_or_not_another_kernel_holds_the_pool():
    """Graph-mode training can run kernels on several MindSpore threads at once: a weight gradient computed while
    other calls hold the pool must equal, bit for bit, the one computed alone. (These two kernels' sums do not depend
    on the split; the kill -9 resume test in test_train.py is what catches a kernel whose sums do.)"""
    from centerface_flow.ops import pointwise

    assert pointwise.available()  # loads OpenBLAS for CfPwBackWeight
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 16, 97, 101)).astype(np.float32)
    dy = rng.standard_normal((2, 24, 97, 101)).astype(np.float32)
    dy_dw = rng.standard_normal((2, 16, 97, 101)).astype(np.float32)
    calls = [("CfPwBackWeight", [x, dy], (24, 16, 1, 1)), ("CfDw3x3BackWeightS1", [x, dy_dw], (16, 1, 3, 3))]
    alone = [native.call_kernel(name, inputs, shape) for name, inputs, shape in calls]
    results: list[list[np.ndarray]] = []

    def work():
        results.append([native.call_kernel(name, inputs, shape) for _ in range(30) for name, inputs, shape in calls])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 3
    for outs in results:
        for i, out in enumerate(outs):
            assert np.array_equal(out, alone[i % 2]), calls[i % 2][0]
