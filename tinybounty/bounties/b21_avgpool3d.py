"""Bounty 21: AvgPool3D linearizer fix."""
from tinybounty.bounties.base import Bounty, Result, Status

TOLERANCE = 1e-4


def check(full: bool) -> Result:
  from tinybounty.hardware import nvidia_gpus
  from tinybounty.records import latest
  from tinybounty.validate.avgpool3d import CASES, max_error
  devices = ["CPU"] + (["CUDA"] if nvidia_gpus() else [])
  cases = CASES if full else CASES[:2]
  errs = {(c.name, d): max_error(c, d) for c in cases for d in devices}
  bad = [k for k, e in errs.items() if not e < TOLERANCE]
  gpu = latest("avgpool3d_cuda")
  detail = (f"{len(errs) - len(bad)}/{len(errs)} within {TOLERANCE:g} of numpy (forward and input gradient)"
            + (f"; FAILED {bad}" if bad else "")
            + ("" if "CUDA" in devices else f"; H100 CUDA run: {gpu.figure} ({gpu.date}, docs/benchmarks.md)" if gpu else "; no CUDA run recorded"))
  return Result(Status.FAIL if bad else Status.PASS, ran=f"{len(cases)} AvgPool3D cases on {', '.join(devices)} vs numpy",
                figure=max(errs.values()), unit="max abs error", baseline="numpy float64", detail=detail)


BOUNTY = Bounty(21, "AvgPool3D linearizer fix", "tinybounty.validate.avgpool3d",
                hardware="CPU; NVIDIA GPU for the renderer cases", check=check)
