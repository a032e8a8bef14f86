"""The BERT step's kernels through tinygrad's LLVM AMDGPU path on the NULL device: compiled, resources read from the code object."""
import pytest
from tinygrad import Context, Device, Tensor
from tinygrad.codegen import to_program
from tinygrad.uop.ops import Ops

from tinybounty.mlperf.amd_kernels import KernelResources, code_object_resources, compile_step, step_asts
from tinybounty.models.bert_pretrain import BertPretrainConfig
from tinybounty.runtime.rdna4 import disassemble


@pytest.mark.parametrize("arch", ["gfx942", "gfx1100"])
def test_resources_of_a_shared_memory_reduction(arch):
  """A 256-wide sum uses LDS for its group reduction: the metadata note must say so, and the count matches the disassembly."""
  with Context(DEV=f"NULL:AMDLLVM:{arch}", NOOPT=0):
    s = Tensor.empty(64, 4096).sum(axis=1)
    ast = next(u for u in s.schedule_linear().toposort() if u.op is Ops.CALL).src[0]
    prg = to_program(ast, Device["NULL"].renderer)
  lib = next(x.arg for x in prg.src if x.op is Ops.BINARY)
  r = code_object_resources(lib, arch)
  assert r.vgpr > 0 and r.sgpr > 0 and r.vgpr_spill == 0
  assert r.instructions == len(disassemble(lib, arch)) and any(i.startswith("s_endpgm") for i in disassemble(lib, arch))
  uses_lds = any(i.split()[0].startswith("ds_") for i in disassemble(lib, arch))
  assert (r.lds > 0) == uses_lds


def test_step_kernels_compile_for_gfx942():
  cfg = BertPretrainConfig.tiny()
  with Context(DEV="NULL:AMDLLVM:gfx942"):
    n = len(step_asts(cfg, 2, 16, 3))
  assert n > 100, "forward, backward and LAMB of the whole step"
  rows = compile_step("gfx942", "AMDLLVM", cfg, 2, 16, 3, limit=6)
  assert len(rows) == 6 and all(isinstance(r, KernelResources) and r.instructions > 0 for _, r in rows), rows
