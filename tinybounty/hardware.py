"""What this machine has: the facts checks need to decide between the real target and the nearest analogue."""
from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess


@functools.cache
def nvidia_gpus() -> tuple[tuple[str, str], ...]:
  """(name, compute capability) of each NVIDIA GPU nvidia-smi sees; empty where there is none."""
  if shutil.which("nvidia-smi") is None: return ()
  try:
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20).stdout
  except (OSError, subprocess.SubprocessError):
    return ()
  return tuple(tuple(s.strip() for s in line.split(",", 1)) for line in out.strip().splitlines() if "," in line)


def cuda_sm() -> int | None:
  """The compute capability of the first NVIDIA GPU as an integer (90 for Hopper), or None."""
  gpus = nvidia_gpus()
  return int(gpus[0][1].replace(".", "")) if gpus else None


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"): return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine() -> str:
  """One line naming this machine for benchmark records: CPU, cores, and any NVIDIA GPUs."""
  desc = f"{cpu_name()} x{os.cpu_count()}"
  if gpus := nvidia_gpus(): desc += ", " + ", ".join(f"{n} (sm_{c.replace('.', '')})" for n, c in gpus)
  return desc


def load() -> str:
  """The machine's current load, for benchmark records on a shared machine."""
  return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def tinygrad_device() -> str:
  """The tinygrad device a check runs on: DEV as the user set it, else the CPU."""
  return os.environ.get("DEV", "CPU")
