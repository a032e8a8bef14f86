"""torch.autocast("tiny") against torch.autocast("cpu"): the same output dtypes and values within the autocast dtype's
rounding, gradients back in float32; GradScaler("tiny") against GradScaler("cpu"); install()/uninstall() reversible."""
import pytest
import torch
import torch.nn.functional as F

import tinybounty.torch_backend  # noqa: F401 - registers the device (and installs amp)
from tinybounty.torch_backend import amp

DTYPES = [torch.float16, torch.bfloat16]
g = torch.Generator().manual_seed(0)
r = lambda *s: torch.randn(*s, generator=g)
low = lambda t: t.to(torch.get_autocast_dtype(t.device.type))  # the active autocast dtype of t's device
CASES = {  # op -> (fn, CPU float32 arguments); mixed-dtype cases hand one half tensor in
  "linear": (F.linear, (r(3, 8), r(4, 8), r(4))),
  "matmul": (torch.matmul, (r(2, 3, 8), r(8, 5))),
  "bmm": (torch.bmm, (r(2, 3, 8), r(2, 8, 5))),
  "addmm": (torch.addmm, (r(3, 5), r(3, 8), r(8, 5))),
  "baddbmm": (torch.baddbmm, (r(2, 3, 5), r(2, 3, 8), r(2, 8, 5))),
  "conv2d": (lambda x, w: F.conv2d(x, w, padding=1), (r(1, 3, 6, 6), r(4, 3, 3, 3))),
  "conv1d": (F.conv1d, (r(1, 3, 9), r(4, 3, 3))),
  "sdpa": (F.scaled_dot_product_attention, (r(1, 2, 4, 8), r(1, 2, 4, 8), r(1, 2, 4, 8))),
  "prelu": (F.prelu, (r(2, 3, 4), r(3))),
  "cat mixed": (lambda a, b: torch.cat([low(a), b]), (r(2, 3), r(2, 3))),
  "stack low": (lambda a, b: torch.stack([low(a), low(b)]), (r(2, 3), r(2, 3))),
  "mse_loss of half": (lambda a, b: F.mse_loss(a.half(), b.half()), (r(4, 3), r(4, 3))),
  "cross_entropy of half": (lambda a, y: F.cross_entropy(a.half(), y.argmax(1)), (r(4, 5), r(4, 5))),
  "nll_loss of bf16": (lambda a, y: F.nll_loss(a.bfloat16().log_softmax(1), y.argmax(1)), (r(4, 5), r(4, 5))),
  "bce_with_logits of half": (lambda a, b: F.binary_cross_entropy_with_logits(a.half(), b.sigmoid().half()), (r(6), r(6))),
  "prod of half": (lambda a: torch.prod(a.half()), (r(5),)),
  "layer_norm (no autocast rule)": (lambda a, w: F.layer_norm(a.half(), (4,), w.half()), (r(3, 4), r(4))),
  "softmax (no autocast rule)": (lambda a: torch.softmax(a, -1), (r(3, 4),)),
  "float64 stays": (F.linear, (r(3, 8).double(), r(4, 8).double())),
}


def _rounding(dtype: torch.dtype) -> float: return {torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float16", "bfloat16"])
@pytest.mark.parametrize("case", list(CASES))
def test_tiny_autocast_gives_the_cpus_dtypes_and_values(case, dtype):
  fn, args = CASES[case]
  with torch.autocast("cpu", dtype=dtype): want = fn(*args)
  with torch.autocast("tiny", dtype=dtype): got = fn(*(a.to("tiny") for a in args))
  assert got.dtype == want.dtype, f"{case}: tiny gives {got.dtype}, the CPU {want.dtype}"
  # both round to the autocast dtype from float32 work: a few of its units apart at most, relative to the result's scale
  scale = want.double().abs().max().item() or 1.0
  assert (got.cpu().double() - want.double()).abs().max().item() <= 4 * _rounding(dtype) * scale, case


def test_promote_refuses_the_other_half_type_as_the_cpu_does():
  a, b = torch.randn(2, 3), torch.randn(2, 3)
  for dev in ("cpu", "tiny"):
    with pytest.raises(RuntimeError), torch.autocast(dev, dtype=torch.bfloat16): torch.cat([a.half().to(dev), b.to(dev)])


def test_every_autocast_op_of_the_cpu_has_a_tiny_kernel_and_the_lists_name_real_ops():
  ops = amp.cpu_autocast_ops()
  assert amp.LOWER <= ops and amp.PROMOTE <= ops, (amp.LOWER - ops, amp.PROMOTE - ops)
  missing = [n for n in ops if not torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{n}", amp.KEY)]
  assert not missing


@pytest.mark.parametrize("dtype", DTYPES, ids=["float16", "bfloat16"])
def test_training_step_under_autocast_matches_the_cpu(dtype):
  torch.manual_seed(0)
  cpu = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
  tiny = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4)).to("tiny")
  tiny.load_state_dict(cpu.state_dict())
  x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
  for m, dev in ((cpu, "cpu"), (tiny, "tiny")):
    with torch.autocast(dev, dtype=dtype): loss = F.cross_entropy(m(x.to(dev)), y.to(dev))
    assert loss.dtype == torch.float32
    loss.backward()
  for (name, pc), pt in zip(cpu.named_parameters(), tiny.parameters()):
    assert pt.grad.dtype == torch.float32
    scale = pc.grad.abs().max().item()
    assert (pt.grad.cpu() - pc.grad).abs().max().item() <= 8 * _rounding(dtype) * scale, name


def test_uninstall_leaves_autocast_without_kernels_and_install_restores_them():
  x, w = torch.randn(2, 8).to("tiny"), torch.randn(4, 8).to("tiny")
  try:
    amp.uninstall()
    assert not amp.installed()
    with pytest.raises(NotImplementedError, match="Autocast"), torch.autocast("tiny", dtype=torch.float16): F.linear(x, w)
  finally:
    amp.install()
  with torch.autocast("tiny", dtype=torch.float16): assert F.linear(x, w).dtype == torch.float16


def _scaler_run(dev: str, poison: set[int]) -> list[tuple[float, float]]:
  """Five fp16 autocast SGD steps under GradScaler (growth every 2 clean steps); steps in `poison` get an inf gradient."""
  torch.manual_seed(0)
  m = torch.nn.Linear(8, 4).to(dev)
  opt, scaler = torch.optim.SGD(m.parameters(), lr=0.1), torch.amp.GradScaler(dev, init_scale=2.0 ** 10, growth_interval=2)
  x = torch.randn(4, 8)
  seen = []
  for step in range(5):
    opt.zero_grad()
    with torch.autocast(dev, dtype=torch.float16): loss = m(x.to(dev)).float().pow(2).mean()
    scaler.scale(loss * (float("inf") if step in poison else 1.0)).backward()
    scaler.step(opt)
    scaler.update()
    seen.append((scaler.get_scale(), m.weight.detach().abs().sum().item()))
  return seen


@pytest.mark.parametrize("poison", [set(), {1, 3}], ids=["clean", "inf at steps 1 and 3"])
def test_grad_scaler_skips_and_scales_as_on_the_cpu(poison):
  want, got = _scaler_run("cpu", poison), _scaler_run("tiny", poison)
  assert [s for s, _ in got] == [s for s, _ in want]  # the same backoffs and growths
  assert all(abs(a - b) <= 1e-3 * abs(b) for (_, a), (_, b) in zip(got, want)), (got, want)  # skipped steps skipped
