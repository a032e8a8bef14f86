"""Programs that read or write out of bounds on purpose: the validator must catch every one, for every target.

Two come straight from tensor code that 0.14.0 runs without complaint (a symbolic shrink past a buffer's end, a
symbolic window that slides off it). Two plant, in a correct kernel's lowered form, the bug a renderer or rewrite
would make: a pad whose valid-mask lets one element too many through, and a gather whose bounds gate is dropped.
Each case also has its uncorrupted twin, which must validate clean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tinygrad import Tensor, Variable, dtypes
from tinygrad.uop.ops import Ops, UOp

from tinybounty.validate.report import TargetReport
from tinybounty.validate.schedule import kernel_asts, validate_kernels
from tinybounty.validate.targets import TARGETS


def _asts(t: Tensor) -> list[UOp]: return kernel_asts(t.linear_with_vars()[0])


def _data(n: int) -> Tensor:
  """A realized buffer of n floats whose contents the compiler cannot know (a constant buffer would be folded away)."""
  return Tensor.rand(n).realize()


def shrink_past_end() -> list[UOp]:
  return _asts(_data(3)[:Variable("a", 1, 10).bind(5)].sum())


def symbolic_window_overflow() -> list[UOp]:
  i = Variable("i", 0, 9).bind(3)
  return _asts(_data(10).shrink(((i, i + 4),)).sum())


def padded() -> list[UOp]:
  return _asts(_data(5).pad(((2, 3),)).contiguous())


def gathered() -> list[UOp]:
  idx = Tensor.randint(5, low=0, high=8).cast(dtypes.int32).realize()
  return _asts(_data(8)[idx].contiguous())


def _gated_loads(sink: UOp) -> list[UOp]: return [u for u in sink.toposort() if u.op is Ops.LOAD and len(u.src) == 3]


def _plus_one(c: UOp) -> UOp | None:
  """A (casted) constant, one larger, spelled the way the lowered kernel spells its constants; None for anything else."""
  if c.op is Ops.CONST: return c.replace(arg=c.arg + 1)
  if c.op is Ops.CAST and c.src[0].op is Ops.CONST: return c.replace(src=(c.src[0].replace(arg=c.src[0].arg + 1),))
  return None


def widen_pad_mask(sink: UOp) -> UOp:
  """Every gated load's upper bound `x < c` becomes `x < c+1`: a pad whose valid-mask lets one element past the data through."""
  subs = {c: c.replace(src=(c.src[0], bigger)) for ld in _gated_loads(sink) for c in ld.src[2].toposort()
          if c.op is Ops.CMPLT and (bigger := _plus_one(c.src[1])) is not None}
  return sink.substitute(subs)


def drop_gather_gate(sink: UOp) -> UOp:
  """Every gated load loses its gate: a gather that trusts its indices."""
  return sink.substitute({ld: ld.replace(src=ld.src[:1]) for ld in _gated_loads(sink)})


@dataclass(frozen=True)
class OOBCase:
  name: str
  what: str
  build: Callable[[], list[UOp]]
  corrupt: Callable[[UOp], UOp] | None = None


CORPUS: tuple[OOBCase, ...] = (
  OOBCase("shrink_past_end", "x[:a] of a 3-element x, with a in [1, 10]: the sum reads up to index 9 of 3", shrink_past_end),
  OOBCase("symbolic_window_overflow", "x[i:i+4] of a 10-element x, with i in [0, 9]: the window reads up to index 12 of 10",
          symbolic_window_overflow),
  OOBCase("bad_pad", "x.pad((2, 3)) of a 5-element x whose valid-mask admits index 5 of 5", padded, widen_pad_mask),
  OOBCase("unchecked_gather", "x[idx] with the index bounds gate removed: any int32 index is read", gathered, drop_gather_gate),
)


def run_case(case: OOBCase, target: str, corrupted: bool = True) -> TargetReport:
  """Validate one case for one target; corrupted=False checks the clean twin of a planted-bug case."""
  return validate_kernels(case.build(), target, corrupt=case.corrupt if corrupted else None)


def run_corpus(targets: tuple[str, ...] = TARGETS) -> dict[tuple[str, str], TargetReport]:
  """Every case on every target: (case name, target) -> its report. All must have failures."""
  return {(c.name, t): run_case(c, t) for c in CORPUS for t in targets}
