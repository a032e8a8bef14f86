"""Which matrix element each lane holds in each register slot, as a tinygrad TensorCore definition implies it.

A TensorCore names its warp as bits: `opts` split the N and M dims into lane bits ("l") and per-thread bits ("u"), the
K dim is split into reduce bits r0.. (lowest first), and `swizzle` says, per operand, which of those logical bits each
hardware bit carries. `fragment_map` undoes that bookkeeping into plain coordinates, so a test can hold it against the
lane mapping an ISA manual gives (and catch a layout that only works for another data width).
"""
from __future__ import annotations

import math

from tinygrad.codegen.opt.tc import TensorCore

Fragment = dict[tuple[int, int], tuple[int, int]]  # (lane, element) -> (row, col) of A (M x K), B (K x N) or C (M x N)
N_DIM, M_DIM, K_DIM = 0, 1, 2


def _bit_meaning(tc: TensorCore) -> dict[str, tuple[int, int]]:
  """Logical name -> (dim, bit): opts take successive bits of their dim from the lowest, r<i> is bit i of K."""
  meaning, taken, count = {}, {N_DIM: 0, M_DIM: 0}, {"l": 0, "u": 0}
  for opt in tc.opts:
    dim = int(opt[1])
    meaning[f"{opt[0]}{count[opt[0]]}"] = (dim, taken[dim])
    taken[dim], count[opt[0]] = taken[dim] + 1, count[opt[0]] + 1
  for i in range(len(tc.get_reduce_axes())): meaning[f"r{i}"] = (K_DIM, i)
  return meaning


def fragment_map(tc: TensorCore, operand: int) -> Fragment:
  """(lane, element) -> matrix coordinates for operand 0 (A, M x K), 1 (B, K x N) or 2 (C and D, M x N)."""
  if operand not in (0, 1, 2): raise ValueError(f"operand is 0 (A), 1 (B) or 2 (C), got {operand}")
  meaning = _bit_meaning(tc)
  remap = tc._remaps()[operand] if operand < 2 else {name: name for name in meaning}
  upcast = tc.base_upcast_axes()[:int(math.log2(tc.elements_per_thread[operand]))]  # first is the element's top bit
  dims = {0: (M_DIM, K_DIM), 1: (K_DIM, N_DIM), 2: (M_DIM, N_DIM)}[operand]
  out: Fragment = {}
  for lane in range(tc.threads):
    for elem in range(tc.elements_per_thread[operand]):
      bits = {f"l{j}": (lane >> j) & 1 for j in range(int(math.log2(tc.threads)))}
      bits.update({name: (elem >> (len(upcast) - 1 - j)) & 1 for j, name in enumerate(upcast)})
      coord = {N_DIM: 0, M_DIM: 0, K_DIM: 0}
      for hw, value in bits.items():
        dim, bit = meaning[remap[hw]]
        if dim not in dims: raise ValueError(f"{tc}: operand {operand} carries a {('N', 'M', 'K')[dim]} bit in {hw}")
        coord[dim] |= value << bit
      out[lane, elem] = (coord[dims[0]], coord[dims[1]])
  return out
