"""Stock TinyJit vs CPUGraph on tinygrad's CPU device, clang and LLVM backends, in one process run.

  python bench/cpugraph.py                 # tiny MLP step, GPT-2-small-shaped narrow decode, beautiful MNIST step (batch 8)
  python bench/cpugraph.py --full          # also GPT-2 small decode at full width and beautiful MNIST at batch 512
  python bench/cpugraph.py --only mlp --backend clang --iters 50 --repeats 5

Each workload is captured twice (stock, CPUGraph); then rounds of `iters` steps alternate between the two. Prints min and
median µs per step, the ratio of medians (and of mins), what CPUGraph left outside its graphs, and a docs/benchmarks.md
row per result.
"""
from __future__ import annotations

import argparse
import sys

from tinygrad.helpers import Context
from tqdm import tqdm

from tinybounty.bounties import cpugraph_measure as cb
from tinybounty.hardware import load, machine
from tinybounty.records import bench_command, format_row

BACKENDS = {"clang": "CPU", "llvm": "CPU:LLVM"}


def workloads(full: bool) -> dict[str, tuple[cb.Workload, int]]:
  """name -> (workload, iteration scale): heavy steps run fewer iterations."""
  ws = {"mlp": (cb.mlp(24, 64, 8), 1), "gpt2_narrow_decode": (cb.gpt2_decode_narrow(), 1), "mnist_b8": (cb.mnist_train(8), 4)}
  if full: ws |= {"gpt2_small_decode": (cb.gpt2_decode(), 8), "mnist_b512": (cb.mnist_train(512), 16)}
  return ws


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--full", action="store_true", help="add the full-size GPT-2 small decode and the batch-512 MNIST step")
  p.add_argument("--only", nargs="*", help="workload names (mlp, gpt2_narrow_decode, mnist_b8, gpt2_small_decode, mnist_b512)")
  p.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
  p.add_argument("--iters", type=int, default=20, help="steps per round (divided for heavy workloads)")
  p.add_argument("--repeats", type=int, default=5, help="rounds per build, stock and CPUGraph alternating")
  args = p.parse_args(argv)

  ws = workloads(args.full)
  if unknown := set(args.only or []) - set(ws): p.error(f"unknown workload(s) {sorted(unknown)}; choose from {sorted(ws)}")
  backends = list(BACKENDS) if args.backend == "both" else [args.backend]
  todo = [(b, n) for b in backends for n in ws if not args.only or n in args.only]
  print(f"machine: {machine()}, {load()} (other jobs skew absolute times: compare same-run ratios)")
  rows = []
  for backend, name in tqdm(todo, desc="cpugraph bench"):
    w, scale = ws[name]
    with Context(DEV=BACKENDS[backend]): t = cb.time_workload(w, iters=max(2, args.iters // scale), repeats=args.repeats)
    tqdm.write(f"[{backend}] {t.line()}")
    rows.append(format_row(f"cpugraph_{name}_{backend}", machine(), bench_command("bench/cpugraph.py", argv),
                           f"{t.ratio:.2f}x median ({t.median_us('graph'):.0f} µs/step, min {min(t.graph_us):.0f}); graphed {t.counts}",
                           f"stock TinyJit {t.median_us('stock'):.0f} µs/step median (min {min(t.stock_us):.0f}), same run; {load()}"))
  print("\n".join(["", "rows for docs/benchmarks.md:", *rows]))
  return 0


if __name__ == "__main__": sys.exit(main())
