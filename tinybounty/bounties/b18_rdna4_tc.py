"""Bounty 18: RDNA4 tensor cores, including the fp8 and int8 WMMA forms 0.14.0 lacks.

Criterion. The real target is matmuls on an RDNA4 GPU (gfx1200/gfx1201) using its WMMA instructions for half, fp8
(e4m3, e5m2) and int8, with correct results. The analogue here: 64^3 matmuls of each form rendered for gfx1201 on the
NULL device, compiled by LLVM's AMDGPU target and disassembled, and the 8-bit fragment layouts checked against the RDNA4
ISA's lane mapping (the figure: WMMA forms found of FORMS).
- FAIL: a form's WMMA instruction missing from the disassembly, a fragment layout off the ISA's, or a crash.
- NEEDS-HARDWARE: every form present and every layout right (no RDNA4 GPU can run the kernels here).
- PASS: not reachable from this check: it runs no kernel on an RDNA4 GPU (never claimed from the analogue).
"""
from __future__ import annotations

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware

FORMS = {"half": "v_wmma_f32_16x16x16_f16", "fp8e4m3": "v_wmma_f32_16x16x16_fp8_fp8", "fp8e5m2": "v_wmma_f32_16x16x16_bf8_bf8",
         "int8": "v_wmma_i32_16x16x16_iu8"}


def _compile_and_disassemble() -> Result:
  """Render, compile and disassemble each form for gfx1201; the verdict on what was found."""
  from tinygrad import Device, Tensor, dtypes
  from tinygrad.codegen import to_program
  from tinygrad.helpers import Context
  from tinygrad.uop.ops import Ops

  from tinybounty.runtime import rdna4
  from tinybounty.runtime.tc_layout import fragment_map
  isa_8bit_a = {(lane, e): (lane % 16, 8 * (lane // 16) + e) for lane in range(32) for e in range(8)}  # RDNA4 ISA, wave32
  bad_layouts = [str(tc) for tc in rdna4.RDNA4_8BIT if fragment_map(tc, 0) != isa_8bit_a]
  found, missing = [], []
  rdna4.install()
  try:
    with Context(DEV="NULL:AMDLLVM:gfx1201"):
      for name, want in FORMS.items():
        din = getattr(dtypes, name)
        dout = dtypes.int32 if din == dtypes.int8 else dtypes.float
        c = Tensor.empty(64, 64, dtype=din, device="NULL").matmul(Tensor.empty(64, 64, dtype=din, device="NULL"), dtype=dout)
        prg = to_program(next(u for u in c.schedule_linear().toposort() if u.op is Ops.CALL).src[0], Device["NULL"].renderer)
        ops = {line.split()[0] for line in rdna4.disassemble(next(s.arg for s in prg.src if s.op is Ops.BINARY))}
        (found if want in ops else missing).append(want)
  finally:
    rdna4.uninstall()
  return verdict(found, missing, bad_layouts)


def verdict(found: list[str], missing: list[str], bad_layouts: list[str]) -> Result:
  """The status by the criterion above from the WMMA instructions found and missing and the layouts off the ISA."""
  ok = not missing and not bad_layouts
  analogue = Result(Status.PASS if ok else Status.FAIL, figure=len(found), unit=f"of {len(FORMS)} WMMA forms in the gfx1201 disassembly",
                    ran="64^3 matmuls (half, fp8 e4m3/e5m2, int8) rendered with DEV=NULL:AMDLLVM:gfx1201, compiled by LLVM's AMDGPU target, "
                        "disassembled; 8-bit fragment layouts checked against the RDNA4 ISA lane mapping",
                    baseline="0.14.0: half/bf16 only", detail=f"found {', '.join(found)}" + (f"; missing {missing}" if missing else "")
                    + (f"; layouts off the ISA: {bad_layouts}" if bad_layouts else ""))
  return needs_hardware("an AMD RDNA4 GPU (gfx1200/gfx1201) to run the kernels", analogue)


def check(full: bool) -> Result:
  return _compile_and_disassemble()


BOUNTY = Bounty(18, "RDNA4 tensor cores", "tinybounty.runtime.rdna4",
                hardware="an AMD RDNA4 GPU (gfx1200/gfx1201)", check=check)
