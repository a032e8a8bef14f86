"""Bounty 11: z3 index validation.

Criterion. The validator must catch out-of-bounds accesses and prove in-bounds ones, on every renderer it targets (the
CPU, AMD, and CUDA where NVRTC is installed: rendering only, no GPU needed); the bounty sets no speed target.
- PASS: every planted out-of-bounds program of the corpus caught on every target, and every kernel of the model
  workloads (GPT-2 decode; --full: all of MODEL_CORPUS) found in bounds.
- FAIL: a planted case missed, a model kernel flagged out of bounds, or a crash.
Without NVRTC the CUDA target is skipped and `ran` says so.
"""
from tinybounty.bounties.base import Bounty, Result, Status


def verdict(ran: str, planted: int, missed: list[str], out_of_bounds: list[str], kernels: int, proofs: int) -> Result:
  """The status by the criterion above from the corpus cases missed and the model workloads flagged out of bounds."""
  detail = f"{planted - len(missed)}/{planted} OOB cases caught; {kernels} model kernels clean, {proofs} accesses proven by z3"
  if missed: detail += f"; MISSED {missed}"
  if out_of_bounds: detail += f"; OUT OF BOUNDS in {out_of_bounds}"
  return Result(Status.FAIL if missed or out_of_bounds else Status.PASS, ran=ran, figure=planted - len(missed), unit="OOB cases caught",
                baseline=f"{planted} planted", detail=detail)


def check(full: bool) -> Result:
  from tinybounty.validate.cli import MODEL_CORPUS, validate_workload
  from tinybounty.validate.corpus import CORPUS, run_corpus
  from tinybounty.validate.targets import TARGETS, nvrtc_path
  targets = TARGETS if nvrtc_path() else tuple(t for t in TARGETS if t != "CUDA")
  found = run_corpus(targets)
  missed = [f"{c}/{t}" for (c, t), r in found.items() if not r.failures]
  models = MODEL_CORPUS if full else ("gpt2_decode",)
  reports = [validate_workload(m, "small", targets, run=False) for m in models]
  bad = [r.name for r in reports if not r.ok]
  kernels = sum(t.kernels for r in reports for t in r.targets)
  proofs = sum(t.count("proof") for r in reports for t in r.targets)
  ran = (f"OOB corpus ({len(CORPUS)} programs) and {', '.join(models)} (small) validated for {', '.join(targets)}"
         + ("" if "CUDA" in targets else "; CUDA skipped: no NVRTC (pip nvidia-cuda-nvrtc-cu12)"))
  return verdict(ran, len(found), missed, bad, kernels, proofs)


BOUNTY = Bounty(11, "z3 index validation", "tinybounty.validate",
                hardware="CPU; CUDA and AMD renderers render only", check=check)
