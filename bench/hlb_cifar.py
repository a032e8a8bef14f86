"""hlb-CIFAR10's own main.py on PyTorch CUDA and on the tiny device (DEV=CUDA), in one process, from identical weights.

  DEV=CUDA PYTHONPATH=. python bench/hlb_cifar.py path/to/hlb-CIFAR10/main.py [--epochs 1] [--data CIFAR_DIR] [--runs cuda tiny]

The script is loaded through tinybounty.torch_backend.run (never copied or edited): its data cache (main.py's
'data.pt' in the working directory) is written first if missing, from --data or a synthetic CIFAR-format set of
50000 + 10000 images. Both runs use --host-rng (one seeded CPU generator for randperm / crops / flips / cutmix, moved
to the device), so they see identical batches. The CUDA run's initial network (after main.py's whitening init) is
saved, and the tiny run, after running main.py's own make_net (eigh / cov / unfold whitening on tiny), loads it: both
runs start from identical weights. The loss of every step is hooked at loss.backward(). Epoch times are the script's
own (torch.cuda.Event on CUDA; host-clock events that synchronize tinygrad on tiny), training only, as main.py prints.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import statistics
import sys
import time

import torch

from tinybounty.hardware import machine
from tinybounty.records import format_row
from tinybounty.torch_backend.run import RecordLosses, find_data_location, on_device, run_script, write_data_cache


class Tee(io.TextIOBase):
  """Echo to the real stdout while keeping a copy (main.py's epoch table is read back for its own timings)."""
  def __init__(self, out):
    self.out, self.buf = out, io.StringIO()

  def write(self, s: str) -> int:
    self.buf.write(s)
    return self.out.write(s)


def epoch_times(printed: str) -> list[float]:
  """Per-epoch training seconds from main.py's table (its last column is the cumulative training time)."""
  total = [float(row.split("|")[-2]) for row in printed.splitlines() if re.match(r"\|\s+\d+\s+\|", row)]
  return [b - a for a, b in zip([0.0] + total, total)]


def run(script: str, device: str, epochs: float, seed: int, init: dict | None) -> tuple[list[float], list[float], dict]:
  """Load main.py on `device` (its module code runs: data to device, padding), train `epochs`; returns losses, epoch times, initial state."""
  captured: dict = {}
  g = run_script(script, device, [], host_rng=seed, run_name="hlb_main")  # not __main__: its 25-run loop does not start
  g["hyp"]["misc"]["train_epochs"] = epochs
  make_net = g["make_net"]

  def make_net_same_init():
    net = make_net()
    if init is not None:
      net.load_state_dict({k: v.to(device) for k, v in init.items()})
    captured.update({k: v.detach().cpu().clone() for k, v in net.state_dict().items()})
    return net
  g["make_net"] = make_net_same_init
  rec, tee = RecordLosses(), Tee(sys.stdout)
  with on_device(device, seed), rec, contextlib.redirect_stdout(tee):
    st = time.perf_counter()
    g["main"]()
    wall = time.perf_counter() - st
  print(f"[{device}] main() took {wall:.1f} s wall (including eval and warm-up)")
  return rec.losses(), epoch_times(tee.buf.getvalue()), captured


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("script", help="path to hlb-CIFAR10's main.py")
  p.add_argument("--epochs", type=float, default=1.0, help="train_epochs for both runs (main.py's default is 12.1)")
  p.add_argument("--data", help="CIFAR-10 python batches for the data cache (default: synthetic CIFAR-format data)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--runs", nargs="+", default=["cuda", "tiny"], choices=["cuda", "tiny", "cpu"])
  args = p.parse_args()
  if "tiny" in args.runs: importlib.import_module("tinybounty.torch_backend")  # registers the tiny device (DEV picks tinygrad's backend)
  cache = find_data_location(args.script) or "data.pt"
  if not os.path.exists(cache): write_data_cache(cache, args.data)
  results, init = {}, None
  for dev in args.runs:
    losses, times, state = run(args.script, dev, args.epochs, args.seed, init)
    init = init or state
    results[dev] = (losses, times)
    print(f"[{dev}] {len(losses)} steps; epoch times {', '.join(f'{t:.3f}' for t in times)} s; final loss {losses[-1]:.4f}")
  if len(results) < 2: return
  (ref_dev, (ref, ref_t)), (dev, (got, got_t)) = list(results.items())[:2]
  rel = [abs(a - b) / max(abs(b), 1e-8) for a, b in zip(got, ref)]
  ratio = statistics.median(got_t) / statistics.median(ref_t)
  ok = len(got) == len(ref) and max(rel) <= 0.02
  print(f"losses: {len(got)} vs {len(ref)} steps, max relative difference {max(rel):.3%}, median {statistics.median(rel):.3%} "
        f"({'within' if ok else 'NOT within'} 2%)")
  print(f"epoch time: {dev} {statistics.median(got_t):.3f} s vs {ref_dev} {statistics.median(ref_t):.3f} s (median): {ratio:.2f}x "
        f"(target <= 2x); full 12.1-epoch run projected {statistics.median(got_t) * 12.1:.1f} s")
  if torch.cuda.is_available(): print("torch", torch.__version__, torch.cuda.get_device_name())
  cmd = f"DEV=CUDA PYTHONPATH=. python bench/hlb_cifar.py main.py --epochs {args.epochs:g}"
  print(format_row("hlb_cifar", machine(), cmd, f"tiny epoch {statistics.median(got_t):.3f} s ({ratio:.2f}x); losses max rel diff {max(rel):.2%}",
                   f"PyTorch {ref_dev} eager epoch {statistics.median(ref_t):.3f} s, same process run"))


if __name__ == "__main__":
  main()
