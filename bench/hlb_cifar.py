"""hlb-CIFAR10's own main.py on PyTorch CUDA and on the tiny device (DEV=CUDA), in one bench run, from identical weights.

  DEV=CUDA PYTHONPATH=. python bench/hlb_cifar.py path/to/hlb-CIFAR10/main.py [--epochs 1] [--data CIFAR_DIR] [--runs cuda tiny]

The script is loaded through tinybounty.runner (never copied or edited): its data cache (main.py's
'data.pt' in the working directory) is written first if missing, from --data or a synthetic CIFAR-format set of
50000 + 10000 images. Both runs use --host-rng (one seeded CPU generator for randperm / crops / flips / cutmix, moved
to the device), so they see identical batches. The CUDA run's initial network (after main.py's whitening init) is
saved, and the tiny run, after running main.py's own make_net (eigh / cov / unfold whitening on tiny), loads it: both
runs start from identical weights. The loss of every step is hooked at loss.backward(). Epoch times are the script's
own (torch.cuda.Event on CUDA; host-clock events that synchronize tinygrad on tiny), training only, as main.py prints.

Each device trains in its own child process, one after the other: once a PrivateUse1 backend is registered, torch
(>= 2.8) makes it the process's accelerator and CUDA autograd fails an internal assert (pytorch/pytorch#161129), so the
CUDA run must happen in a process that never imports the tiny device.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics

import torch

from tinybounty.data.files import atomic_write
from tinybounty.hardware import machine
from tinybounty.records import format_row
from tinybounty.runner.compare import ScriptRun, in_child, run, worst_step
from tinybounty.runner.run import find_data_location, write_data_cache


def train(script: str, device: str, epochs: float, seed: int, init: dict | None, engine: bool) -> ScriptRun:
  """One run, in a child process (tiny is registered only there). Device "cuda-cudnn-benchmark" is CUDA with cuDNN's
  autotuner on (other convolution algorithms): against plain "cuda" it measures how far two correct fp16 runs drift."""
  if device.startswith("tiny"):
    importlib.import_module("tinybounty.torch_backend")  # DEV picks tinygrad's backend
    if device == "tiny-capture":  # eager steps recorded once and replayed (torch_backend/capture.py)
      from tinybounty.torch_backend import capture
      capture.set_enabled(True)
      device = "tiny"
    if engine:
      import tinybounty.engine
      tinybounty.engine.install()
      print(f"[tiny] tinybounty.engine installed ({tinybounty.engine.engine_kind()} loop)")
  if device == "cuda-cudnn-benchmark": torch.backends.cudnn.benchmark, device = True, "cuda"
  result = run(script, device, epochs, seed, init)
  if device == "tiny":  # what the steps did: replays, captures, lowerings with their reasons
    import tinybounty.torch_backend as tb
    s = tb.stats()
    reasons = sorted(s.get("capture_reasons", {}).items(), key=lambda kv: -kv[1])[:12]
    print(f"[tiny] capture: {({k: s[k] for k in ('captured', 'replays', 'recaptures', 'lowered', 'uncaptured') if k in s})} {reasons}")
  return result


def compare(name: str, got: list[float], ref: list[float]) -> float:
  worst, rel = worst_step(got, ref)
  at = f", worst at step {worst} ({got[worst]:.4f} vs {ref[worst]:.4f})" if rel != float("inf") else ""
  print(f"{name}: {len(got)} vs {len(ref)} steps, max relative loss difference {rel:.3%} ({'within' if rel <= 0.02 else 'NOT within'} 2%){at}")
  return rel


def accuracy(val_acc: float | None, ema_val_acc: float | None) -> str:
  """main.py's last validation accuracies, as its table prints them (the EMA network's exists from its EMA epochs on)."""
  return f"val_acc {val_acc if val_acc is not None else '-'}, ema_val_acc {ema_val_acc if ema_val_acc is not None else '-'}"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("script", help="path to hlb-CIFAR10's main.py")
  p.add_argument("--epochs", type=float, default=1.0, help="train_epochs for both runs (main.py's default is 12.1)")
  p.add_argument("--data", help="CIFAR-10 python batches for the data cache (default: synthetic CIFAR-format data)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--engine", action="store_true", help="install tinybounty.engine (the fast rewrite engine) in the tiny run")
  p.add_argument("--runs", nargs="+", default=["cuda", "tiny"], choices=["cuda", "tiny", "tiny-capture", "cpu", "cuda-cudnn-benchmark"],
                 help="the first is the reference; every other run is compared with it")
  p.add_argument("--json", help="write every run's per-step losses and epoch times here")
  args = p.parse_args()
  cache = find_data_location(args.script) or "data.pt"
  if not os.path.exists(cache): write_data_cache(cache, args.data)
  results, steady, acc, init = {}, {}, {}, None
  for dev in args.runs:
    r = in_child(train, args.script, dev, args.epochs, args.seed, init, args.engine)
    losses, step_times, init = r.losses, r.step_times, init or r.init
    results[dev] = (losses, r.epoch_times)
    acc[dev] = (r.val_acc, r.returned if isinstance(r.returned, float) else None)
    # steady per-step time: the median interval between steps over the run's second half (compiles and captures
    # happen in the first steps; an epoch end's eval adds one long interval, which the median ignores)
    steady[dev] = statistics.median(step_times[len(step_times) // 2:]) if len(step_times) > 1 else float("nan")
    print(f"[{dev}] {len(losses)} steps; epoch times {', '.join(f'{t:.3f}' for t in r.epoch_times)} s; "
          f"steady step {steady[dev] * 1e3:.1f} ms (median, second half); final loss {losses[-1]:.4f}; {accuracy(*acc[dev])}")
    if len(results) > 1: compare(f"{dev} vs {args.runs[0]}", losses, results[args.runs[0]][0])  # now: a later run may be cut
    if args.json:  # after every run, for the same reason
      with atomic_write(args.json) as f:
        f.write(json.dumps({k: {"losses": v[0], "epoch_times": v[1], "steady_step_s": steady[k], "val_acc": acc[k][0], "ema_val_acc": acc[k][1]}
                            for k, v in results.items()}).encode())
  if torch.cuda.is_available(): print("torch", torch.__version__, torch.cuda.get_device_name())
  ref_dev, (ref, ref_t) = next(iter(results.items()))
  rels = {dev: compare(f"{dev} vs {ref_dev}", got, ref) for dev, (got, _) in list(results.items())[1:]}
  cmd = f"DEV=CUDA python bench/hlb_cifar.py main.py --epochs {args.epochs:g}{' --engine' if args.engine else ''} --runs {' '.join(args.runs)}"
  noise = "".join(f"; {dev} vs {ref_dev}: {rel:.2%}" for dev, rel in rels.items() if not dev.startswith("tiny"))
  for dev, (_, got_t) in results.items():
    if not dev.startswith("tiny") or not got_t or not ref_t: continue
    # the first epoch (kernel compiles, capture) is reported apart; the steady ratio is of the step-interval medians
    last = got_t[-1] / ref_t[-1]
    ratio = steady[dev] / steady[ref_dev]
    print(f"{dev}: first epoch {got_t[0]:.2f} s vs {ref_dev} {ref_t[0]:.3f} s; last epoch {got_t[-1]:.3f} s vs {ref_t[-1]:.3f} s ({last:.1f}x); "
          f"steady step {steady[dev] * 1e3:.1f} ms vs {steady[ref_dev] * 1e3:.2f} ms: {ratio:.1f}x (target <= 2x)")
    print(format_row("hlb_cifar", machine(), cmd, f"{dev}: epochs {', '.join(f'{t:.2f}' for t in got_t)} s, steady step "
                     f"{steady[dev] * 1e3:.1f} ms = {ratio:.1f}x {ref_dev}'s {steady[ref_dev] * 1e3:.2f} ms, last epoch {last:.1f}x; "
                     f"losses max rel diff {rels[dev]:.2%} ({'within' if rels[dev] <= 0.02 else 'NOT within'} 2%){noise}; {accuracy(*acc[dev])}",
                     f"PyTorch {ref_dev} eager epochs {', '.join(f'{t:.3f}' for t in ref_t)} s, {accuracy(*acc[ref_dev])}, same bench run "
                     "(one child process per run)"))

if __name__ == "__main__":
  main()
