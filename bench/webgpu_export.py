"""WebGPU export: export time, weight size, and first-run / steady-state inference in headless Chromium, against tinygrad on the CPU.

  python bench/webgpu_export.py                      # beautiful MNIST, ResNet-18 (width 8, 32x32), tiny GPT-2 decode
  python bench/webgpu_export.py --only mnist --repeats 20

Per model, in one process run: TinyJit's own first two calls on the CPU (the baseline: capture, compiling the kernels for
clang from cold), then the export (the CPU kernels are compiled by then: what it costs on top is the WGSL lowering of every
kernel, the capture and the files), then Chromium loads the export and runs it once (first run: pipelines warm) and `repeats` more
times (steady state), against the same jitted function on tinygrad's CPU device. Chromium here is SwiftShader (WebGPU on
the CPU): its times say what the runtime costs, not what a GPU would do. Prints min and median and a docs/benchmarks.md row.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from tinygrad import TinyJit
from tqdm import tqdm

from tinybounty.export.browser import HeadlessChromium
from tinybounty.export.examples import EXAMPLES, max_abs_diff
from tinybounty.export.webgpu import export_model
from tinybounty.hardware import load, machine
from tinybounty.records import bench_command, format_row


def _cpu_times(ex, repeats: int) -> tuple[float, list[float]]:
  """(seconds of TinyJit's first two calls, compiling from cold, and ms per steady call) on tinygrad's CPU device."""
  jit, args = TinyJit(ex.jit.fxn), ex.example_inputs
  st = time.perf_counter()
  for _ in range(2): jit(*args).numpy()
  capture_s, runs = time.perf_counter() - st, []
  for _ in range(repeats):
    st = time.perf_counter()
    jit(*args).numpy()
    runs.append((time.perf_counter() - st) * 1e3)
  return capture_s, runs


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--only", nargs="*", choices=list(EXAMPLES), help="models to run (default: all)")
  p.add_argument("--repeats", type=int, default=10, help="steady-state runs per model, browser and CPU")
  args = p.parse_args(argv)
  print(f"machine: {machine()}, {load()} (other jobs skew absolute times: compare same-run ratios)")
  rows = []
  with tempfile.TemporaryDirectory() as root, HeadlessChromium(root) as browser:
    print(f"adapter: {browser.adapter()}")
    for name in tqdm(args.only or list(EXAMPLES), desc="webgpu export bench"):
      ex = EXAMPLES[name]()
      capture_s, cpu = _cpu_times(ex, args.repeats)
      st = time.perf_counter()
      e = export_model(ex.jit, *ex.example_inputs, out_dir=f"{root}/{name}")
      export_s = time.perf_counter() - st
      steps, want = ex.reference()
      res = browser.run_model(name, *steps, repeats=args.repeats)
      diff = max_abs_diff(res["outputs"], want)
      steady = res["runs"][len(steps):]
      line = (f"export {export_s:.1f} s ({e.kernels} kernels, {e.weight_bytes / 1024:.0f} KiB weights); browser load {res['loadMs']:.0f} ms, "
              f"first run {res['runs'][0]:.1f} ms, steady {min(steady):.2f}/{statistics.median(steady):.2f} ms min/median; max abs diff {diff:.1e}")
      base = f"TinyJit CPU: capture {capture_s:.1f} s, steady {min(cpu):.2f}/{statistics.median(cpu):.2f} ms min/median"
      ratio = statistics.median(steady) / statistics.median(cpu)
      tqdm.write(f"[{name}] {line}\n  baseline {base}; browser/CPU steady {ratio:.1f}x, export/capture {export_s / capture_s:.1f}x")
      rows.append(format_row(f"webgpu_export_{name}", machine(), bench_command("bench/webgpu_export.py", argv), f"{line}; browser/CPU {ratio:.1f}x",
                             f"{base}, same run; Chromium SwiftShader WebGPU; {load()}"))
  print("\n".join(["", "rows for docs/benchmarks.md:", *rows]))
  return 0


if __name__ == "__main__": sys.exit(main())
