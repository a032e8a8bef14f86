"""Bounty 21: AvgPool3D linearizer fix.

Criterion. The failures this bounty fixes were AvgPool3D kernels the GPU renderers (CUDA, NV) got wrong; the check
runs the AvgPool3D cases (forward and input gradient) against numpy float64 on every device present.
- FAIL: any case on any device is TOLERANCE or more from numpy (or not finite).
- PASS: every case within TOLERANCE on the CPU and on an NVIDIA GPU (CUDA) here.
- NEEDS-HARDWARE: every case within TOLERANCE on the CPU, but no NVIDIA GPU here: the renderer the fix is for did not
  run (the newest GPU record is quoted with its date and machine, and never earns the PASS).
"""
from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware
from tinybounty.records import Record

TOLERANCE = 1e-4


def verdict(errs: dict[tuple[str, str], float], rec: Record | None) -> Result:
  """The status by the criterion above from the measured max errors by (case, device) and the newest GPU record."""
  devices = sorted({d for _, d in errs})
  bad = [k for k, e in errs.items() if not e < TOLERANCE]
  cases = len({c for c, _ in errs})
  detail = f"{len(errs) - len(bad)}/{len(errs)} within {TOLERANCE:g} of numpy (forward and input gradient)" + (f"; FAILED {bad}" if bad else "")
  result = Result(Status.FAIL if bad else Status.PASS, ran=f"{cases} AvgPool3D cases on {', '.join(devices)} vs numpy",
                  figure=max(errs.values()), unit="max abs error", baseline="numpy float64", detail=detail)
  if bad or "CUDA" in devices: return result
  quoted = f"CUDA record {rec.date} on {rec.machine}: {rec.figure}" if rec else "no CUDA run recorded"
  return needs_hardware(f"an NVIDIA GPU: the fixed failures were in the CUDA/NV renderers ({quoted})", result)


def check(full: bool) -> Result:
  from tinybounty.hardware import nvidia_gpus
  from tinybounty.records import latest
  from tinybounty.validate.avgpool3d import CASES, max_error
  devices = ["CPU"] + (["CUDA"] if nvidia_gpus() else [])
  cases = CASES if full else CASES[:2]
  return verdict({(c.name, d): max_error(c, d) for c in cases for d in devices}, latest("avgpool3d_cuda"))


BOUNTY = Bounty(21, "AvgPool3D linearizer fix", "tinybounty.validate.avgpool3d",
                hardware="CPU; NVIDIA GPU for the renderer cases", check=check)
