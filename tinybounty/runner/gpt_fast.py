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
import runpy
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from tinybounty.runner.compare import Tee
from tinybounty.runner.run import _patched, on_device, run_script

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


def forced_logits(script: str | os.PathLike, device: str, checkpoint: str | os.PathLike, tokens: list[int], int8: bool = False) -> np.ndarray:
  """The script's own model, loaded as the script loads it (gpt-fast's `_load_model`, or gpt_fast_like's `Transformer`),
  run once over `tokens` on `device` (teacher forcing, one prefill): float32 logits, (len(tokens), vocab)."""
  script, checkpoint = pathlib.Path(script).resolve(), pathlib.Path(checkpoint)
  if device.startswith("tiny"): importlib.import_module("tinybounty.torch_backend")
  with _patched(sys, path=[str(script.parent), *sys.path]), on_device(device), torch.no_grad():
    g = runpy.run_path(str(script), run_name="tinybounty_forced")  # its definitions; its main() does not run
    if "_load_model" in g: model = g["_load_model"](checkpoint, "cuda", torch.bfloat16, False)
    else:
      with torch.device("meta"): model = g["Transformer"](g["shape_of"](checkpoint.parent.name))
      g["load_state"](model, torch.load(str(checkpoint), mmap=True, weights_only=True))
      model = model.to(device="cuda", dtype=torch.bfloat16).eval()
      if int8: model = g["to_int8"](model)  # gpt_fast_like's --int8 (gpt-fast's own int8 is a checkpoint _load_model reads)
    with torch.device("cuda"): model.setup_caches(1, len(tokens))
    idx = torch.tensor(tokens, dtype=torch.int, device="cuda").view(1, -1)
    return model(idx, torch.arange(len(tokens), device="cuda")).float().cpu().numpy()[0]


@dataclass
class Agreement:
  """Greedy tokens of one run against the reference's, read through teacher-forced logits where they part.

  Random-weight bf16 models have near-flat logits: the reference's own top two are often within a bf16 ulp, so an
  order of summation elsewhere can pick the other one. Where the tokens first part (`position`), both devices are run
  over the reference's tokens up to there: `gap` is the reference's logit of its token minus that of the other run's
  token, `difference` the largest |logit difference| between the two devices over those rows. A flip by rounding
  needs gap <= 2 * difference; a larger gap is a real disagreement. (The forced pass is a prefill, the decode's
  kernels differ: `difference` estimates, it does not bound, the decode's own.)
  """
  position: int | None = None       # first differing index of prompt + generated tokens; None: equal
  gap: float | None = None
  difference: float | None = None

  @property
  def tie(self) -> bool:
    return self.position is not None and self.gap is not None and self.difference is not None and self.gap <= 2 * self.difference

  @property
  def ok(self) -> bool:
    return self.position is None or self.tie

  def __str__(self) -> str:
    if self.position is None: return "tokens equal"
    if self.gap is None: return f"tokens DIFFER at {self.position} (not analysed)"
    how = "a near-tie" if self.tie else "NOT a near-tie"
    return (f"tokens equal up to {self.position}, then {how}: the reference's gap {self.gap:.3g} vs "
            f"2 x {self.difference:.3g} (largest teacher-forced logit difference)")


def agreement(ref: list[int], got: list[int], forced: Callable[[str, list[int]], np.ndarray] | None = None) -> Agreement:
  """Compare `got` with `ref`; where they part, `forced(which, prefix)` gives the teacher-forced logits of "ref" or
  "got"'s device over the reference's prefix (see Agreement)."""
  p = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), None)
  if p is None and len(ref) == len(got): return Agreement()
  if p is None or forced is None: return Agreement(p if p is not None else min(len(ref), len(got)))
  lr, lg = forced("ref", ref[:p]), forced("got", ref[:p])
  return Agreement(p, float(lr[-1, ref[p]] - lr[-1, got[p]]), float(np.abs(lr - lg).max()))
