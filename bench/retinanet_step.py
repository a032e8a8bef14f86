"""MLPerf RetinaNet training-step throughput: tinygrad (TinyJit step, host-side matching) vs the PyTorch reference
(torchvision's definition and loss, matching in torch) eager and with the model under torch.compile (inductor); same
config, initial weights and batches, float32, Adam, in one process.

  PYTHONPATH=. DEV=CPU python bench/retinanet_step.py [--config small] [--image-size 128] [--batch-size 8] [--steps 8]

The first --warmup steps (kernel compilation, JIT capture, dynamo tracing) are left out; the rest give min and median
step time, each step ending on the host (loss read). Images/s = batch / median step time. Prints a docs/benchmarks.md row.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np

from tinybounty.data.coco_synth import CocoDetection, split_paths, write_coco
from tinybounty.hardware import machine
from tinybounty.mlperf.retinanet_train import RetinaNetRun, RetinaNetTrainer
from tinybounty.models.retinanet import RetinaNetConfig
from tinybounty.records import bench_command, format_row


def tiny_times(trainer: RetinaNetTrainer, steps: int) -> list[float]:
  out = []
  for _ in range(steps):
    t = time.perf_counter()
    trainer.train_step()
    out.append(time.perf_counter() - t)
  return out


def torch_times(trainer: RetinaNetTrainer, steps: int, compiled: bool) -> list[float]:
  import torch

  from tinybounty.mlperf.retinanet_reference import reference_from, retinanet_loss
  torch.manual_seed(0)
  model = reference_from(trainer.model, torch.float32).train()
  opt = torch.optim.Adam([p for n, p in model.named_parameters() if n in trainer.params], lr=trainer.run.lr)
  fwd = torch.compile(model) if compiled else model
  anchors, out = torch.from_numpy(trainer.anchors), []
  for step in range(steps):
    images, boxes, labels = trainer.batch(step)
    t = time.perf_counter()
    opt.zero_grad()
    logits, deltas = fwd(torch.from_numpy(images))
    c, r = retinanet_loss(logits, deltas, anchors, [torch.from_numpy(b) for b in boxes], [torch.from_numpy(x) for x in labels])
    (c + r).backward()
    opt.step()
    (c + r).item()
    out.append(time.perf_counter() - t)
  return out


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", choices=("tiny", "small"), default="small")
  p.add_argument("--image-size", type=int, default=128)
  p.add_argument("--batch-size", type=int, default=8)
  p.add_argument("--steps", type=int, default=8, help="steps per side, warmup included")
  p.add_argument("--warmup", type=int, default=3, help="first steps left out (tinygrad's JIT captures on its 2nd call)")
  p.add_argument("--skip-compile", action="store_true")
  a = p.parse_args(argv)
  if a.steps <= a.warmup: p.error(f"--steps ({a.steps}) must exceed --warmup ({a.warmup})")
  cfg = (RetinaNetConfig.small if a.config == "small" else RetinaNetConfig.tiny)(3, a.image_size)
  with tempfile.TemporaryDirectory() as d:
    data = CocoDetection(*split_paths(write_coco(d, n_train=max(32, a.batch_size * a.steps), n_val=0), "train"), a.image_size)
  trainer = RetinaNetTrainer(RetinaNetRun(steps=a.steps, batch_size=a.batch_size, lr=1e-4, warmup_steps=0, model=cfg.with_(norm="batch")), data)
  print(f"RetinaNet {a.config} at {a.image_size} px, batch {a.batch_size}: {len(trainer.anchors)} anchors, "
        f"{sum(int(np.prod(t.shape)) for t in trainer.params.values()) / 1e6:.2f}M trained parameters", flush=True)
  results = {}
  for name in ("torch eager", *(() if a.skip_compile else ("torch.compile",)), "tinygrad"):
    t0 = time.perf_counter()
    times = tiny_times(trainer, a.steps) if name == "tinygrad" else torch_times(trainer, a.steps, name == "torch.compile")
    results[name] = (min(times[a.warmup:]), statistics.median(times[a.warmup:]))
    print(f"{name:14s} min {results[name][0] * 1e3:8.1f} ms  median {results[name][1] * 1e3:8.1f} ms  "
          f"{a.batch_size / results[name][1]:7.2f} images/s  (warmup {sum(times[:a.warmup]):.1f} s, all {time.perf_counter() - t0:.1f} s)",
          flush=True)
  tiny = results["tinygrad"][1]
  figure = (f"{a.config} config, {a.image_size} px, batch {a.batch_size}: tinygrad {a.batch_size / tiny:.2f} images/s "
            f"(median {tiny * 1e3:.0f} ms, min {results['tinygrad'][0] * 1e3:.0f} ms); ") + "; ".join(
    f"{k} {a.batch_size / v[1]:.2f} images/s, tinygrad {v[1] / tiny:.2f}x" for k, v in results.items() if k != "tinygrad")
  print(format_row("retinanet_step", machine(), bench_command("bench/retinanet_step.py"),
                   figure, "PyTorch reference, same weights and batches, same process, float32"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
