"""Bounty 04: gpt-fast on the torch backend (tinybounty.runner.gpt_fast, `python -m tinybounty.torch_backend.run`).

Criterion. The real target is gpt-fast's generate.py (a 7B model) on a GPU through the tiny device, faster than gpt-fast's
own torch.compile on the same card. The analogue here: a stories15M-shaped checkpoint decoded greedily by the same
script on tiny and on PyTorch CPU in this process (the figure: tiny's tok/s over the CPU's, both eager).
- FAIL: tiny's tokens differ from PyTorch CPU's other than by a near-tie (runner.gpt_fast.agreement: where they part,
  the CPU's own logit gap between the two tokens, teacher-forced, exceeds twice the measured logit difference between
  the devices), or a crash.
- NEEDS-HARDWARE: tokens agree, no GPU here (the analogue's speed ratio is shown, not the target's).
- PARTIAL: tokens agree and a GPU is here, but this check does not run the 7B comparison yet: the target is unshown.
The 7B run on a GPU (bench/gpt_fast.py, GPU_BENCHES), where recorded, is quoted beside it and changes no status.
- PASS: not reachable from this check until the 7B GPU comparison is built into it (never claimed from the analogue).
"""
from __future__ import annotations

import tempfile

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware, with_records

GPU_BENCHES = ("gpt_fast_7B_bf16_cuda_compile", "gpt_fast_7B_bf16_tiny_compile",  # the 7B on a GPU: quoted, never counted
               "gpt_fast_7B_int8_tiny_compile", "gpt_fast_7B_bf16_tiny_compile_b8")


def _analogue(full: bool) -> Result:
  """stories15M (random weights, gpt-fast's format) decoded greedily on tiny and on PyTorch CPU in this process: the
  tokens must be equal; the figure is tiny's tok/s over the CPU's (both eager, as each script reports it)."""
  import pathlib

  from tinybounty.runner.gpt_fast import SCRIPTS, agreement, forced_logits, generate, gpt_fast_checkout
  from tinybounty.runner.gpt_fast_checkpoint import write_checkpoint
  n = 32 if full else 8
  checkout = gpt_fast_checkout()
  script = checkout / "generate.py" if checkout is not None else SCRIPTS / "gpt_fast_like.py"
  with tempfile.TemporaryDirectory() as d:
    ckpt = write_checkpoint(pathlib.Path(d) / "stories15M")
    ref = generate(script, "cpu", ckpt, max_new_tokens=n)
    got = generate(script, "tiny", ckpt, max_new_tokens=n)
    agree = agreement(ref.tokens, got.tokens, lambda which, prefix: forced_logits(script, "cpu" if which == "ref" else "tiny", ckpt, prefix))
  same = agree.ok
  ratio = got.tokens_per_s[-1] / ref.tokens_per_s[-1] if got.tokens_per_s and ref.tokens_per_s else float("nan")
  which = "gpt-fast's own generate.py, unmodified" if checkout is not None else "our gpt_fast_like.py (gpt-fast's op mix; no gpt-fast checkout here)"
  ran = (f"{which} through the runner, stories15M-shaped random bf16 checkpoint, greedy (--top_k 1 --temperature 0) {n} tokens, eager: "
         f"tiny vs PyTorch CPU: {agree}; tiny {got.tokens_per_s[-1]:.2f} tok/s vs CPU {ref.tokens_per_s[-1]:.2f}")
  return Result(Status.PASS if same else Status.FAIL, ran=ran, figure=ratio, unit="x PyTorch CPU eager tok/s",
                baseline="PyTorch CPU eager, same process run", detail=str(agree))


def verdict(analogue: Result, gpus: tuple) -> Result:
  """The status by the criterion above from the analogue's result and the NVIDIA GPUs present."""
  if analogue.status is Status.FAIL: return analogue
  target = "the 7B run, faster than gpt-fast's own torch.compile on the same card"
  if not gpus: return needs_hardware(f"a GPU for {target}", analogue)
  return Result(Status.PARTIAL, ran=analogue.ran, figure=analogue.figure, unit=analogue.unit, baseline=analogue.baseline,
                detail=f"{analogue.detail}; the target ({target}) is not run by this check, so it is unshown")


def check(full: bool) -> Result:
  from tinybounty.hardware import nvidia_gpus
  return with_records(verdict(_analogue(full), nvidia_gpus()), GPU_BENCHES)


BOUNTY = Bounty(4, "gpt-fast on the torch backend", "tinybounty.runner.gpt_fast",
                hardware="an AMD GPU in the original; any tinygrad GPU here", check=check, timeout=900.0)
