import io

import pytest
import torch

import tinybounty.torch_backend  # noqa: F401  registers the device
from tinybounty.torch_backend import serialization


def _state() -> dict[str, torch.Tensor]:
  torch.manual_seed(0)
  base = torch.randn(4, 6)
  t = base.to("tiny")
  return {"base": t, "view": t[1:3, ::2], "transposed": t.t(), "expanded": t[0].expand(3, 6), "scalar": t[1, 2], "empty": t[:0],
          "half": t.half(), "ints": torch.arange(10).to("tiny")[::3], "param": torch.nn.Parameter(base.to("tiny"))}


def _roundtrip(obj: object, **load_kwargs: object) -> object:
  buf = io.BytesIO()
  torch.save(obj, buf)
  buf.seek(0)
  return torch.load(buf, **load_kwargs)  # weights_only=True (the default): the file needs no unsafe globals


@pytest.mark.parametrize("map_location,device", [(None, "tiny"), ("cpu", "cpu"), ("tiny", "tiny"), ({"tiny:0": "cpu"}, "cpu")])
def test_torch_save_load_views_and_noncontiguous(map_location, device):
  state = _state()
  loaded = _roundtrip(state, map_location=map_location)
  assert loaded.keys() == state.keys()
  for k, v in loaded.items():
    ref = state[k].detach().cpu()
    assert v.device.type == device and v.dtype == ref.dtype and v.shape == ref.shape, k
    assert torch.equal(v.cpu(), ref), k
  assert isinstance(loaded["param"], torch.nn.Parameter) and loaded["param"].requires_grad


def test_cpu_checkpoint_loads_onto_tiny():
  torch.manual_seed(0)
  x = torch.randn(4, 6)
  state = {"base": x, "view": x[1:3, ::2], "transposed": x.t(), "half": x.half(), "mask": x > 0, "ints": torch.arange(10)[::3],
           "scalar": x[1, 2], "empty": x[:0], "param": torch.nn.Parameter(x.clone())}
  loaded = _roundtrip(state, map_location="tiny")
  for k, v in loaded.items():
    ref = state[k].detach()
    assert v.device.type == "tiny" and v.dtype == ref.dtype and v.shape == ref.shape and v.stride() == ref.stride(), k
    assert torch.equal(v.cpu(), ref), k
  assert isinstance(loaded["param"], torch.nn.Parameter) and loaded["param"].requires_grad
  loaded["view"].mul_(2)  # the loaded tensors are writable device tensors
  assert torch.equal(loaded["view"].cpu(), state["view"] * 2)


def test_file_is_the_size_of_the_cpu_one():
  x = torch.randn(64, 64)
  sizes = []
  for t in (x, x.to("tiny")):
    buf = io.BytesIO()
    torch.save(t, buf)
    sizes.append(len(buf.getvalue()))
  assert abs(sizes[1] - sizes[0]) < 0.01 * sizes[0]


def test_set_onto_a_cpu_storage_is_refused():
  with pytest.raises(RuntimeError, match="set_ needs a storage on tiny"):
    torch.empty(0, device="tiny").set_(torch.ones(3).untyped_storage())


def test_module_state_dict_through_torch_save():
  torch.manual_seed(0)
  ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
  ref(torch.randn(8, 3))  # BatchNorm running stats differ from their initial values
  ref.eval()
  src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).to("tiny").eval()
  src.load_state_dict(ref.state_dict())
  x = torch.randn(5, 3)
  for sd, map_location in ((src.state_dict(), "tiny"), (src.state_dict(), "cpu"), (ref.state_dict(), "tiny")):
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).to("tiny").eval()
    dst.load_state_dict(_roundtrip(sd, map_location=map_location))
    assert all(v.device.type == "tiny" for v in dst.state_dict().values())
    assert torch.allclose(dst(x.to("tiny")).cpu(), ref(x), atol=1e-5)


def test_uninstall_restores_stock_pickling():
  t = torch.ones(2).to("tiny")
  serialization.uninstall()
  try:
    assert torch.Tensor._reduce_ex_internal is not serialization._reduce_ex_internal
    assert serialization._PACKAGE not in torch.serialization._package_registry
    with pytest.raises(RuntimeError):  # stock PyTorch copies the storage, whose size it sees as 0 bytes
      _roundtrip(t)
    assert torch.equal(_roundtrip(torch.ones(2)), torch.ones(2))
  finally:
    serialization.install()
  assert serialization.installed() and torch.equal(_roundtrip(t, map_location="cpu"), torch.ones(2))
