"""Bounty 22: linearizer failure 53 fix."""
from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware


def check(full: bool) -> Result:
  from tinybounty.hardware import nvidia_gpus
  from tinybounty.records import latest
  from tinybounty.validate import failure53
  from tinybounty.validate.targets import nvrtc_path
  src = failure53.render("CUDA")
  grouped = "__shared__" in src and "__syncthreads()" in src
  cubin = len(failure53.compile_cuda(src)) if nvrtc_path() else 0
  if nvidia_gpus():
    wrong = failure53.run("CUDA")
    return Result(Status.PASS if wrong == 0 and grouped else Status.FAIL, ran="failure 53 with GROUPTOP(0, 16) compiled and run on CUDA",
                  figure=wrong, unit="wrong outputs of 1024", baseline="numpy gather")
  wrong = failure53.run("CPU", opts=None)
  ok = grouped and wrong == 0 and (cubin > 0 or not nvrtc_path())
  gpu = latest("failure53_cuda")
  analogue = Result(Status.PASS if ok else Status.FAIL,
                    ran="failure 53 rendered for CUDA sm_90 with GROUPTOP(0, 16)" + (f", NVRTC-compiled ({cubin} B)" if cubin else "")
                        + "; the kernel run on the CPU (no locals: without GROUPTOP)",
                    figure=wrong, unit="wrong outputs of 1024", baseline="numpy gather",
                    detail=(f"H100 run: {gpu.figure} ({gpu.date})" if gpu else "no H100 run recorded") if ok else
                           f"grouped reduce rendered: {grouped}, NVRTC bytes: {cubin}, CPU wrong: {wrong}")
  return needs_hardware("an NVIDIA GPU to run the GROUPTOP kernel (bench/correctness_gpu.py)", analogue)


BOUNTY = Bounty(22, "linearizer failure 53 fix", "tinybounty.validate.failure53",
                hardware="an NVIDIA GPU (CUDA) to compile and run", check=check)
