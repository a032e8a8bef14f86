"""Train one hlb-CIFAR10-style script on two devices from identical weights and batches, and compare per-step losses.

Used by bench/hlb_cifar.py (the real main.py: PyTorch CUDA vs tiny on DEV=CUDA) and by bounty 02's check (our
scaled-down tinybounty/runner/scripts/hlb_like.py: CPU vs tiny). The script runs through run.run_script.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import io
import multiprocessing
import os
import re
import sys
import time
from typing import NamedTuple

from tqdm import tqdm

from tinybounty.runner.run import RecordLosses, on_device, run_script


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


def last_val_acc(printed: str) -> float | None:
  """The val_acc of main.py's last table row (the column its head names), None if there is no such column or row."""
  cells = [[c.strip() for c in row.split("|")[1:-1]] for row in printed.splitlines() if row.startswith("|")]
  if (head := next((c for c in cells if "val_acc" in c), None)) is None: return None
  col = head.index("val_acc")
  rows = [c for c in cells if c and c[0].isdigit() and len(c) == len(head)]
  return float(rows[-1][col]) if rows and rows[-1][col] else None


class ScriptRun(NamedTuple):
  """What one training run of a script gave."""
  losses: list[float]  # per step, hooked at loss.backward()
  epoch_times: list[float]  # the script's own per-epoch training seconds
  init: dict  # its network's initial state (CPU tensors)
  step_times: list[float]  # host seconds between consecutive loss.backward() calls
  val_acc: float | None = None  # the last epoch's validation accuracy in the script's table
  returned: object = None  # what its main() returned (main.py: the EMA network's validation accuracy, or None)


def run(script: str | os.PathLike, device: str, epochs: float, seed: int = 0, init: dict | None = None, argv: list[str] | None = None,
        quiet: bool = False, configure=None) -> ScriptRun:
  """Run an hlb-CIFAR10-style script on `device` with one seeded CPU generator for its randomness, and return its
  per-step losses (hooked at loss.backward()), the per-epoch training times it prints, its network's initial state and
  the intervals between steps.

  Its module code runs first (data to the device; a script without main() trains there). If it defines main() and
  make_net() (as main.py does), main() then trains for `epochs` (hyp['misc']['train_epochs']), and the network
  make_net() builds is loaded with `init` when given: identical initial weights on both devices. `configure(globals)`
  may change the script's settings between its module code and main() (a scaled-down run: widths, batch size)."""
  captured: dict = {}
  returned = None
  bar = tqdm(desc=f"[{device}] training steps", unit="step", disable=quiet, file=sys.stderr)
  rec, tee = RecordLosses(bar), Tee(io.StringIO() if quiet else sys.stdout)
  st = time.perf_counter()
  with rec, bar, contextlib.redirect_stdout(tee):
    g = run_script(script, device, argv or [], host_rng=seed, run_name="hlb_main")  # not __main__: main.py's 25-run loop does not start
    if "main" in g and "make_net" in g:
      g = g["main"].__globals__  # the script's live globals (run_path returns a copy), which main() reads
      g["hyp"]["misc"]["train_epochs"] = epochs
      if configure is not None: configure(g)
      g["make_net"] = _same_init(g["make_net"], device, init, captured)
      with on_device(device, seed): returned = g["main"]()
  if not quiet: print(f"[{device}] {time.perf_counter() - st:.1f} s wall (including data, eval and warm-up)")
  printed = tee.buf.getvalue()
  return ScriptRun(rec.losses(), epoch_times(printed), captured, [b - a for a, b in zip(rec.times, rec.times[1:])],
                   last_val_acc(printed), returned)


def _same_init(make_net, device: str, init: dict | None, captured: dict):
  def make_net_same_init():
    net = make_net()
    if init is not None: net.load_state_dict({k: v.to(device) for k, v in init.items()})
    captured.update({k: v.detach().cpu().clone() for k, v in net.state_dict().items()})
    return net
  return make_net_same_init


def in_child(fn, *args):
  """fn(*args) in a fresh spawned process: a device registered there (tiny becomes torch's accelerator, and CUDA
  autograd then asserts, pytorch/pytorch#161129) stays there, so each device of a comparison trains in its own."""
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
    return pool.submit(fn, *args).result()


def worst_step(got: list[float], ref: list[float]) -> tuple[int, float]:
  """The step with the largest |got - ref| / |ref|, and that difference ((0, inf) if the step counts differ)."""
  if len(got) != len(ref) or not ref: return 0, float("inf")
  return max(((i, abs(a - b) / max(abs(b), 1e-8)) for i, (a, b) in enumerate(zip(got, ref))), key=lambda step: step[1])


def max_rel_diff(got: list[float], ref: list[float]) -> float:
  """The largest |got - ref| / |ref| over steps (inf if the step counts differ)."""
  return worst_step(got, ref)[1]
