"""The GPU half of bounties 21 and 22, on a real NVIDIA GPU (run on the H100):

  source .whl/env.sh && DEV=CUDA python3 bench/correctness_gpu.py

21: every AvgPool3D case (tinybounty.validate.avgpool3d.CASES) forward and backward on CUDA against numpy.
22: linearizer failure 53 (tinybounty.validate.failure53) with GROUPTOP(0, 16): rendered by the CUDA renderer, compiled
    and run on the GPU, its 1,024 outputs compared with numpy; the rendered source is printed once.
Both stock and with tinybounty.validate.metadata.install() (this capability's only patch). Then the same on NV if
that device opens. Needs tinygrad 0.14.0 and numpy; no z3, no torch. Prints one PASS/FAIL line per run and a summary.

Without a GPU, `--compile-only` does the rendering and compiling half through the NULL device (no results to check):

  DEV=NULL:CUDA:sm_90 NULL_ALLOW_COPYOUT=1 NVRTC_PATH=.../libnvrtc.so.12 python3 bench/correctness_gpu.py --compile-only
"""
from __future__ import annotations

import importlib.metadata
import os
import pathlib
import sys
import time
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

TOLERANCE = 1e-4


def _avgpool(device: str, compile_only: bool = False) -> tuple[bool, str]:
  from tinybounty.validate.avgpool3d import CASES, max_error
  errs, failed = {}, []
  for c in CASES:
    try:
      errs[c.name] = max_error(c, device)
      if not compile_only and not errs[c.name] < TOLERANCE: failed.append(f"{c.name} err {errs[c.name]:.2e}")
    except Exception as e:  # noqa: BLE001 - every case is reported, a crash is a failure with its message
      failed.append(f"{c.name} {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
  worst = max(errs.values(), default=float("nan"))
  what = "compiled (forward and backward)" if compile_only else f"within {TOLERANCE:g}, max err {worst:.2e}"
  return not failed, f"{len(CASES) - len(failed)}/{len(CASES)} cases {what}" + (f"; FAILED: {'; '.join(failed)}" if failed else "")


def _failure53(device: str, show_source: bool, compile_only: bool = False) -> tuple[bool, str]:
  from tinygrad import Device

  from tinybounty.validate import failure53
  from tinybounty.validate.targets import lower, render
  ren = Device[device].renderer
  src = render(lower(failure53.kernel_ast(device=device), ren), ren)
  if show_source: print(f"--- failure 53 source for {device} ({type(ren).__name__}) ---\n{src}\n---")
  if compile_only: return True, f"GROUPTOP(0, 16) kernel rendered and compiled, {len(ren.compiler.compile(src))} bytes"
  wrong = failure53.run(device)
  return wrong == 0, f"GROUPTOP(0, 16) kernel compiled and ran, {wrong} wrong outputs of {failure53.N_INDEX}"


def _run(name: str, fn, *args) -> tuple[str, bool, str]:
  st = time.perf_counter()
  try:
    ok, detail = fn(*args)
  except Exception as e:  # noqa: BLE001
    ok, detail = False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
  line = f"{'PASS' if ok else 'FAIL'} {name:40s} {time.perf_counter() - st:6.1f} s  {detail}"
  print(line, flush=True)
  return name, ok, detail


def _opens(device: str) -> bool:
  from tinygrad import Device, Tensor
  try:
    Device[device]
    return (Tensor([1.0, 2.0], device=device) * 2).tolist() == [2.0, 4.0]
  except Exception as e:  # noqa: BLE001
    print(f"SKIP {device}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return False


def main() -> int:
  from tinybounty.hardware import machine
  from tinybounty.runtime import nv
  from tinybounty.validate import metadata
  os.environ.setdefault("DEV", "CUDA")
  print(f"machine: {machine()}\ntinygrad: {importlib.metadata.version('tinygrad')}")
  results = []
  if "--compile-only" in sys.argv:
    results.append(_run(f"21 AvgPool3D compile {os.environ['DEV']}", _avgpool, "NULL", True))
    results.append(_run(f"22 failure 53 compile {os.environ['DEV']}", _failure53, "NULL", False, True))
  for device in () if results else ("CUDA", "NV"):
    if device == "NV": nv.install()  # stock 0.14.0's NV backend does not start on Hopper (bounty 20's patch)
    if not _opens(device): continue
    for patched in (False, True):
      if patched: metadata.install()
      tag = f"{device}{' +install()' if patched else ''}"
      results.append(_run(f"21 AvgPool3D {tag}", _avgpool, device))
      results.append(_run(f"22 failure 53 {tag}", _failure53, device, not patched))
      if patched: metadata.uninstall()
  print("\nSUMMARY")
  for name, ok, _ in results: print(f"  {'PASS' if ok else 'FAIL'} {name}")
  print(f"{sum(ok for _, ok, _ in results)}/{len(results)} passed")
  return 0 if results and all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
  sys.exit(main())
