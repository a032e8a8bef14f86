import pytest
import torch


@pytest.fixture(scope="session")
def tiny():
  import tinybounty.torch_backend.compile  # noqa: F401 - the tiny device and the "tiny" backend
  return torch.device("tiny")


@pytest.fixture
def fresh_dynamo():
  import tinybounty.torch_backend.compile as tc
  torch._dynamo.reset()
  tc.reset_compile_stats()
  yield tc
  torch._dynamo.reset()
