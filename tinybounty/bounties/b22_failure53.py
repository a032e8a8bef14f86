"""Bounty 22: linearizer failure 53 fix.

Criterion. Failure 53 (a gather reduce with GROUPTOP(0, 16)) must render a grouped reduce (shared memory and a barrier)
for CUDA, compile, and give numpy's outputs when run on an NVIDIA GPU.
- PASS: on an NVIDIA GPU here, the GROUPTOP kernel grouped and 0 of 1024 outputs wrong.
- FAIL: a wrong output (on the GPU or in the CPU analogue), the reduce not grouped, NVRTC present but failing to
  compile it, or a crash.
- NEEDS-HARDWARE: no NVIDIA GPU; the analogue: rendered for CUDA sm_90 grouped, NVRTC-compiled where installed, and the
  kernel (without GROUPTOP: no locals on the CPU) run on the CPU with 0 wrong outputs. The newest GPU record is quoted
  with its date and machine and sets no status.
"""
from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware, quoted
from tinybounty.records import Record


def verdict(grouped: bool, wrong: int, on_gpu: bool, cubin: int = 0, nvrtc: bool = False, rec: Record | None = None) -> Result:
  """The status by the criterion above: `wrong` outputs of 1024 on CUDA (`on_gpu`) or on the CPU, `cubin` NVRTC's bytes."""
  if on_gpu:
    return Result(Status.PASS if wrong == 0 and grouped else Status.FAIL, ran="failure 53 with GROUPTOP(0, 16) compiled and run on CUDA",
                  figure=wrong, unit="wrong outputs of 1024", baseline="numpy gather", detail=f"grouped reduce rendered: {grouped}")
  ok = grouped and wrong == 0 and (cubin > 0 or not nvrtc)
  analogue = Result(Status.PASS if ok else Status.FAIL,
                    ran="failure 53 rendered for CUDA sm_90 with GROUPTOP(0, 16)" + (f", NVRTC-compiled ({cubin} B)" if cubin else "")
                        + "; the kernel run on the CPU (no locals: without GROUPTOP)",
                    figure=wrong, unit="wrong outputs of 1024", baseline="numpy gather",
                    detail=(f"GPU run quoted ({quoted(rec)})" if rec else "no GPU run recorded") if ok else
                           f"grouped reduce rendered: {grouped}, NVRTC bytes: {cubin}, CPU wrong: {wrong}")
  return needs_hardware("an NVIDIA GPU to run the GROUPTOP kernel (bench/correctness_gpu.py)", analogue)


def check(full: bool) -> Result:
  from tinybounty.hardware import nvidia_gpus
  from tinybounty.records import latest
  from tinybounty.validate import failure53
  from tinybounty.validate.targets import nvrtc_path
  src = failure53.render("CUDA")
  grouped = "__shared__" in src and "__syncthreads()" in src
  cubin = len(failure53.compile_cuda(src)) if nvrtc_path() else 0
  if nvidia_gpus(): return verdict(grouped, failure53.run("CUDA"), True)
  return verdict(grouped, failure53.run("CPU", opts=None), False, cubin, bool(nvrtc_path()), latest("failure53_cuda"))


BOUNTY = Bounty(22, "linearizer failure 53 fix", "tinybounty.validate.failure53",
                hardware="an NVIDIA GPU (CUDA) to compile and run", check=check)
