"""Capture and replay of eager steps (capture.py): every replayed step checked against the CPU and the uncaptured run.

Guards: a step that changes a shape, dtype, stride, view, in-place target, Python branch, scalar, the batch or the
parameter set between steps must recapture (or run uncaptured), never replay wrong kernels.
"""
import copy
import os
import subprocess
import sys

import pytest
import torch
from tinygrad.helpers import GlobalCounters
from torch import nn

import tinybounty.torch_backend as tb
from tinybounty.torch_backend import capture, replay

# float32 steps through different kernel fusions: PyTorch's own float32 error against float64 on these sizes is ~1e-6
TOL = {"rtol": 2e-5, "atol": 2e-6}


@pytest.fixture(autouse=True)
def fresh_capture():
  was, warmup = capture.enabled(), capture.WARMUP[0]
  capture.reset()
  capture.set_enabled(True, warmup=0)  # these tests look at capture itself: a step is recorded from its second run
  yield
  capture.set_enabled(was, warmup)  # later test files see the device as they would alone
  tb.reset_stats()


def mlp(width: int = 16, depth: int = 3) -> nn.Module:
  torch.manual_seed(0)
  return nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())])


def train(model: nn.Module, opt: torch.optim.Optimizer, batches: list, accumulate: int = 1, item_mid_step: bool = False) -> list[float]:
  losses = []
  for x, y in batches:
    opt.zero_grad()
    for _ in range(accumulate):
      loss = ((model(x) - y) ** 2).mean()
      if item_mid_step: losses.append(loss.item())
      loss.backward()
    opt.step()
    losses.append(loss.item())
  return losses


def batches(n: int, batch: int = 4, width: int = 16, dev: str = "cpu") -> list:
  g = torch.Generator().manual_seed(1)
  return [(torch.randn(batch, width, generator=g).to(dev), torch.randn(batch, width, generator=g).to(dev)) for _ in range(n)]


OPTS = {
  "adamw_foreach": lambda p: torch.optim.AdamW(p, lr=1e-2),
  "adam_fused": lambda p: torch.optim.Adam(p, lr=1e-2, fused=True),
  "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False),
}


@pytest.mark.parametrize("opt", list(OPTS))
def test_training_replays_and_matches_cpu_and_uncaptured(opt):
  model = mlp()
  ref_model = copy.deepcopy(model)
  ref = train(ref_model, OPTS[opt](ref_model.parameters()), batches(8))
  runs = {}
  for on in (False, True):
    capture.set_enabled(on)
    tb.reset_stats()
    m = copy.deepcopy(model).to("tiny")
    runs[on] = (train(m, OPTS[opt](m.parameters()), batches(8, dev="tiny")), [p.detach().cpu() for p in m.parameters()])
    s = tb.stats()
    assert (s["replays"] >= 3) if on else (s.get("captured", 0) == s.get("replays", 0) == 0), s
  torch.testing.assert_close(torch.tensor(runs[True][0]), torch.tensor(ref), **TOL)
  torch.testing.assert_close(torch.tensor(runs[True][0]), torch.tensor(runs[False][0]), **TOL)
  for p, q, r in zip(runs[True][1], runs[False][1], ref_model.parameters()):
    torch.testing.assert_close(p, q, **TOL)
    torch.testing.assert_close(p, r.detach(), **TOL)


def test_gradient_accumulation_and_item_mid_step():
  model = mlp()
  ref_model = copy.deepcopy(model)
  ref = train(ref_model, torch.optim.AdamW(ref_model.parameters(), lr=1e-2), batches(6), accumulate=2, item_mid_step=True)
  m = copy.deepcopy(model).to("tiny")
  got = train(m, torch.optim.AdamW(m.parameters(), lr=1e-2), batches(6, dev="tiny"), accumulate=2, item_mid_step=True)
  torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), **TOL)
  assert tb.stats()["replays"] >= 3


