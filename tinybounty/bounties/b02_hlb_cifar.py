"""Bounty 02: hlb-CIFAR10 on the torch backend (tinybounty.torch_backend.run)."""
from __future__ import annotations

import os
import pathlib
import tempfile

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware
from tinybounty.hardware import nvidia_gpus
from tinybounty.records import latest

SCRIPTS = pathlib.Path(__file__).resolve().parent.parent / "runner" / "scripts"


def _analogue(full: bool) -> Result:
  """Our scripts through the runner on the tiny device vs PyTorch CPU, same weights and batches: per-step loss agreement."""
  import tinybounty.torch_backend  # noqa: F401 - registers the tiny device
  from tinybounty.runner.compare import max_rel_diff, run
  from tinybounty.runner.run import find_data_location, write_data_cache
  script = SCRIPTS / ("hlb_like.py" if full else "cuda_minimal.py")
  argv = ["--epochs", "1", "--steps", "3", "--widths", "8", "8", "8", "--float32"] if full else []
  cwd = os.getcwd()
  with tempfile.TemporaryDirectory() as d:
    os.chdir(d)
    try:
      write_data_cache(find_data_location(script), n_train=256 if full else 32, n_test=250 if full else 8)
      ref, _, init = run(script, "cpu", 1, 0, None, argv, quiet=True)
      got, _, _ = run(script, "tiny", 1, 0, init, argv, quiet=True)
    finally: os.chdir(cwd)
  err = max_rel_diff(got, ref)
  ran = (f"{script.name} unmodified through `python -m tinybounty.torch_backend.run` ('cuda' strings, torch.cuda.Event, data cache, "
         f"torchvision stand-in): tiny vs PyTorch CPU from identical weights and batches, {len(got)} steps, max loss difference {err:.2%}")
  return Result(Status.PASS if err <= 0.02 else Status.FAIL, ran=ran, figure=err * 100, unit="% max per-step loss difference",
                baseline="PyTorch CPU, same process run", detail="needs <= 2%")


def check(full: bool) -> Result:
  analogue = _analogue(full)
  rec = latest("hlb_cifar")
  if rec is not None and analogue.status is Status.PASS:
    return Result(Status.PARTIAL if "NOT" in rec.figure else Status.PASS, ran=analogue.ran + f"; real main.py on the GPU quoted from "
                  f"docs/benchmarks.md ({rec.date}, {rec.machine})", figure=analogue.figure, unit=analogue.unit,
                  baseline=rec.baseline, detail=rec.figure)
  return needs_hardware("an NVIDIA GPU (H100) with torchvision for the real main.py run (bench/hlb_cifar.py)"
                        + ("" if not nvidia_gpus() else "; a GPU is present: run bench/hlb_cifar.py and record it"), analogue)


BOUNTY = Bounty(2, "hlb-CIFAR10 on the torch backend", "tinybounty.torch_backend.run",
                hardware="an NVIDIA GPU for the full run (lent H100); CPU for the scaled run", check=check)
