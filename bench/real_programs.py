"""Every real program (tinybounty/runner/real_programs) on the tiny device vs PyTorch CPU, on each CPU renderer, each
renderer in its own child interpreter (tinygrad picks its device at import). Prints a markdown table: model, logits
error, gradient and weight errors (each with PyTorch's own and tiny's worst ratio to its bound: at most 1 passes), greedy
generate equal, loss after the steps on tiny and on the CPU.

  PYTHONPATH=. python bench/real_programs.py [--renderers CPU CPU:LLVM] [--programs gpt2 llama ...]
"""
from __future__ import annotations

import argparse

from tqdm import tqdm

from tinybounty.runner.real_programs import programs, run_in_child


def _worst(items: list[dict], prefix: str) -> str:
  """The item of `prefix` nearest its bound (measure.py): tiny's error, PyTorch's, and the ratio to the bound (<= 1 passes)."""
  chosen = [c for c in items if c["name"].startswith(prefix)]
  if not chosen: return "-"
  w = max(chosen, key=lambda c: c["ratio"])
  return f"{w['tiny']:.1e} (torch {w['torch']:.1e}; {w['ratio']:.2f})"


def row(dev: str, r: dict) -> str:
  if "error" in r: return f"| {r['program']} | {dev} | FAIL: {r['error'].splitlines()[0][:160]} | | | | |"
  f, items = r["facts"], r["items"]
  gen = {True: "equal", False: "DIFFERS", None: "-"}[f.get("generate_equal")]
  return (f"| {r['program']} | {dev} | {_worst(items, 'outputs')} | {_worst(items, 'grad:')} | {_worst(items, 'weight:')} | {gen} | "
          f"{f['loss_tiny']:.5f} / {f['loss_cpu']:.5f} | {'pass' if r['ok'] else 'FAIL'} |")


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--renderers", nargs="+", default=["CPU", "CPU:LLVM"])
  ap.add_argument("--programs", nargs="+", default=None)
  args = ap.parse_args()
  names = args.programs or list(programs())
  print("| model | DEV | logits err (torch) | worst step-0 grad err (torch) | worst weight err after steps (torch) | generate "
        "| loss after steps tiny / CPU | |")
  print("|---|---|---|---|---|---|---|---|")
  for dev in args.renderers:
    for name in tqdm(names, desc=f"DEV={dev}"):
      try: reports = run_in_child([name], dev)
      except Exception as e: reports = [{"program": name, "error": f"{type(e).__name__}: {str(e)[-300:]}"}]
      for r in reports: tqdm.write(row(dev, r))


if __name__ == "__main__":
  main()
