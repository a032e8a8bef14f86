"""One data-parallel training run on the tiny device, the program each rank runs (`torchrun ... -m tinybounty.torch_backend.distributed.train`).

  --mode single   one process, the whole global batch: the reference
  --mode ddp      DistributedDataParallel (buckets of --bucket-mb, --accum micro-batches under no_sync, find_unused_parameters)
  --mode fsdp     torch.distributed.fsdp.fully_shard

Every rank draws the same global batch per step (models.batch) and trains on its share; rank 0 writes the final
weights, the loss curve (the mean over ranks), step times and bytes staged per step to --out (atomically).
--ckpt FOLDER checkpoints after every step and resumes from it (a restarted torchrun worker carries on); --die-at S
--die-rank R makes rank R kill itself (SIGKILL) at step S of the first attempt, for the fault test.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

from tinybounty.torch_backend.distributed import checkpoint
from tinybounty.torch_backend.distributed.models import batch, loss_fn, make_model, shard


def parse(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="cnn", choices=["cnn", "transformer"])
  p.add_argument("--mode", default="ddp", choices=["single", "ddp", "fsdp"])
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--batch", type=int, default=8, help="global batch (all ranks together)")
  p.add_argument("--accum", type=int, default=1, help="micro-batches per step; DDP syncs only the last (no_sync)")
  p.add_argument("--bucket-mb", type=float, default=0.01, help="DDP bucket size: small, so the gradients span several buckets")
  p.add_argument("--find-unused", action="store_true", help="give the CNN an unused head and DDP find_unused_parameters=True")
  p.add_argument("--lr", type=float, default=0.05)
  p.add_argument("--device", default="tiny", choices=["tiny", "cpu"])
  p.add_argument("--backend", default="cpu:gloo,tiny:tiny")
  p.add_argument("--timeout", type=float, default=60.0, help="seconds a collective may wait for a peer")
  p.add_argument("--out", default=None)
  p.add_argument("--ckpt", default=None)
  p.add_argument("--die-at", type=int, default=-1)
  p.add_argument("--die-rank", type=int, default=1)
  return p.parse_args(argv)


def _wrap(model: nn.Module, args: argparse.Namespace) -> nn.Module:
  if args.mode == "ddp":
    from torch.nn.parallel import DistributedDataParallel as DDP
    return DDP(model, bucket_cap_mb=args.bucket_mb, find_unused_parameters=args.find_unused)
  if args.mode == "fsdp":
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    mesh = init_device_mesh(args.device, (dist.get_world_size(),))
    for m in model.modules():
      if m is not model and any(True for _ in m.parameters(recurse=False)) and len(list(m.parameters())) > 1: fully_shard(m, mesh=mesh)
    return fully_shard(model, mesh=mesh)
  return model


def _micro_steps(model: nn.Module, args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
  """Forward and backward of this rank's batch in args.accum micro-batches; DDP all-reduces only on the last one."""
  xs, ys, total = x.chunk(args.accum), y.chunk(args.accum), torch.zeros((), device=args.device)
  for i, (xm, ym) in enumerate(zip(xs, ys)):
    last = i == args.accum - 1
    sync_off = model.no_sync() if args.mode == "ddp" and not last else _Null()
    if args.mode == "fsdp": model.set_requires_gradient_sync(last)
    with sync_off:
      loss = loss_fn(args.model, model(xm), ym) * (xm.shape[0] / x.shape[0])
      loss.backward()
    total = total + loss.detach()
  return total


class _Null:
  def __enter__(self) -> None: return None
  def __exit__(self, *a: object) -> None: return None


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
  """Full (unsharded) CPU weights under their plain names."""
  if hasattr(model, "module"): model = model.module
  out = {}
  for k, v in model.state_dict().items():
    if hasattr(v, "full_tensor"): v = v.full_tensor()
    out[k] = v.detach().cpu()
  return out


def _collective_bytes() -> int:
  from tinybounty.torch_backend import stats
  s = stats()
  return s.get("collective_d2h_bytes", 0) + s.get("collective_h2d_bytes", 0)


