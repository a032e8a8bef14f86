"""Proves every memory access of a lowered kernel in bounds with z3, or names the index expression that is not."""
from __future__ import annotations

from dataclasses import dataclass

from tinygrad.dtype import dtypes
from tinygrad.uop.ops import Ops, UOp

SOLVER_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class IndexCheck:
  """One LOAD or STORE address. verdict: "bounds" (interval arithmetic suffices), "proof" (z3: unsat), "oob" (z3 found a
  counterexample), "unknown" (z3 gave up), "unmodelled" (BITCAST/STACK in the index, which z3 cannot express)."""
  kernel: str
  op: str
  buffer_size: int
  expr: str
  gate: str
  verdict: str
  counterexample: str = ""

  @property
  def failed(self) -> bool: return self.verdict in ("oob", "unknown")


def _accesses(sink: UOp) -> list[tuple[UOp, UOp, UOp | None]]:
  """(LOAD/STORE, address, gate) for every memory access: INDEX(buffer, offset) or, for vector accesses, SHRINK(buffer, start, count)."""
  out = []
  for u in sink.toposort():
    if u.op not in (Ops.LOAD, Ops.STORE): continue
    idx = u.src[0].src[0] if u.src[0].op is Ops.CAST else u.src[0]
    if not ((idx.op is Ops.INDEX and len(idx.src) == 2) or (idx.op is Ops.SHRINK and len(idx.src) == 3)): continue
    gate = u.src[2] if len(u.src) > 2 and u.src[2].dtype == dtypes.bool else None
    out.append((u, idx, gate))
  return out


def _unmodelled(*uops: UOp) -> bool:
  return any(x.op in (Ops.BITCAST, Ops.STACK) for u in uops for x in u.toposort(gate=lambda x: x.op is not Ops.PARAM))


def _readable(u: UOp) -> str:
  """An index expression as text, each value loaded from memory shown as a named unknown (load0, load1, ...)."""
  if not (loads := [x for x in u.toposort() if x.op is Ops.LOAD]): return u.render(simplify=False)
  return u.substitute({ld: UOp.variable(f"load{i}", ld.vmin, ld.vmax, ld.dtype) for i, ld in enumerate(loads)}).render(simplify=False)


def check_index(kernel: str, access: UOp, addr: UOp, gate: UOp | None) -> IndexCheck:
  """Decide one access: cheap interval bounds first, then z3 over every variable's range and the access's gate.

  A vector access SHRINK(buffer, start, count) touches start .. start+count-1; tinygrad's own CHECK_OOB skips these."""
  try:
    import z3
  except ImportError as e:
    raise ImportError("z3 index validation needs z3-solver >= 4.12.4: pip install z3-solver (tinybounty's dev extra)") from e
  from tinygrad.uop.validate import uops_to_z3
  buf, off = addr.src[:2]
  last = off + (addr.src[2] - 1) if addr.op is Ops.SHRINK else off
  size, gate_u = buf.max_numel(), gate if gate is not None else UOp.const(True)
  base = dict(kernel=kernel, op=access.op.name, buffer_size=size, expr=_readable(off), gate=_readable(gate_u))
  if off.is_invalid: return IndexCheck(**base, verdict="bounds")
  if 0 <= off.vmin and last.vmax < size: return IndexCheck(**base, verdict="bounds")
  if _unmodelled(last, gate_u): return IndexCheck(**base, verdict="unmodelled")
  solver = z3.Solver(ctx=z3.Context())
  solver.set("timeout", SOLVER_TIMEOUT_MS)
  z3_off, z3_last, z3_gate = uops_to_z3(solver, off, last, gate_u)
  solver.add(z3_gate)
  res = solver.check((z3_off < 0) | (z3_last >= size))
  if res == z3.unsat: return IndexCheck(**base, verdict="proof")
  if res == z3.sat:
    m = solver.model()
    cex = ", ".join(f"{d.name()}={m[d]}" for d in sorted(m.decls(), key=lambda d: d.name())) + f" -> index {m.eval(z3_off)}"
    return IndexCheck(**base, verdict="oob", counterexample=cex)
  return IndexCheck(**base, verdict="unknown", counterexample=solver.reason_unknown())


def check_sink(kernel: str, sink: UOp) -> list[IndexCheck]:
  """Every memory access of one lowered kernel (the SINK that full_rewrite_to_sink returns), checked."""
  return [check_index(kernel, a, i, g) for a, i, g in _accesses(sink)]
