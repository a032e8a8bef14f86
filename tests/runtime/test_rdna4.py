"""gfx12 8-bit WMMA, proven without the card: lane layout against the ISA, LLVM compile + disassembly, emulated run."""
import numpy as np
import pytest
from tinygrad import Device, Tensor, dtypes
from tinygrad.codegen import to_program
from tinygrad.codegen.opt import tc
from tinygrad.helpers import Context
from tinygrad.uop.ops import Ops

from tinybounty.runtime import rdna4
from tinybounty.runtime.rdna4 import RDNA4_8BIT
from tinybounty.runtime.tc_layout import fragment_map

GFX1201 = "NULL:AMDLLVM:gfx1201"
# RDNA4 ISA, WMMA 8-bit operands in wave32 (v_wmma_f32_16x16x16_fp8_fp8, v_wmma_i32_16x16x16_iu8): 8 consecutive K a lane
RDNA4_8BIT_A = {(l, e): (l % 16, 8 * (l // 16) + e) for l in range(32) for e in range(8)}
RDNA4_C = {(l, e): (8 * (l // 16) + e, l % 16) for l in range(32) for e in range(8)}
WMMA = {dtypes.half: "v_wmma_f32_16x16x16_f16", dtypes.fp8e4m3: "v_wmma_f32_16x16x16_fp8_fp8",
        dtypes.fp8e5m2: "v_wmma_f32_16x16x16_bf8_bf8", dtypes.int8: "v_wmma_i32_16x16x16_iu8"}


@pytest.fixture
def installed():
  rdna4.install()
  yield
  rdna4.uninstall()


def compile_matmul(din, dout, n=64):
  """The gfx1201 program (LLVM IR source, code object) of one n^3 matmul, through whatever renderer DEV names."""
  c = Tensor.empty(n, n, dtype=din, device="NULL").matmul(Tensor.empty(n, n, dtype=din, device="NULL"), dtype=dout)
  ast = next(u for u in c.schedule_linear().toposort() if u.op is Ops.CALL).src[0]
  prg = to_program(ast, Device["NULL"].renderer)
  return next(s.arg for s in prg.src if s.op is Ops.SOURCE), next(s.arg for s in prg.src if s.op is Ops.BINARY)


@pytest.mark.parametrize("core", RDNA4_8BIT, ids=str)
def test_8bit_fragments_match_isa(core):
  assert fragment_map(core, 0) == RDNA4_8BIT_A
  assert fragment_map(core, 1) == {k: v[::-1] for k, v in RDNA4_8BIT_A.items()}
  assert fragment_map(core, 2) == RDNA4_C


def test_8bit_layout_is_not_the_16bit_one():
  """Reusing the half swizzle for 8-bit inputs would put K 4-7 in the wrong lanes: why the entries are separate."""
  assert fragment_map(tc.amd_rdna4[0], 0) != RDNA4_8BIT_A


@pytest.mark.parametrize("din,dout", [(dtypes.half, dtypes.float), (dtypes.fp8e4m3, dtypes.float), (dtypes.fp8e5m2, dtypes.float),
                                      (dtypes.int8, dtypes.int32)], ids=lambda d: d.name)
def test_compiles_to_gfx12_wmma(installed, din, dout):
  with Context(DEV=GFX1201):
    src, lib = compile_matmul(din, dout)
  ops = {line.split()[0] for line in rdna4.disassemble(lib)}
  assert WMMA[din] in ops, f"no {WMMA[din]} in the gfx1201 disassembly"
  assert "@llvm.amdgcn.wmma." in src


def test_uninstall_restores_stock(installed):
  with Context(DEV=GFX1201):
    assert len(Device["NULL"].renderer.tensor_cores) == len(tc.amd_rdna4) + len(RDNA4_8BIT)
    rdna4.uninstall()
    ren = Device["NULL"].renderer
    assert ren.tensor_cores == tc.amd_rdna4 and dtypes.fp8e4m3 not in ren.supported_dtypes()
    src, _ = compile_matmul(dtypes.int8, dtypes.int32)
  assert "wmma" not in src


def test_emulated_int8_matmul_with_the_isa_lane_model(monkeypatch):
  """Run the whole pipeline on tinygrad's PYTHON device, its WMMA replaced by the ISA's 8-bit lane model: exact ints."""
  from tinygrad.runtime import ops_python
  stock, calls = ops_python.generic_wmma_helper, []
  def isa(x, k, row, goff): return x[k % 8][goff + row + 16 * (k // 8)]
  def helper(inp, warp_size, threads, k, na, nb, nc, a_elem, b_elem, c_map):
    calls.append(k)
    return stock(inp, warp_size, threads, k, na, nb, nc, isa, lambda x, col, kk, goff: isa(x, kk, col, goff), c_map)
  monkeypatch.setattr(ops_python, "generic_wmma_helper", helper)
  rng = np.random.default_rng(0)
  a, b = rng.integers(-11, 12, (32, 48), dtype=np.int8), rng.integers(-11, 12, (48, 16), dtype=np.int8)  # products fit int8
  with Context(DEV="PYTHON::gfx1201"):
    ren = Device["PYTHON"].renderer
    monkeypatch.setattr(ren, "tensor_cores", [RDNA4_8BIT[2]])
    out = Tensor(a, device="PYTHON").realize().matmul(Tensor(b, device="PYTHON").realize(), dtype=dtypes.int32).numpy()
  assert calls, "the matmul did not run through WMMA"
  np.testing.assert_array_equal(out, a.astype(np.int32) @ b.astype(np.int32))