def run(args: argparse.Namespace) -> dict | None:
  distributed = args.mode != "single"
  if args.device == "tiny":
    import tinybounty.torch_backend.distributed  # noqa: F401  (registers the tiny device and its process-group backend)
    from tinybounty.runtime import program_cache
    program_cache.install_from_env()  # TINYBOUNTY_PROGRAM_CACHE=1: lowered kernels from disk (every rank lowers the same ones)
  if distributed:
    from datetime import timedelta
    dist.init_process_group(args.backend, timeout=timedelta(seconds=args.timeout))
  rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
  if args.batch % (world * args.accum):
    raise ValueError(f"global batch {args.batch} does not split into world size {world} x {args.accum} micro-batches: "
                     f"choose a batch that is a multiple of {world * args.accum}")
  model = make_model(args.model, unused=args.find_unused).to(args.device)
  opt_model = _wrap(model, args)
  opt = torch.optim.SGD(opt_model.parameters(), lr=args.lr, momentum=0.9, foreach=True)
  start, losses, times, moved = 0, [], [], []
  ckpt_file = os.path.join(args.ckpt, "ckpt.pt") if args.ckpt else None
  if args.ckpt: start, losses = _resume(args, model, opt_model, opt, ckpt_file)
  attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
  for step in range(start, args.steps):
    if step == args.die_at and rank == args.die_rank and attempt == 0: os.kill(os.getpid(), signal.SIGKILL)
    x, y = batch(args.model, step, args.batch)
    x, y = shard(x, rank, world).to(args.device), shard(y, rank, world).to(args.device)
    t0, b0 = time.perf_counter(), _collective_bytes()
    try:
      opt.zero_grad()
      loss = _micro_steps(opt_model, args, x, y)
      opt.step()
      if args.device == "tiny": torch.tiny.synchronize()
      moved.append(_collective_bytes() - b0)
      times.append(time.perf_counter() - t0)
      if distributed: dist.all_reduce(loss, op=dist.ReduceOp.AVG)
    except RuntimeError as e:
      if not _peer_failure(e): raise
      raise RuntimeError(f"rank {rank}: training step {step} failed in a collective; a peer rank probably died or timed out "
                         f"(after {args.timeout:.0f} s): {str(e).splitlines()[0]}") from e
    losses.append(float(loss.cpu()))
    if args.ckpt: _checkpoint(args, model, opt_model, opt, ckpt_file, step + 1, losses)
  result = {"weights": _state(opt_model), "losses": losses, "step_times": times, "bytes_per_step": moved, "world": world,
            "mode": args.mode, "model": args.model}
  if distributed:
    dist.barrier()
    dist.destroy_process_group()
  if rank == 0 and args.out: checkpoint.save(result, args.out)
  return result if rank == 0 else None


def _peer_failure(e: Exception) -> bool:
  """Whether a collective failed because a peer went away or timed out (gloo's and c10d's wording)."""
  text = str(e).lower()
  return isinstance(e, dist.DistError) or any(w in text for w in ("connection", "timed out", "timeout", "gloo", "peer"))


def _checkpoint(args: argparse.Namespace, model: nn.Module, opt_model: nn.Module, opt: torch.optim.Optimizer, path: str, step: int,
                losses: list[float]) -> None:
  if args.mode == "fsdp":
    from torch.distributed.checkpoint.state_dict import get_state_dict
    msd, osd = get_state_dict(opt_model, opt)
    checkpoint.save_sharded({"model": msd, "optim": osd}, os.path.join(args.ckpt, "sharded"))
    if dist.get_rank() == 0: checkpoint.save({"step": step, "losses": losses}, path)
    dist.barrier()
    return
  if args.mode == "single" or dist.get_rank() == 0:  # DDP replicas are identical: rank 0 writes for all
    checkpoint.save({"step": step, "losses": losses, "model": _state(model), "optim": _cpu(opt.state_dict())}, path)
  if args.mode != "single": dist.barrier()  # nobody runs ahead of a checkpoint that is not on disk yet


def _resume(args: argparse.Namespace, model: nn.Module, opt_model: nn.Module, opt: torch.optim.Optimizer, path: str) -> tuple[int, list]:
  meta = checkpoint.load(path)
  if meta is None: return 0, []
  if args.mode == "fsdp":
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    msd, osd = get_state_dict(opt_model, opt)
    state = {"model": msd, "optim": osd}
    checkpoint.load_sharded(state, os.path.join(args.ckpt, "sharded"))
    set_state_dict(opt_model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
  else:
    model.load_state_dict(meta["model"])
    opt.load_state_dict(meta["optim"])
  print(f"rank {dist.get_rank() if dist.is_initialized() else 0}: resumed at step {meta['step']}", file=sys.stderr)
  return meta["step"], list(meta["losses"])


def _cpu(obj: object) -> object:
  if isinstance(obj, torch.Tensor): return obj.detach().cpu()
  if isinstance(obj, dict): return {k: _cpu(v) for k, v in obj.items()}
  if isinstance(obj, list): return [_cpu(v) for v in obj]
  return obj


if __name__ == "__main__":
  run(parse())