def test_ops_with_missing_outputs_are_captured():
  """convolution_backward returns None for gradients not asked for (a first layer's input, no bias, as hlb-CIFAR10's
  convolutions): such steps must still replay, channels_last included, and match the CPU. Adaptive max pooling's
  window mask is built on the device (a host list would be a copy inside the step, which is never captured)."""
  torch.manual_seed(0)
  model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, bias=False),
                        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 2))
  g = torch.Generator().manual_seed(1)
  data = [(torch.randn(2, 3, 6, 6, generator=g), torch.randn(2, 2, generator=g)) for _ in range(8)]
  runs = []
  for dev in ("cpu", "tiny"):
    m = copy.deepcopy(model).to(dev, memory_format=torch.channels_last)
    opt, on_dev = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), [(x.to(dev), y.to(dev)) for x, y in data]
    losses = train(m, opt, on_dev[:5])  # momentum buffers appear in step 1: steps 2-4 settle the captures
    steady = capture.stats()
    runs.append(losses + train(m, opt, on_dev[5:]))
  torch.testing.assert_close(torch.tensor(runs[1]), torch.tensor(runs[0]), **TOL)
  end = capture.stats()
  # the last three steps replay whole: nothing of them ran eagerly
  assert end["lowered"] == steady["lowered"] and end["replays"] - steady["replays"] >= 3, end


def test_reads_of_a_moving_slice_are_never_recorded():
  """hlb-CIFAR10's loader takes each batch as data.index_select(0, perm[i*bs:(i+1)*bs]). device.py copies such a moving
  slice out by a kernel as it is read (its offset a variable); recorded into a step, that copy ran while the step was
  built, and every later step of main.py ran uncaptured. An op reading one runs eagerly even once its outputs are known."""
  x, y, perm = torch.randn(24, 5).to("tiny"), torch.randn(24, 3).to("tiny"), torch.randperm(24).to("tiny")
  for _ in range(3):
    # inputs and targets: the second read finds the slice already copied out, so no kernel ran in its first, eager run
    xb, yb = x.index_select(0, perm[4:8]), y.index_select(0, perm[4:8])
    assert yb.untyped_storage()._tiny.slot < 0  # ran eagerly: not a placeholder of the step
    torch.testing.assert_close((xb.sum(1) + yb.sum(1)).cpu(), x.cpu()[perm.cpu()[4:8]].sum(1) + y.cpu()[perm.cpu()[4:8]].sum(1))


def test_empty_tensors_in_a_step():
  """tinygrad allocates no buffer for an empty tensor: a step making one (BatchNorm's saved statistics in eval, as the
  fast paths and state_dict round trips run) replays with it as a constant; a step reading one runs uncaptured."""
  torch.manual_seed(0)
  bn, x, e = nn.BatchNorm1d(4).eval(), torch.randn(5, 4), torch.randn(0, 3)
  bnt, xt, et = copy.deepcopy(bn).to("tiny"), x.to("tiny"), e.to("tiny")
  with torch.no_grad():
    for _ in range(7):  # learning the decomposition's ops takes the first steps
      y = torch.ops.aten.native_batch_norm(xt, bnt.weight, bnt.bias, bnt.running_mean, bnt.running_var, False, 0.1, 1e-5)
      torch.testing.assert_close(y[0].cpu(), bn(x), **TOL)
      assert y[1].shape == y[2].shape == (0,)
  assert capture.stats()["replays"] >= 2, capture.stats()
  w = torch.ones(4).to("tiny")
  for i in range(4):
    z = (et * 2 + 1, w * i)
    assert z[0].cpu().shape == (0, 3) and z[1].cpu().tolist() == [float(i)] * 4


def _step(x: torch.Tensor, w: torch.Tensor, variant: str, i: int) -> torch.Tensor:
  """One small step whose graph the variant changes on some steps; returns the value read back."""
  if variant == "shape": x = x[: 2 + i % 2]
  if variant == "dtype" and i % 2: x = x.double().float() + 0 if i % 4 == 1 else x.half().float()
  if variant == "stride" and i % 2: x = x.t().contiguous().t() if x.shape[0] == x.shape[1] else x
  if variant == "view": x = x[:, i % 3:]  # another storage offset and size
  y = x @ w[: x.shape[1]] if variant == "view" else x @ w
  if variant == "branch" and i % 2: y = y.relu()
  scale = 0.5 + i * 0.25 if variant == "scalar" else 0.5
  y = y * scale
  if variant == "inplace_target":
    target = w if i % 2 else x
    target.add_(1.0)
  if variant == "write_view":
    w[:, i % 2].mul_(0.5)  # a write through a view, another column each step
  w.sub_(0.01 * y.sum())
  return y.sum()


