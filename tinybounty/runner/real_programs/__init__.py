"""Real programs (transformers models, torchvision-style CNNs, nanoGPT-style training) on the tiny device vs PyTorch CPU.

`run_in_child(names, dev)` runs programs in a fresh interpreter with tinygrad's DEV set (tinygrad picks its device at
import), and returns each program's report as a dict (measure.Report.as_dict).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

import torch

from tinybounty.runner.real_programs.harness import Program, check


def programs() -> dict[str, Program]:
  """Every program by name: transformers (hf.py, needs transformers), vision and nanoGPT (ours), two under autocast."""
  from tinybounty.runner.real_programs import nanogpt, vision
  out = {**vision.programs(), **nanogpt.programs()}
  try:
    from tinybounty.runner.real_programs import hf
    out = {**hf.programs(), **out}
  except ImportError:
    pass
  return {**out, **_mixed_precision(out)}


def _mixed_precision(progs: dict[str, Program]) -> dict[str, Program]:
  """A transformers decoder and a BatchNorm CNN again under torch.autocast(bfloat16), the CPU's mixed precision: the
  float32 CPU run is PyTorch's own autocast, the tiny run tiny's (torch_backend/amp.py); generate stays float32."""
  return {f"{n}_autocast": dataclasses.replace(progs[n], name=f"{n}_autocast", autocast=torch.bfloat16, generate=None)
          for n in ("gpt2", "resnet18") if n in progs}


def run_in_child(names: list[str], dev: str, timeout: float = 3600) -> list[dict[str, Any]]:
  """Each named program checked in one child interpreter on DEV=`dev`; an exception becomes {"program", "error"}."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  env = {**os.environ, "DEV": dev, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
  res = subprocess.run([sys.executable, "-m", "tinybounty.runner.real_programs", *names], env=env, capture_output=True, text=True, timeout=timeout)
  lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
  if res.returncode != 0 and len(lines) < len(names):
    raise RuntimeError(f"real programs child on DEV={dev} exited {res.returncode}:\n{res.stderr[-4000:]}")
  return [json.loads(ln) for ln in lines]


__all__ = ["Program", "check", "programs", "run_in_child"]
