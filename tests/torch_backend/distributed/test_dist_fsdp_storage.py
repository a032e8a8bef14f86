"""fully_shard's storage free/alloc on tiny tensors (fsdp_storage.py): on, off, and what it does to the buffer."""
import importlib

import torch

import tinybounty.torch_backend.distributed  # noqa: F401  (installs the patch)
from tinybounty.torch_backend.distributed import fsdp_storage

PARAM = "torch.distributed.fsdp._fully_shard._fsdp_param"


def test_free_and_alloc_drop_and_restore_the_tinygrad_buffer():
  mod = importlib.import_module(PARAM)
  t = torch.arange(6, dtype=torch.float32).to("tiny")
  view = t[2:]
  mod.free_storage(t)
  assert t.untyped_storage()._tiny.buf.shape[0] == 0
  mod.alloc_storage(t)
  assert t.untyped_storage()._tiny.buf.shape[0] == 6
  t.copy_(torch.full((6,), 3.0))  # FSDP's all-gather copy-out writes into the new buffer; views of the storage see it
  assert torch.equal(view.cpu(), torch.full((4,), 3.0))
  cpu = torch.ones(4)
  mod.free_storage(cpu)  # other devices keep FSDP's own functions
  assert cpu.untyped_storage().size() == 0


def test_uninstall_restores_fsdp_functions_and_install_again():
  mod = importlib.import_module(PARAM)
  patched = mod.free_storage
  fsdp_storage.uninstall()
  try:
    assert mod.free_storage is not patched and mod.free_storage.__module__ == PARAM
  finally:
    fsdp_storage.install()
  assert mod.free_storage.__module__ != PARAM