@pytest.mark.parametrize("variant", ["shape", "dtype", "stride", "view", "branch", "scalar", "inplace_target", "write_view"])
def test_guards_every_step_matches_cpu(variant):
  torch.manual_seed(0)
  x0, w0 = torch.randn(4, 4), torch.randn(4, 4)
  # the dtype variant rounds x through float16 on some steps: the device's and the CPU's roundings may differ by an ulp of half
  tol = {"rtol": 2 ** -10, "atol": 2 ** -10} if variant == "dtype" else TOL
  runs = {}
  for on in (False, True):
    capture.set_enabled(on)
    tb.reset_stats()
    xc, wc, xt, wt = x0.clone(), w0.clone(), x0.to("tiny"), w0.to("tiny")
    runs[on] = []
    for i in range(8):
      want, got = _step(xc, wc, variant, i).item(), _step(xt, wt, variant, i).item()
      torch.testing.assert_close(torch.tensor(got), torch.tensor(want), **tol, msg=f"{variant} step {i}")
      torch.testing.assert_close(wt.cpu(), wc, **tol, msg=f"{variant} step {i}")
      runs[on].append((got, wt.cpu()))
  s = tb.stats()
  # the steps went through capture (write_view's carry a host copy, its view write's offset, and run uncaptured)
  assert s["replays"] + s["captured"] + s["uncaptured"] > 0, s
  for (a, wa), (b, wb) in zip(runs[True], runs[False]):  # captured and uncaptured: one schedule per step or several
    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), **tol)
    torch.testing.assert_close(wa, wb, **tol)


def test_batch_and_parameter_set_changes():
  model = mlp()
  ref_model = copy.deepcopy(model)
  m = copy.deepcopy(model).to("tiny")
  opts = [torch.optim.SGD(list(ref_model.parameters())[:2], lr=0.1), torch.optim.SGD(m.parameters(), lr=0.1)]
  opts_t = [torch.optim.SGD(list(m.parameters())[:2], lr=0.1), torch.optim.SGD(m.parameters(), lr=0.1)]
  opts_c = [opts[0], torch.optim.SGD(ref_model.parameters(), lr=0.1)]
  for i, (bc, bt) in enumerate(zip(batches(16, batch=4), batches(16, batch=4, dev="tiny"))):
    if i >= 8: bc, bt = (bc[0][:3], bc[1][:3]), (bt[0][:3], bt[1][:3])  # another batch size
    k = (i // 2) % 2  # every two steps: another parameter set updated
    got = train(m, opts_t[k], [bt])
    want = train(ref_model, opts_c[k], [bc])
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), **TOL)
  for p, q in zip(m.parameters(), ref_model.parameters()): torch.testing.assert_close(p.detach().cpu(), q.detach(), **TOL)
  reasons = tb.stats()["capture_reasons"]
  assert any(r.startswith("recaptured") for r in reasons), reasons


def test_kept_results_are_not_overwritten_by_replays():
  """A replay writes fresh buffers: results of earlier steps the program still holds keep their values."""
  w = torch.randn(4, 4)
  wt, kept, want = w.to("tiny"), [], []
  for _ in range(6):
    y = wt * 2
    wt.add_(1.0)
    tb.device.flush()
    kept.append(y)
    want.append((w * 2).clone())
    w.add_(1.0)
  for a, b in zip(kept, want): torch.testing.assert_close(a.cpu(), b)
  assert tb.stats()["replays"] >= 2


def test_memory_stays_flat():
  model = mlp(width=8, depth=2).to("tiny")
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
  x, y = torch.randn(4, 8).to("tiny"), torch.randn(4, 8).to("tiny")
  used = []
  for i in range(120):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
    loss.item()
    if i in (40, 119): used.append(GlobalCounters.mem_used)
  assert used[1] <= used[0], used
  assert tb.stats()["replays"] >= 100


