"""fragment_map against the lane mappings the ISA manuals give, for tinygrad's own (hardware-proven) tensor cores."""
import pytest
from tinygrad.codegen.opt import tc

from tinybounty.runtime.tc_layout import fragment_map


def group(lane): return lane >> 2   # PTX: groupID
def quad(lane): return lane % 4     # PTX: threadID_in_group


# PTX ISA, "Matrix Fragments for mma.m16n8k16" (f16/bf16) and "mma.m16n8k32" (.e4m3/.e5m2): (lane, element) -> coordinates
PTX = {
  (8, 16, 16): ({(l, i): (group(l) + 8 * ((i // 2) % 2), quad(l) * 2 + i % 2 + 8 * (i >= 4)) for l in range(32) for i in range(8)},
                {(l, i): (quad(l) * 2 + i % 2 + 8 * (i >= 2), group(l)) for l in range(32) for i in range(4)}),
  (8, 16, 32): ({(l, i): (group(l) + 8 * ((i // 4) % 2), quad(l) * 4 + i % 4 + 16 * (i >= 8)) for l in range(32) for i in range(16)},
                {(l, i): (quad(l) * 4 + i % 4 + 16 * (i >= 4), group(l)) for l in range(32) for i in range(8)}),
}
PTX_C = {(l, i): (group(l) + 8 * (i >= 2), quad(l) * 2 + i % 2) for l in range(32) for i in range(4)}

# RDNA4 ISA, WMMA 16-bit operands in wave32 (AMD matrix instruction calculator, v_wmma_f32_16x16x16_f16): lane = row + 16*((k//4)%2)
RDNA4_16BIT_A = {(l, e): (l % 16, 8 * (e // 4) + 4 * (l // 16) + e % 4) for l in range(32) for e in range(8)}
RDNA4_C = {(l, e): (8 * (l // 16) + e, l % 16) for l in range(32) for e in range(8)}


def transpose(frag): return {k: v[::-1] for k, v in frag.items()}


@pytest.mark.parametrize("core", tc.cuda_81616 + tc.cuda_81632_f8, ids=str)
def test_cuda_mma_fragments_match_ptx(core):
  a, b = PTX[core.dims]
  assert fragment_map(core, 0) == a
  assert fragment_map(core, 1) == b
  assert fragment_map(core, 2) == PTX_C


@pytest.mark.parametrize("core", tc.amd_rdna4, ids=str)
def test_rdna4_16bit_fragments_match_isa(core):
  assert fragment_map(core, 0) == RDNA4_16BIT_A
  assert fragment_map(core, 1) == transpose(RDNA4_16BIT_A)
  assert fragment_map(core, 2) == RDNA4_C


def test_bad_operand():
  with pytest.raises(ValueError, match="operand"): fragment_map(tc.amd_rdna4[0], 3)
