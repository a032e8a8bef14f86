"""What a validation run found: per target, the kernels checked, the proofs, and each failure with its index expression."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tinybounty.validate.z3index import IndexCheck


@dataclass
class TargetReport:
  """One renderer's results over a whole schedule."""
  target: str
  kernels: int = 0
  checks: list[IndexCheck] = field(default_factory=list)
  errors: list[str] = field(default_factory=list)  # kernels that failed to lower or render, with the error
  seconds: float = 0.0

  def count(self, verdict: str) -> int: return sum(c.verdict == verdict for c in self.checks)
  @property
  def failures(self) -> list[IndexCheck]: return [c for c in self.checks if c.failed]
  @property
  def ok(self) -> bool: return not self.failures and not self.errors


@dataclass
class ValidationReport:
  """A whole run: one TargetReport per renderer, plus how long it took to run the schedule on the CPU (if it ran)."""
  name: str
  targets: list[TargetReport] = field(default_factory=list)
  run_seconds: float | None = None

  @property
  def ok(self) -> bool: return all(t.ok for t in self.targets)
  @property
  def failures(self) -> list[IndexCheck]: return [f for t in self.targets for f in t.failures]

  def to_json(self) -> dict:
    return {"name": self.name, "ok": self.ok, "run_seconds": self.run_seconds,
            "targets": [{**asdict(t), "ok": t.ok, "proofs": t.count("proof"), "bounds": t.count("bounds")} for t in self.targets]}

  def summary(self) -> str:
    """A few lines a person reads: per target the counts, then every failure with its expression and counterexample."""
    lines = [f"{self.name}: {'OK' if self.ok else 'OUT OF BOUNDS'}" + (f" (ran on CPU in {self.run_seconds:.2f} s)" if self.run_seconds else "")]
    for t in self.targets:
      lines.append(f"  {t.target:5s} {t.kernels:4d} kernels  {len(t.checks):5d} accesses  {t.count('bounds'):5d} by bounds  "
                   f"{t.count('proof'):4d} z3 proofs  {t.count('unmodelled'):3d} unmodelled  {len(t.failures):3d} failures  "
                   f"{len(t.errors):2d} errors  {t.seconds:6.2f} s")
      for f in t.failures:
        lines.append(f"    {f.verdict.upper()} {f.kernel}: {f.op} at [{f.expr}] of {f.buffer_size} when {f.gate}; {f.counterexample}")
      lines += [f"    ERROR {e}" for e in t.errors]
    return "\n".join(lines)
