"""Real programs (transformers models, torchvision-style CNNs, nanoGPT-style training) on the tiny device vs PyTorch CPU.

`run_in_child(names, dev)` runs programs in a fresh interpreter with tinygrad's DEV set (tinygrad picks its device at
import), and returns each program's report as a dict (measure.Report.as_dict).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tinybounty.runner.real_programs.harness import Program, check


def programs() -> dict[str, Program]:
  """Every program by name: transformers (hf.py, needs transformers), vision and nanoGPT (ours)."""
  from tinybounty.runner.real_programs import nanogpt, vision
  out = {**vision.programs(), **nanogpt.programs()}
  try:
    from tinybounty.runner.real_programs import hf
    out = {**hf.programs(), **out}
  except ImportError:
    pass
  return out


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
