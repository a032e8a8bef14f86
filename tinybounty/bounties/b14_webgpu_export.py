"""Bounty 14: WebGPU export_model.

Exports beautiful MNIST (full: also ResNet-18 and a GPT-2 decoding 8 tokens with a symbolic position), runs the export in
headless Chromium's WebGPU and checks it against tinygrad on the CPU. Without chromium the nearest analogue runs: the
same WGSL kernels through tinygrad's WEBGPU device on Dawn.

Criterion. The bounty asks for exported models that run in a browser's WebGPU and give tinygrad's outputs; it sets no
speed target (export and run timings live in bench/webgpu_export.py).
- PASS: every exported model's outputs in headless Chromium's WebGPU within TOLERANCE of tinygrad on the CPU.
- FAIL: an output off by more than TOLERANCE (in Chromium or in the Dawn analogue), Chromium without a WebGPU adapter,
  or a crash.
- NEEDS-HARDWARE: no chromium here; the Dawn analogue's outputs within TOLERANCE (the figure).
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
      return verdict(diff, names, "Dawn (tinygrad WEBGPU device)", False, export_s)
    with HeadlessChromium(root) as browser:
      if (adapter := browser.adapter()) is None: return verdict(None, names, "no adapter", True, export_s)
      diff = max(max_abs_diff(browser.run_model(n, *steps)["outputs"], want) for n, steps, want in cases)
    return verdict(diff, names, f"headless Chromium ({adapter['architecture'] or adapter['vendor']})", True, export_s)


def verdict(diff: float | None, names: list[str], where: str, browser: bool, export_s: float) -> Result:
  """The status by the criterion above: `diff` the worst output difference (None: no WebGPU adapter), `browser` whether it
  ran in Chromium (else on Dawn, the analogue)."""
  if diff is None: return Result(Status.FAIL, ran=f"headless chromium ({where})", detail="no WebGPU adapter in headless chromium")
  res = Result(Status.PASS if diff <= TOLERANCE else Status.FAIL, ran=f"export_model of {', '.join(names)}, run in {where}",
               figure=diff, unit="max abs diff", baseline="tinygrad on the CPU",
               detail=f"tolerance {TOLERANCE:g}; exports took {export_s:.0f} s; timings: bench/webgpu_export.py")
  return res if browser else needs_hardware("chromium with WebGPU (scripts/setup installs it)", res)


BOUNTY = Bounty(14, "WebGPU export_model", "tinybounty.export.webgpu",
                hardware="a browser with WebGPU (headless chromium here)", check=check)
