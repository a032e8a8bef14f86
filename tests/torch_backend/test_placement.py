"""Every tinygrad kernel of the tiny device runs on the device DEV names, never on tinygrad's CPU device.

tinygrad 0.14's constants have no device; realizing or reading one goes through its CPU device, which a GPU machine
may not even be able to compile for. Here DEV=PYTHON (tinygrad's emulator, no compiler needed) stands in for a GPU,
with tinygrad's CPU device made to fail on open, in a fresh process."""
import os
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
  import tinygrad.runtime.ops_cpu as ops_cpu
  def refuse(self, *args, **kwargs): raise RuntimeError("tinygrad's CPU device was opened")
  ops_cpu.CPUDevice.__init__ = refuse
  import io, torch
  import tinybounty.torch_backend
  x = torch.randn(4, 3, device="tiny", requires_grad=True)
  (x * 2).sum().backward()                                   # the gradient seed is a constant
  assert torch.equal(x.grad.cpu(), torch.full((4, 3), 2.0))
  assert torch.ones_like(x).cpu().sum().item() == 12          # a constant read back
  z = torch.zeros(5, device="tiny"); z[1:3] = 7               # a constant written through a view
  assert z.cpu().tolist() == [0, 7, 7, 0, 0]
  assert torch.topk(x, 0).values.shape == (4, 0)
  assert torch.masked_select(x, torch.zeros(4, 3, dtype=torch.bool, device="tiny")).numel() == 0
  buf = io.BytesIO(); torch.save({"w": torch.full((2,), 3.0, device="tiny")}, buf); buf.seek(0)
  assert torch.load(buf)["w"].cpu().tolist() == [3.0, 3.0]
  print("ok")
""")


def test_constants_never_touch_tinygrads_cpu_device():
  env = {**os.environ, "DEV": "PYTHON", "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
  r = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
