import copy

import torch
import torch.nn.functional as F


def _pair(make, tiny):
  torch.manual_seed(0)
  ref = make()
  return ref, copy.deepcopy(ref).to(tiny)


def test_compiled_training_step_matches_cpu_and_replays(tiny, fresh_dynamo):
  ref, mod = _pair(lambda: torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 3)), tiny)
  opt_ref, opt = torch.optim.Adam(ref.parameters(), 1e-2), torch.optim.Adam(mod.parameters(), 1e-2)
  fwd, step = torch.compile(mod, backend="tiny"), torch.compile(opt.step, backend="tiny")
  for i in range(5):
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    loss_ref = F.cross_entropy(ref(x), y)
    loss_ref.backward(); opt_ref.step(); opt_ref.zero_grad()
    loss = F.cross_entropy(fwd(x.to(tiny)), y.to(tiny))
    loss.backward(); step(); opt.zero_grad()
    assert abs(loss.item() - loss_ref.item()) < 1e-4, i
  for p_ref, p in zip(ref.parameters(), mod.parameters()): assert torch.allclose(p.cpu(), p_ref, atol=1e-4)
  st = fresh_dynamo.compile_stats()
  assert st["fallbacks"] == 0 and fresh_dynamo.model_breaks() == 0
  assert st["graphs"] == 3 and st["jit_captures"] == 3  # forward, backward, optimizer: each captured once, then replayed


def test_batchnorm_running_stats_are_written_back(tiny, fresh_dynamo):
  ref, mod = _pair(lambda: torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()), tiny)
  fwd = torch.compile(mod, backend="tiny")
  for _ in range(3):
    x = torch.randn(2, 2, 6, 6)
    assert torch.allclose(fwd(x.to(tiny)).cpu(), ref(x), atol=1e-4)
  assert torch.allclose(mod[1].running_mean.cpu(), ref[1].running_mean, atol=1e-5)
  assert torch.allclose(mod[1].running_var.cpu(), ref[1].running_var, atol=1e-5)
  assert int(mod[1].num_batches_tracked.cpu()) == 3


def test_new_batch_size_recompiles_once_not_every_step(tiny, fresh_dynamo):
  ref, mod = _pair(lambda: torch.nn.Linear(5, 2), tiny)
  fwd = torch.compile(mod, backend="tiny")
  for bs in (4, 4, 4, 7, 7, 7, 7, 4):
    x = torch.randn(bs, 5)
    assert torch.allclose(fwd(x.to(tiny)).cpu(), ref(x), atol=1e-5)
  st = fresh_dynamo.compile_stats()
  assert st["recompiles"] == 1 and st["graphs"] == 2 and st["jit_captures"] == 2 and st["fallbacks"] == 0


def test_install_uninstall_restore_dynamos_shape_setting(tiny):
  import tinybounty.torch_backend.compile as tc
  assert torch._dynamo.config.automatic_dynamic_shapes is False
  tc.uninstall()
  try: assert torch._dynamo.config.automatic_dynamic_shapes is True
  finally: tc.install()
  assert torch._dynamo.config.automatic_dynamic_shapes is False


def test_outputs_survive_later_replays(tiny, fresh_dynamo):
  mod = torch.nn.Linear(3, 3).to(tiny)
  fwd = torch.compile(mod, backend="tiny")
  xs = [torch.randn(2, 3) for _ in range(4)]
  with torch.no_grad(): outs = [fwd(x.to(tiny)) for x in xs]  # the JIT reuses its buffers: results must be copies
  ref = mod.cpu()
  for x, o in zip(xs, outs): assert torch.allclose(o.cpu(), ref(x), atol=1e-5)


class _KVCache(torch.nn.Module):
  """A decode step's cache pattern (gpt-fast's KVCache.update): a buffer written at one position, then read whole."""
  def __init__(self):
    super().__init__()
    self.proj = torch.nn.Linear(4, 4)
    self.register_buffer("k", torch.zeros(1, 8, 4))

  def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    self.k[:, pos] = self.proj(x)
    return (self.k * self.k.sum(-1, keepdim=True)).sum(1)


def test_mutated_buffer_is_written_in_place_across_replays(tiny, fresh_dynamo):
  from tinybounty.torch_backend import device
  ref, mod = _pair(_KVCache, tiny)
  fwd = torch.compile(mod, backend="tiny")
  bufs = []
  with torch.no_grad():
    for i in range(6):
      x, pos = torch.randn(1, 1, 4), torch.tensor([i])
      out, want = fwd(x.to(tiny), pos.to(tiny)), ref(x, pos)
      assert torch.allclose(out.cpu(), want, atol=1e-5), i
      assert torch.allclose(mod.k.cpu(), ref.k, atol=1e-6), i
      bufs.append(device._storage(mod.k).value.uop.base)
  # from the JIT's capture on, the cache's own buffer is written: never a new copy of the whole cache per step
  assert all(b is bufs[1] for b in bufs[1:]), [id(b) for b in bufs]
  assert fresh_dynamo.compile_stats()["jit_captures"] == 1


def test_held_parameters_follow_eager_writes(tiny, fresh_dynamo):
  """Replays hold unchanged parameters' buffers instead of taking them as JIT arguments; a parameter written eagerly
  between calls (a new buffer) must be read, never the held one."""
  import gc

  from tinybounty.torch_backend.compile import TinyGraph
  alive = [g for g in gc.get_objects() if type(g) is TinyGraph]  # other tests' graphs, kept alive so no id is reused
  earlier = {id(g) for g in alive}
  ref, mod = _pair(lambda: torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 2)), tiny)
  fwd = torch.compile(mod, backend="tiny")
  holds = []
  with torch.no_grad():
    for i in range(7):
      if i == 5:  # an eager in-place update, as an uncompiled optimizer makes
        for p_ref, p in zip(ref.parameters(), mod.parameters()): p_ref.mul_(0.5); p.mul_(0.5)
      x = torch.randn(3, 5)
      assert torch.allclose(fwd(x.to(tiny)).cpu(), ref(x), atol=1e-5), i
      if i == 3: holds = [len(g.hold or {}) for g in gc.get_objects() if type(g) is TinyGraph and id(g) not in earlier]
  assert holds == [4]  # one graph, holding the four parameters while they kept their buffers
