"""Validate a model's whole schedule: every kernel lowered for each target and every memory access proven in bounds."""
from __future__ import annotations

import time
from typing import Callable, Iterable, Sequence

from tinygrad import Tensor
from tinygrad.helpers import ansistrip, tqdm
from tinygrad.uop.ops import Ops, UOp

from tinybounty.validate.report import TargetReport, ValidationReport
from tinybounty.validate.targets import TARGETS, lower, render, renderer
from tinybounty.validate.z3index import check_sink


def kernel_asts(linear: UOp) -> list[UOp]:
  """The distinct kernel ASTs (SINKs) of a schedule, in order; copies and other non-kernel calls are skipped."""
  seen: dict[bytes, UOp] = {}
  for call in linear.src:
    if call.op is Ops.CALL and call.src[0].op is Ops.SINK: seen.setdefault(call.src[0].key, call.src[0])
  return list(seen.values())


def validate_kernels(asts: Sequence[UOp], target: str, progress: bool = False, corrupt: Callable[[UOp], UOp] | None = None) -> TargetReport:
  """Lower (and, for GPU targets, render) each kernel for one target and check every access with z3.

  `corrupt` rewrites each lowered kernel before the check (the OOB corpus uses it to plant a bug a renderer could make)."""
  rep, ren, st = TargetReport(target), renderer(target), time.perf_counter()
  for ast in tqdm(asts, desc=f"validate {target}", disable=not progress):
    try:
      sink = lower(ast, ren)
      if corrupt is not None: sink = corrupt(sink)
      if target != "CPU": render(sink, ren)
    except Exception as e:  # noqa: BLE001 - a kernel that cannot be lowered is a finding, the rest still get checked
      rep.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
      continue
    rep.kernels += 1
    rep.checks += check_sink(ansistrip(sink.arg.name), sink)
  rep.seconds = time.perf_counter() - st
  return rep


def validate(outputs: Iterable[Tensor], name: str = "model", targets: Sequence[str] = TARGETS, run: bool = True,
             progress: bool = False) -> ValidationReport:
  """Schedule `outputs` (forward, backward and optimizer updates alike) and validate every kernel for each target.

  With run=True and no failure the schedule then runs on the CPU, so the tensors hold their values; a schedule with an
  out-of-bounds access is never run (its tensors stay scheduled but unrealized, as with run=False)."""
  from tinygrad.engine.realize import run_linear
  outs = [t for t in outputs if not t.uop.is_virtual and not t.uop.has_buffer_identity()]
  report = ValidationReport(name)
  if not outs: return report
  linear, var_vals = Tensor.linear_with_vars(*outs)
  asts = kernel_asts(linear)
  report.targets = [validate_kernels(asts, t, progress) for t in targets]
  if run and report.ok:
    st = time.perf_counter()
    run_linear(linear, var_vals)
    report.run_seconds = time.perf_counter() - st
  return report
