"""Run gpt-fast's generate.py (or our gpt_fast_like.py) through the runner and read back the tokens it generated.

The script runs unmodified as `__main__` (run.run_script: 'cuda' -> the target device, torch.cuda.synchronize timing
the target, torch.compile routed to the tiny backend). Its tokens are read where it reads them itself: every
`Tensor.tolist()` it calls is recorded (generate.py decodes `y[0].tolist()`), and the last list is the prompt and the
generated tokens. Its printed "tokens/sec" figures are parsed from its own output.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import pathlib
import re
import sys
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode

from tinybounty.runner.compare import Tee
from tinybounty.runner.run import run_script

SCRIPTS = pathlib.Path(__file__).resolve().parent / "scripts"


def gpt_fast_checkout() -> pathlib.Path | None:
  """gpt-fast's checkout: $GPT_FAST_DIR, else ext/gpt-fast beside this repository; None where neither has generate.py."""
  for d in (os.environ.get("GPT_FAST_DIR"), pathlib.Path(__file__).resolve().parents[2] / "ext" / "gpt-fast"):
    if d and (pathlib.Path(d) / "generate.py").is_file(): return pathlib.Path(d)
  return None


class RecordLists(TorchFunctionMode):
  """Keeps the result of every Tensor.tolist() call."""
  def __init__(self):
    super().__init__()
    self.lists: list[list] = []

  def __torch_function__(self, func, types, args=(), kwargs=None):
    out = func(*args, **(kwargs or {}))
    if func is torch.Tensor.tolist and isinstance(out, list): self.lists.append(out)
    return out


@dataclass
class Generation:
  tokens: list[int]                                         # prompt and generated tokens, as the script decoded them
  tokens_per_s: list[float] = field(default_factory=list)   # the script's own figure per sample
  printed: str = ""


def generate(script: str | os.PathLike, device: str, checkpoint: str | os.PathLike, prompt: str = "Hello, my name is",
             max_new_tokens: int = 32, compile: bool = False, compile_prefill: bool = False, num_samples: int = 1,
             extra: list[str] | None = None, quiet: bool = True) -> Generation:
  """Greedy decoding (--top_k 1 --temperature 0) by `script` on `device`; its tokens and its tok/s."""
  argv = ["--checkpoint_path", str(checkpoint), "--prompt", prompt, "--max_new_tokens", str(max_new_tokens), "--num_samples", str(num_samples),
          "--top_k", "1", "--temperature", "0", *(["--compile"] if compile else []), *(["--compile_prefill"] if compile_prefill else []),
          *(extra or [])]
  if device.startswith("tiny"): importlib.import_module("tinybounty.torch_backend.compile")  # the device and the "tiny" compile backend
  rec, tee = RecordLists(), Tee(io.StringIO() if quiet else sys.stdout)
  with rec, contextlib.redirect_stdout(tee): run_script(script, device, argv)
  seqs = [x for x in rec.lists if x and isinstance(x[0], int)]
  if not seqs: raise RuntimeError(f"{script}: no token list was read back (Tensor.tolist) during the run")
  printed = tee.buf.getvalue()
  return Generation(seqs[-1], [float(v) for v in re.findall(r"([\d.]+) tokens/sec", printed)], printed)
