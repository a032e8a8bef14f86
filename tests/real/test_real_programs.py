"""Real programs on the tiny device vs PyTorch CPU, both against float64 (tinybounty/runner/real_programs): per tensor
and per loss, tiny's float32 error is at most 10x PyTorch CPU float32's own, or 1e-5 of the tensor's largest value, or
per element 10x the float64 runs' movement when every module output and gradient is nudged by one roundoff (measure.py).

CI runs one program on each CPU renderer (DEV=CPU, clang; DEV=CPU:LLVM), `--long` every pair, each in a child
interpreter because tinygrad picks its device at import; bench/real_programs.py runs every program and writes the table
in docs/benchmarks.md.
"""
import pytest

from tinybounty.runner.real_programs import run_in_child

RENDERERS = ["CPU", "CPU:LLVM"]
FAST = ["nanogpt", "llama"]  # nanoGPT: accumulation, clipping, tied weights; a transformers decoder with generate


def _failures(report: dict) -> list[str]:
  if "error" in report: return [report["error"]]
  bad = [f"{c['name']}: tiny {c['tiny']:.3g} vs torch {c['torch']:.3g} (scale {c['scale']:.3g}, sensitivity {c['sensitivity']:.3g}, "
         f"{c['ratio']:.3g}x its bound)" for c in report["items"] if not c["ok"]]
  if report["facts"].get("generate_equal") is False: bad.append("greedy generate differs from the CPU's")
  return bad


# CI runs one program per renderer (a child each, minutes on 2 cores); --long runs every pair
CI_PAIRS = {("CPU", "llama"), ("CPU:LLVM", "nanogpt")}
PAIRS = [pytest.param(r, p, marks=() if (r, p) in CI_PAIRS else pytest.mark.long, id=f"{r}-{p}") for r in RENDERERS for p in FAST]


@pytest.mark.parametrize("renderer,program", PAIRS)
def test_program_matches_pytorch_within_its_own_float32_error(renderer, program):
  pytest.importorskip("transformers")
  (report,) = run_in_child([program], renderer)
  assert not (bad := _failures(report)), "\n".join(bad[:20])
