import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from tinybounty.runner import run


def test_cuda_device_arguments_are_redirected():
  with run.on_device("cpu"):
    a = torch.randperm(5, device="cuda")
    b = torch.ones(2).to("cuda")
    c = torch.zeros(2, device=torch.device("cuda", 0))
    m = torch.nn.Linear(2, 2).to("cuda")
  assert {a.device.type, b.device.type, c.device.type, m.weight.device.type} == {"cpu"}
  assert sorted(a.tolist()) == list(range(5))


def test_host_rng_draws_the_same_numbers_on_every_device(tiny):
  draws = {}
  for dev in ("cpu", "tiny"):
    with run.on_device(dev, host_rng=3):
      x = torch.zeros(4, 3, device="cuda")
      draws[dev] = [torch.randperm(7, device="cuda"), torch.rand_like(x), torch.empty(6, dtype=torch.long, device="cuda").random_(0, 5)]
    assert all(t.device.type == dev for t in draws[dev])
  for a, b in zip(draws["cpu"], draws["tiny"]): assert torch.equal(a, b.cpu())


def test_cuda_timing_calls_time_the_target_device():
  stock = torch.cuda.Event
  with run.on_device("cpu"):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    torch.ones(100, 100) @ torch.ones(100, 100)
    end.record()
    assert 0 <= start.elapsed_time(end) < 10_000
  assert torch.cuda.Event is stock  # restored on exit


def test_torchvision_standin_has_the_two_names_and_nothing_else():
  mods = run.torchvision_standin()
  tr = mods["torchvision.transforms"]
  img = tr.Compose([tr.ToTensor()])(np.full((2, 3, 3), 255, np.uint8))
  assert img.shape == (3, 2, 3) and float(img.max()) == 1.0
  with pytest.raises(ImportError, match="no torchvision.datasets"): mods["torchvision"].datasets


def test_data_cache_has_the_scripts_format(tmp_path):
  path = run.write_data_cache(tmp_path / "data.pt", n_train=40, n_test=10)
  d = torch.load(path)
  assert d["train"]["images"].shape == (40, 3, 32, 32) and d["train"]["images"].dtype == torch.float16
  assert d["eval"]["targets"].shape == (10, 10) and torch.equal(d["eval"]["targets"].sum(1), torch.ones(10, dtype=torch.float16))
  std, mean = torch.std_mean(d["train"]["images"].float(), dim=(0, 2, 3))
  assert torch.allclose(mean, torch.zeros(3), atol=1e-2) and torch.allclose(std, torch.ones(3), atol=1e-2)


SCRIPT = pathlib.Path(run.__file__).parent / "scripts" / "cuda_minimal.py"


@pytest.mark.parametrize("device", ["cpu", "tiny"])
def test_unmodified_cuda_script_runs_and_matches_cpu(tmp_path, monkeypatch, device, tiny):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setitem(sys.modules, "torchvision", None)  # as on a machine without torchvision
  assert run.find_data_location(SCRIPT) == "cuda_minimal_data.pt"
  run.write_data_cache("cuda_minimal_data.pt", n_train=32, n_test=8)
  runs = []  # the CPU reference first, then the device under test (a second, separate run when that is the CPU too)
  for dev in ("cpu", device):
    rec = run.RecordLosses()
    with rec: g = run.run_script(SCRIPT, dev, host_rng=0)
    runs.append(rec.losses())
    assert g["net"][1].weight.device.type == dev and g["elapsed"] >= 0
  reference, got = runs
  assert len(reference) == len(got) == 3
  if device == "cpu": assert got == reference  # the same script, seed and threads on the same device: the same losses, bit for bit
  else: assert np.allclose(got, reference, rtol=1e-4)


def test_runner_leaves_pytorchs_accelerator_alone():
  """A CUDA reference run must not register the tiny device: that makes it torch's accelerator and breaks CUDA autograd."""
  code = "import torch, tinybounty.runner.compare, tinybounty.runner.run; print(torch._C._get_privateuse1_backend_name())"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
  assert out.strip() == "privateuseone"
