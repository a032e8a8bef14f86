"""Bounty 14: WebGPU export_model.

Exports beautiful MNIST (full: also ResNet-18 and a GPT-2 decoding 8 tokens with a symbolic position), runs the export in
headless Chromium's WebGPU and checks it against tinygrad on the CPU (max abs diff <= 1e-4). Without chromium the nearest
analogue runs: the same WGSL kernels through tinygrad's WEBGPU device on Dawn.
"""
import tempfile
import time

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware

TOLERANCE = 1e-4


def check(full: bool) -> Result:
  from tinybounty.export.browser import HeadlessChromium, chromium_path
  from tinybounty.export.dawn import run_export
  from tinybounty.export.examples import EXAMPLES, max_abs_diff
  from tinybounty.export.webgpu import export_model
  names = list(EXAMPLES) if full else ["mnist"]
  with tempfile.TemporaryDirectory() as root:
    st, cases = time.perf_counter(), []
    for name in names:
      ex = EXAMPLES[name]()
      export_model(ex.jit, *ex.example_inputs, out_dir=f"{root}/{name}")
      cases.append((name, *ex.reference()))
    export_s = time.perf_counter() - st
    if chromium_path() is None:
      diff = max(max_abs_diff(run_export(f"{root}/{n}", *steps)[1], want) for n, steps, want in cases)
      return needs_hardware("chromium with WebGPU (scripts/setup installs it)", _result(diff, names, "Dawn (tinygrad WEBGPU device)", export_s))
    with HeadlessChromium(root) as browser:
      if (adapter := browser.adapter()) is None: return Result(Status.FAIL, ran="headless chromium", detail="no WebGPU adapter in headless chromium")
      diff = max(max_abs_diff(browser.run_model(n, *steps)["outputs"], want) for n, steps, want in cases)
    return _result(diff, names, f"headless Chromium ({adapter['architecture'] or adapter['vendor']})", export_s)


def _result(diff: float, names: list[str], where: str, export_s: float) -> Result:
  return Result(Status.PASS if diff <= TOLERANCE else Status.FAIL, ran=f"export_model of {', '.join(names)}, run in {where}",
                figure=diff, unit="max abs diff", baseline="tinygrad on the CPU",
                detail=f"tolerance {TOLERANCE:g}; exports took {export_s:.0f} s; timings: bench/webgpu_export.py")


BOUNTY = Bounty(14, "WebGPU export_model", "tinybounty.export.webgpu",
                hardware="a browser with WebGPU (headless chromium here)", check=check)
