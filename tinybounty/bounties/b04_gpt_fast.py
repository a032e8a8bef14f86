"""Bounty 04: gpt-fast on the torch backend (tinybounty.runner.gpt_fast, `python -m tinybounty.torch_backend.run`)."""
from __future__ import annotations

import tempfile

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware


def _analogue(full: bool) -> Result:
  """stories15M (random weights, gpt-fast's format) decoded greedily on tiny and on PyTorch CPU in this process: the
  tokens must be equal; the figure is tiny's tok/s over the CPU's (both eager, as each script reports it)."""
  import pathlib

  from tinybounty.runner.gpt_fast import SCRIPTS, generate, gpt_fast_checkout
  from tinybounty.runner.gpt_fast_checkpoint import write_checkpoint
  n = 32 if full else 8
  checkout = gpt_fast_checkout()
  script = checkout / "generate.py" if checkout is not None else SCRIPTS / "gpt_fast_like.py"
  with tempfile.TemporaryDirectory() as d:
    ckpt = write_checkpoint(pathlib.Path(d) / "stories15M")
    ref = generate(script, "cpu", ckpt, max_new_tokens=n)
    got = generate(script, "tiny", ckpt, max_new_tokens=n)
  same = got.tokens == ref.tokens
  ratio = got.tokens_per_s[-1] / ref.tokens_per_s[-1] if got.tokens_per_s and ref.tokens_per_s else float("nan")
  which = "gpt-fast's own generate.py, unmodified" if checkout is not None else "our gpt_fast_like.py (gpt-fast's op mix; no gpt-fast checkout here)"
  ran = (f"{which} through the runner, stories15M-shaped random bf16 checkpoint, greedy (--top_k 1 --temperature 0) {n} tokens, eager: "
         f"tiny tokens {'equal' if same else 'DIFFER from'} PyTorch CPU's; tiny {got.tokens_per_s[-1]:.2f} tok/s vs CPU {ref.tokens_per_s[-1]:.2f}")
  return Result(Status.PASS if same else Status.FAIL, ran=ran, figure=ratio, unit="x PyTorch CPU eager tok/s",
                baseline="PyTorch CPU eager, same process run", detail="tokens equal" if same else "tokens differ")


def check(full: bool) -> Result:
  return needs_hardware("a GPU for the 7B run (target: faster than gpt-fast's own torch.compile on the same card); "
                        "--compile on tiny is not verified yet", _analogue(full))


BOUNTY = Bounty(4, "gpt-fast on the torch backend", "tinybounty.runner.gpt_fast",
                hardware="an AMD GPU in the original; any tinygrad GPU here", check=check, timeout=900.0)
