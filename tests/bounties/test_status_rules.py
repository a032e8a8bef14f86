"""Each fixed check's status rule on fabricated inputs and records: correct but slow is PARTIAL, wrong is FAIL, no
record (or no hardware) is NEEDS-HARDWARE, and a figure quoted from another machine never earns a PASS."""
from tinybounty.bounties import b02_hlb_cifar as b02
from tinybounty.bounties import b03_mnist_compile as b03
from tinybounty.bounties import b15_buffer_gc as b15
from tinybounty.bounties import b21_avgpool3d as b21
from tinybounty.bounties.base import Result, Status
from tinybounty.records import Record
from tinybounty.torch_backend.beautiful_mnist import ForcedStep

HERE, ELSEWHERE = "AMD EPYC x2, NVIDIA H100 (sm_90)", "Intel Xeon x16, NVIDIA H200 (sm_90)"


def _hlb(ratio: float, diff: float, machine: str = ELSEWHERE) -> Record:
  ok = "" if diff <= 2 else " (NOT within 2%)"
  return Record("2026-11-26", "hlb_cifar", machine, "python bench/hlb_cifar.py main.py",
                f"tiny epochs 115.94, 7.74 s ({ratio:g}x median); losses max rel diff {diff:g}%{ok}", "PyTorch cuda eager")


def test_02_status_rule():
  good = Result(Status.PASS, ran="stand-in", figure=3e-6)
  wrong_here = Result(Status.FAIL, ran="stand-in", figure=0.01)
  assert b02.verdict(good, None, HERE).status is Status.NEEDS_HARDWARE
  assert b02.verdict(good, _hlb(151, 1.0), HERE).status is Status.PARTIAL          # correct, 151x against a 2x target
  assert b02.verdict(good, _hlb(151, 1.0), HERE).figure == 151
  assert b02.verdict(good, _hlb(1.5, 3.54), HERE).status is Status.FAIL            # fast but wrong: FAIL, not PARTIAL
  assert b02.verdict(good, _hlb(1.5, 1.0), HERE).status is Status.NEEDS_HARDWARE   # at target, but quoted from elsewhere
  assert b02.verdict(good, _hlb(1.5, 1.0, HERE), HERE).status is Status.PASS
  assert b02.verdict(wrong_here, _hlb(1.5, 1.0, HERE), HERE).status is Status.FAIL
  steady = Record("2026-12-05", "hlb_cifar", ELSEWHERE, "python bench/hlb_cifar.py main.py", "tiny: epochs 160.73, 13.56 s, steady last "
                  "epoch 244.3x cuda; losses max rel diff 1.5%; cuda-cudnn-benchmark vs cuda: 1.11%", "PyTorch cuda eager")
  assert b02.verdict(good, steady, HERE).status is Status.PARTIAL and b02.verdict(good, steady, HERE).figure == 244.3  # the newer row format
  steps = Record("2026-12-06", "hlb_cifar", ELSEWHERE, "python bench/hlb_cifar.py main.py", "tiny-capture: epochs 150.10, 19.20 s, steady "
                 "step 1012.5 ms = 112.5x cuda's 9.00 ms, last epoch 41.0x; losses max rel diff 1.2% (within 2%)", "PyTorch cuda eager")
  assert b02.verdict(good, steps, HERE).figure == 112.5  # since 2026-12-06: the step-interval medians, not the last epoch
  noisy = Record("2026-12-06", "hlb_cifar", ELSEWHERE, "python bench/hlb_cifar.py main.py", "tiny-capture: epochs 144.52, 16.01 s, steady "
                 "step 228.8 ms = 34.9x cuda's 6.56 ms; losses max rel diff 4.36% (NOT within 2%); cuda-cudnn-benchmark vs cuda: 2.54%", "PyTorch")
  assert b02.verdict(good, noisy, HERE).status is Status.FAIL and "cuDNN's autotuner: 2.54%" in b02.verdict(good, noisy, HERE).detail
  unreadable = Record("2026-11-26", "hlb_cifar", HERE, "x", "fast", "y")
  assert b02.verdict(good, unreadable, HERE).status is Status.FAIL


def _mnist(vs_tiny: float, vs_cpu: float, machine: str = ELSEWHERE) -> Record:
  return Record("2026-11-26", "mnist_compile", machine, "python bench/mnist_compile.py", f"compiled tiny step 2418 ms; {vs_tiny:g}x vs eager tiny",
                f"eager tiny 38989 ms ({vs_tiny:g}x); eager cpu 2120 ms ({vs_cpu:g}x); inductor cpu 808 ms (0.33x)")


def _forced(loss: float = 4e-7, gain: float = 3e-4, torch32: float = 2e-7) -> list[ForcedStep]:
  """Three forced steps; the last carries the given errors (the others: PyTorch float32's own)."""
  return [ForcedStep(1, torch32, torch32, 1e-5, 1e-5, 1e-7, 1e-7), ForcedStep(2, 1e-8, 1e-8, 1e-5, 1e-5, 1e-7, 1e-7),
          ForcedStep(3, loss, 1e-8, 4e-2, 5e-5, gain, 5e-7)]


