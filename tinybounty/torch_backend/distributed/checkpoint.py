"""Atomic training checkpoints: a file that is either the old checkpoint or the whole new one, never half of one.

`save` writes to a temporary file in the same folder, fsyncs it, renames it over the target (atomic on POSIX) and
fsyncs the folder, so a rank killed mid-save leaves the previous checkpoint intact. Sharded (FSDP) state goes
through torch.distributed.checkpoint into a temporary folder that is renamed into place by rank 0 the same way.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import torch
import torch.distributed as dist


def _fsync_dir(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def save(obj: Any, path: str) -> None:
  """torch.save(obj) to `path` atomically (temp file, fsync, rename, fsync of the folder)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pt")
  try:
    with os.fdopen(fd, "wb") as f:
      torch.save(obj, f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp): os.unlink(tmp)
    raise
  _fsync_dir(folder)


def load(path: str) -> Any | None:
  """The checkpoint at `path` (CPU tensors), or None when there is none yet."""
  if not os.path.exists(path): return None
  return torch.load(path, map_location="cpu", weights_only=False)


def save_sharded(state: dict, folder: str) -> None:
  """torch.distributed.checkpoint.save of a sharded state dict (every rank calls it), made visible atomically:
  written into `folder`.tmp, then renamed to `folder` by rank 0 after every rank has finished writing."""
  import torch.distributed.checkpoint as dcp
  tmp = folder.rstrip("/") + ".tmp"
  if dist.get_rank() == 0 and os.path.exists(tmp): shutil.rmtree(tmp)
  dist.barrier()
  dcp.save(state, storage_writer=dcp.FileSystemWriter(tmp, sync_files=True))
  dist.barrier()
  if dist.get_rank() == 0:
    old = folder.rstrip("/") + ".old"
    if os.path.exists(folder): os.replace(folder, old)  # a folder cannot be renamed over a non-empty one
    os.replace(tmp, folder)
    _fsync_dir(os.path.dirname(os.path.abspath(folder)))
    if os.path.exists(old): shutil.rmtree(old)
  dist.barrier()


def load_sharded(state: dict, folder: str) -> bool:
  """Load a sharded checkpoint in place into `state` (every rank calls it); False when there is none."""
  import torch.distributed.checkpoint as dcp
  if not os.path.exists(folder):
    old = folder.rstrip("/") + ".old"  # killed between the two renames: the previous checkpoint is complete
    if not os.path.exists(old): return False
    folder = old
  dcp.load(state, storage_reader=dcp.FileSystemReader(folder))
  return True
