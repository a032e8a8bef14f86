"""Bounty 11: z3 index validation."""
from tinybounty.bounties.base import Bounty, Result, Status


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
  detail = f"{len(found) - len(missed)}/{len(found)} OOB cases caught; {kernels} model kernels clean, {proofs} accesses proven by z3"
  if missed or bad: detail += f"; MISSED {missed}" if missed else f"; OUT OF BOUNDS in {bad}"
  return Result(Status.FAIL if missed or bad else Status.PASS, ran=ran, figure=len(found) - len(missed), unit="OOB cases caught",
                baseline=f"{len(found)} planted", detail=detail)


BOUNTY = Bounty(11, "z3 index validation", "tinybounty.validate",
                hardware="CPU; CUDA and AMD renderers render only", check=check)