def test_03_status_rule():
  def rule(rec, forced=None, gap=0.0, breaks=(), fallbacks=0, terms=1):
    return b03.verdict("ran", _forced() if forced is None else forced, terms, gap, 4.5, list(breaks), fallbacks, rec, HERE)
  assert rule(_mnist(16.12, 0.88)).status is Status.PARTIAL      # the quoted record: 16x eager tiny, slower than eager PyTorch CPU
  assert rule(_mnist(16.12, 0.88)).figure == 0.88
  assert b03.forced_errors(_forced(), 1) == (4e-7 / (16 * 2e-7), 3e-4)  # scale: PyTorch float32's largest loss error of all steps
  assert rule(_mnist(16.12, 0.88), _forced(loss=4e-6)).status is Status.FAIL   # 20x PyTorch float32's loss error
  assert rule(_mnist(16.12, 0.88), _forced(gain=0.05)).status is Status.FAIL   # a step that lowers the loss 5% less: a wrong update
  # a long reduction allows float32's probabilistic summation bound sqrt(n) u: 204800 terms (batch 512), 2.7e-5
  assert rule(_mnist(16.12, 0.88), _forced(loss=1.1e-5, torch32=1e-8), terms=204800).status is Status.PARTIAL
  assert rule(_mnist(16.12, 0.88), _forced(loss=1.1e-5, torch32=1e-8), terms=12800).status is Status.FAIL
  assert rule(_mnist(16.12, 0.88), gap=1.0).status is Status.PARTIAL    # 3 test samples of 297: within the draw
  assert rule(_mnist(16.12, 0.88), gap=5.0).status is Status.FAIL
  assert abs(b03.accuracy_allowance(96.63, 297) - 4.44) < 0.01            # 3 standard errors of a difference at 96.6%, 297 samples
  assert rule(_mnist(16.12, 0.88), breaks=["x"]).status is Status.FAIL
  assert rule(None).status is Status.PARTIAL
  assert rule(_mnist(16.12, 1.5)).status is Status.PARTIAL        # at target, but quoted from another machine
  assert rule(_mnist(16.12, 1.5, HERE)).status is Status.PASS
  assert rule(_mnist(2.0, 1.5, HERE)).status is Status.PARTIAL


def _soak(iterations: int, viz: bool, rss: float, mem: int = 0, trace: int = 0) -> dict:
  return {"iterations": iterations, "rss_growth_mb": rss, "mem_used_delta": mem, "viz_trace_growth": trace, "viz": viz, "seconds": 1.0}


def test_15_status_rule():
  plain = _soak(300, False, 0.5)
  assert b15.verdict(True, plain, _soak(30, True, 3.0, trace=2500)).status is Status.PASS
  assert b15.verdict(True, plain, _soak(30, False, 0.1)).status is Status.FAIL           # VIZ silently stayed off
  assert b15.verdict(True, plain, _soak(30, True, 60.0, trace=2500)).status is Status.FAIL  # 2 MB/iteration under VIZ: a leak
  assert b15.verdict(True, plain, _soak(30, True, 3.0, mem=1 << 20, trace=2500)).status is Status.FAIL
  assert b15.verdict(False, plain, _soak(30, True, 3.0, trace=2500)).status is Status.FAIL
  assert b15.verdict(True, _soak(300, False, 50.0), _soak(30, True, 3.0, trace=2500)).status is Status.FAIL


def test_21_status_rule():
  cpu_ok = {("a", "CPU"): 1e-7, ("b", "CPU"): 2e-7}
  assert b21.verdict(cpu_ok, None).status is Status.NEEDS_HARDWARE   # the fixed failures were on GPU renderers
  quoted = Record("2026-11-26", "avgpool3d_cuda", ELSEWHERE, "x", "18/18 cases pass", "numpy")
  assert b21.verdict(cpu_ok, quoted).status is Status.NEEDS_HARDWARE and "2026-11-26" in b21.verdict(cpu_ok, quoted).detail
  assert b21.verdict({**cpu_ok, ("a", "CUDA"): 1e-7}, None).status is Status.PASS
  assert b21.verdict({**cpu_ok, ("a", "CUDA"): 0.3}, quoted).status is Status.FAIL
  assert b21.verdict({**cpu_ok, ("c", "CPU"): float("nan")}, None).status is Status.FAIL


def test_20_jit_case_captures_and_replays_one_jit():
  """The NV smoke test's jit case (run on the CPU here): one TinyJit, captured, replayed, every call's output right."""
  import numpy as np

  from tinybounty.bounties.b20_nv_newchip import _jitted
  rng = np.random.default_rng(0)
  x, w = rng.standard_normal((8, 6), dtype=np.float32), rng.standard_normal((6, 4), dtype=np.float32)
  want = np.stack([np.maximum(x + i, 0) @ w for i in range(4)])
  np.testing.assert_allclose(_jitted("CPU", x, w), want, rtol=1e-5, atol=1e-5)