def test_capture_is_on_by_default_and_tiny_capture_0_turns_it_off():
  """On by default, after TINY_CAPTURE_WARMUP repeats of the program's steps (8 unless set): 7 steps replay with
  no warm-up and are never recorded with the default one; TINY_CAPTURE=0 never records. Same results."""
  code = ("import torch, tinybounty.torch_backend as tb\n"
          "w = torch.ones(4).to('tiny')\n"
          "for _ in range(7): (w * 2).sum().item(); w.add_(1.0)\n"
          "s = tb.stats(); print(s.get('captured', 0), s.get('replays', 0), s.get('lowered', 0), float(w.sum()))")
  base = {k: v for k, v in os.environ.items() if k not in ("TINY_CAPTURE", "TINY_CAPTURE_WARMUP")}
  runs = {"off": {"TINY_CAPTURE": "0"}, "default": {}, "no warm-up": {"TINY_CAPTURE_WARMUP": "0"}}
  out = {name: subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True, check=True).stdout.split()
         for name, env in runs.items()}
  assert out["off"][:3] == ["0", "0", "0"]
  assert out["default"][:3] == ["0", "0", "0"], out  # 7 steps: fewer than the default warm-up, run as without capture
  assert int(out["no warm-up"][1]) >= 1, out
  assert out["off"][3] == out["default"][3] == out["no warm-up"][3] == "32.0"


def test_a_loop_is_recorded_once_its_steps_repeat_past_the_warmup():
  """With a warm-up of 3, a training loop runs eagerly (nothing recorded, nothing lowered) until its segments between
  sync points have each come more than 3 times; it then captures and replays, its losses and weights the CPU's."""
  capture.set_enabled(True, warmup=3)
  model = mlp()
  ref_model = copy.deepcopy(model)
  ref = train(ref_model, torch.optim.AdamW(ref_model.parameters(), lr=1e-2), batches(12))
  m = copy.deepcopy(model).to("tiny")
  opt, seen, got = torch.optim.AdamW(m.parameters(), lr=1e-2), [], []
  for x, y in batches(12, dev="tiny"):
    got += train(m, opt, [(x, y)])
    seen.append(dict(capture.stats()))
  # step 1 differs (AdamW makes its state), steps 2-5 repeat it 4 times: step 6 is the first recorded
  assert all(s["captured"] == s["lowered"] == s["replays"] == 0 for s in seen[:5]), seen[:6]
  assert seen[-1]["replays"] >= 5 and seen[-1]["replays"] > seen[-2]["replays"], seen[-1]
  torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), **TOL)
  for p, q in zip(m.parameters(), ref_model.parameters()): torch.testing.assert_close(p.detach().cpu(), q.detach(), **TOL)


