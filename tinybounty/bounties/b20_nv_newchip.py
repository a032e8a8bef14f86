"""Bounty 20: new-NVIDIA-chip support in the NV backend (the RTX 5090 in the original; Hopper is the card we have).

Criterion. DEV=NV must run on the new chip (Blackwell, sm_120) as DEV=CUDA does: elementwise, reduce, matmul, one
TinyJit captured and replayed (not a new jit per call), and copies NV<->CUDA, each within 1e-4 of CUDA's result.
- PASS: all of those match on an sm_120 GPU here.
- FAIL: any mismatch or crash on the GPU present, or the class/QMD/arch selection wrong for a chip family (mocked).
- NEEDS-HARDWARE: no sm_120 GPU here; the figure is the GPU smoke test on another NVIDIA GPU if one is present, else
  the mocked selection for Ampere, Ada, Hopper and Blackwell.
"""
from __future__ import annotations

import numpy as np

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware

# engine classes each family lists (the H100's as read off one; the others as their RM class lists carry them)
CHIPS = {"Ampere sm_86": ({0xc461, 0xc56f, 0xc6c0, 0xc7c0, 0xc6b5, 0xc7b5}, 0x806, 3),
         "Ada sm_89": ({0xc461, 0xc56f, 0xc9c0, 0xc6b5, 0xc7b5}, 0x809, 3),
         "Hopper sm_90": ({0xc461, 0xc661, 0xc56f, 0xc86f, 0xcbc0, 0xc8b5}, 0x900, 4),
         "Blackwell sm_120": ({0xc461, 0xc661, 0xc56f, 0xc86f, 0xc96f, 0xcec0, 0xc9b5, 0xcab5}, 0xa04, 5)}


def _selection() -> Result:
  """Class, QMD and architecture selection on mocked device info for each chip family."""
  from tinybounty.runtime import nv
  ok = []
  for name, (classes, sm_version, qmd) in CHIPS.items():
    cls = nv.select_classes(classes)
    if nv.qmd_version(cls.compute) == qmd and nv.arch_from_sm_version(sm_version) == "sm_" + name.split("sm_")[1]: ok.append(name)
  return Result(Status.PASS if len(ok) == len(CHIPS) else Status.FAIL, figure=len(ok), unit=f"of {len(CHIPS)} chip families",
                ran="NV class/QMD/arch selection on mocked device info (Ampere, Ada, Hopper, Blackwell)", detail=", ".join(ok))


def _jitted(device: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """One TinyJit called on four inputs: the first runs eagerly, the second captures, the last two replay the capture.
  The replays' outputs are all returned, so a replay that reuses stale buffers or skips a kernel shows up."""
  from tinygrad import Tensor, TinyJit
  wt = Tensor(w, device=device).realize()
  step = TinyJit(lambda t: (t.relu() @ wt).realize())
  outs = [step(Tensor(x + i, device=device)).numpy() for i in range(4)]
  if step.captured is None: raise RuntimeError(f"TinyJit did not capture on {device}")
  return np.stack(outs)


def _smoke() -> Result:
  """DEV=NV against DEV=CUDA on this GPU: elementwise, reduce, matmul, a jitted step, a copy."""
  from tinygrad import Device, Tensor

  from tinybounty.runtime import nv
  nv.install()
  rng = np.random.default_rng(0)
  x, w = rng.standard_normal((512, 384), dtype=np.float32), rng.standard_normal((384, 256), dtype=np.float32)
  cases = {"elementwise": lambda d: (Tensor(x, device=d) * 2 + 1).exp().numpy(), "reduce": lambda d: Tensor(x, device=d).sum(1).numpy(),
           "matmul": lambda d: (Tensor(x, device=d) @ Tensor(w, device=d)).numpy(),
           "jit": lambda d: _jitted(d, x, w),
           "copy NV<->CUDA": lambda d: Tensor(x, device=d).to({"NV": "CUDA", "CUDA": "NV"}[d]).numpy()}
  passed = [k for k, f in cases.items() if np.allclose(f("NV"), f("CUDA"), rtol=1e-4, atol=1e-4)]
  dev = Device["NV"]
  return Result(Status.PASS if len(passed) == len(cases) else Status.FAIL, figure=len(passed), unit=f"of {len(cases)} ops match CUDA",
                ran=f"DEV=NV vs DEV=CUDA on {dev.arch} (compute class {dev.iface.compute_class:#x}): {', '.join(cases)}",
                detail=f"matched: {', '.join(passed)}")


def check(full: bool) -> Result:
  from tinybounty.hardware import cuda_sm, nvidia_gpus
  if not nvidia_gpus(): return needs_hardware("an RTX 5090 (Blackwell, sm_120); DEV=NV runs on any NVIDIA GPU present", _selection())
  smoke = _smoke()
  return smoke if cuda_sm() == 120 else needs_hardware(f"an RTX 5090 (Blackwell, sm_120); this GPU is sm_{cuda_sm()}", smoke)


BOUNTY = Bounty(20, "new-NVIDIA-chip support in the NV backend", "tinybounty.runtime.nv",
                hardware="an RTX 5090 (Blackwell, sm_120) in the original; Hopper here", check=check)
