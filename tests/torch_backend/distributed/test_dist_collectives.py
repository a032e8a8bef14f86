"""The tiny process group's collectives, two ranks under torchrun, against values computed on the CPU (selftest.py)."""
import ast
import re

import pytest

from tinybounty.torch_backend.distributed.launch import torchrun


@pytest.mark.parametrize("backend", ["cpu:gloo,tiny:tiny"])
def test_every_collective_on_two_ranks(backend):
  run = torchrun("tinybounty.torch_backend.distributed.selftest", 2, [], timeout=300)
  assert run.returncode == 0, run.output[-3000:]
  # the ranks share one output: a line may hold both; the dict may hold one nested dict (capture's reasons, capture.py)
  ok = re.findall(r"rank (\d): collectives ok (\{(?:[^{}]|\{[^{}]*\})*\})", run.output)
  assert sorted(r for r, _ in ok) == ["0", "1"], run.output[-3000:]
  for _, counts in ok:
    counts = ast.literal_eval(counts)  # the dict stats() printed
    assert counts["collectives"] >= 15 and counts["collective_d2h_bytes"] > 0 and counts["collective_h2d_bytes"] > 0