@pytest.mark.parametrize("batched", [True, False])
def test_replays_run_batched_on_the_cpu_and_kernel_by_kernel_without(batched, monkeypatch):
  """On a CPU device a replay calls its kernels through one native entry (runtime/cpugraph.py); CPUGRAPH=0 calls them
  one by one. Both match the CPU."""
  if not tb.device.Device.DEFAULT.startswith("CPU"): pytest.skip("the batched entry is for tinygrad's CPU device")
  monkeypatch.setenv("CPUGRAPH", "1" if batched else "0")
  model = mlp()
  ref_model = copy.deepcopy(model)
  ref = train(ref_model, torch.optim.AdamW(ref_model.parameters(), lr=1e-2), batches(8))
  m = copy.deepcopy(model).to("tiny")
  got = train(m, torch.optim.AdamW(m.parameters(), lr=1e-2), batches(8, dev="tiny"))
  torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), **TOL)
  for p, q in zip(m.parameters(), ref_model.parameters()): torch.testing.assert_close(p.detach().cpu(), q.detach(), **TOL)
  graphs = [g for g in capture._graphs.values() if isinstance(g, replay.Graph)]
  assert graphs and tb.stats()["replays"] >= 3
  assert all((g.replay.batch is not None) == batched for g in graphs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_float_arguments_of_half_and_bfloat16_steps(dtype):
  """A float argument of a replayed step (a scale, the -inf of gpt-fast's top-k mask) is copied into a buffer of the
  kernel's dtype. bfloat16's was written as float32 (numpy has no bfloat16), so its kernels read the low half of the
  float32: -inf, 1.0 and 0.5 read as 0, and gpt-fast's greedy tokens went wrong once its decoding steps replayed."""
  x = torch.linspace(-2, 2, 16, dtype=dtype)
  runs, replayed = {}, []
  for on in (False, True):
    capture.set_enabled(on)
    tb.reset_stats()
    xt, runs[on] = x.to("tiny"), []
    for i in range(8):  # the factor changes every step: an argument of the step, not a constant of its kernels
      runs[on].append(torch.where(xt < 0.5, -float("inf"), xt * (i + 1.25)).cpu())
      if on: replayed.append(tb.stats()["replays"] > sum(replayed))
  assert sum(replayed) >= 4, tb.stats()
  for i, (a, b) in enumerate(zip(runs[True], runs[False])):
    if replayed[i]: assert torch.equal(a, b), (i, a, b)
    # the CPU multiplies by the float itself, tinygrad by it rounded to the dtype: an ulp apart at most
    want = torch.where(x < 0.5, -float("inf"), x * (i + 1.25))
    torch.testing.assert_close(a, want, rtol=torch.finfo(dtype).eps, atol=0)


def _random_step(x: torch.Tensor) -> float:
  y = nn.functional.dropout(x, 0.5, training=True) * torch.empty_like(x).exponential_(1)  # gpt-fast samples so
  return (y * y.bernoulli()).sum().item()


def test_random_draws_are_arguments_of_the_step():
  """Dropout and sampling draw from the default generator: a captured step records each draw with its counter as an
  argument, so every replay draws new numbers, the same stream as without capture (one seed, the same values), and
  a draw into a tensor the step made (gpt-fast's `empty_like(probs).exponential_(1)`) no longer lowers the step."""
  x = torch.randn(64).to("tiny")
  def run(n: int = 8) -> tuple[list[float], list[dict]]:
    torch.manual_seed(1)
    out, seen = [], []
    for _ in range(n):
      out.append(_random_step(x))
      seen.append(dict(capture.stats()))
    return out, seen
  captured, seen = run()
  capture.set_enabled(False)
  assert captured == run()[0] and len(set(captured)) == len(captured)
  assert seen[-1]["lowered"] == seen[3]["lowered"] and seen[-1]["uncaptured"] == 0, seen[-1]  # learned by step 3
  assert seen[-1]["replays"] - seen[3]["replays"] == 4, seen[-1]
  capture.set_enabled(True)
  torch.manual_seed(2)  # another seed: another step (the seed is a constant of its kernels), other numbers
  assert _random_step(x) not in captured


def _moving_writes(dev: str, n: int = 12) -> tuple[list, list[dict]]:
  seq = torch.zeros(16, dtype=torch.int64, device=dev)
  acc = torch.zeros(16, 3, device=dev)
  w = torch.arange(3.0, device=dev)
  tok, out, seen = torch.ones((), dtype=torch.int64, device=dev), [], []
  for i in range(n):
    tok = (tok * 3 + 1) % 7
    seq[i + 1].fill_(5)  # at i = 4 the filled value equals the offset: they must stay two arguments
    seq[i] = tok
    acc[i] += w * tok
    out.append(seq.sum().item())  # a sync point: one step per position
    seen.append(dict(capture.stats()))
  return [out, seq.cpu().tolist(), acc.cpu().tolist()], seen


def test_small_writes_at_a_moving_offset_are_arguments_of_the_step():
  """A decoding loop's `seq[i] = tok` and `acc[i] += v` write small views at a new offset every step. The offset is an
  argument of the step, read from device memory as the eager path already writes small views: the steps replay, each
  at its own offset, equal to the CPU, and a filled value equal to the offset is not taken for it."""
  got, seen = _moving_writes("tiny")
  assert got == _moving_writes("cpu")[0]
  assert seen[-1]["lowered"] == seen[4]["lowered"] and seen[-1]["uncaptured"] == 0, seen[-1]  # learned by step 4
  assert seen[-1]["replays"] - seen[4]["replays"] == 7, seen[-1]


def test_captured_kernels_are_searched_with_jitbeam(monkeypatch):
  """A captured step's kernels are compiled with TinyJit's beam setting: JITBEAM, else BEAM."""
  seen = []
  real = replay.compile_linear
  monkeypatch.setattr(replay, "compile_linear", lambda lin, beam=None: seen.append(beam) or real(lin, beam=0))
  monkeypatch.setattr(replay, "getenv", lambda name, default=0: 3 if name == "JITBEAM" else default)
  x = torch.randn(8).to("tiny")
  for _ in range(4): (x * 2 + 1).sum().item()
  assert seen == [3] and capture.stats()["replays"] >= 1
