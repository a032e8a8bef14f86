"""MLPerf RetinaNet training-step throughput: tinygrad (TinyJit step, host-side matching) vs the PyTorch reference
(torchvision's definition and loss, matching in torch) eager and with the model under torch.compile (inductor); same
config, initial weights and batches, Adam, in one process.

  PYTHONPATH=. DEV=CPU python bench/retinanet_step.py [--config small] [--image-size 128] [--batch-size 8] [--steps 8]
  DEV=CUDA python bench/retinanet_step.py --config mlperf --device cuda --dtype bf16 --batch-size 16 --json out/retinanet.json

--config mlperf is MLPerf's model (ResNeXt50-32x4d, frozen BatchNorm, 3 trained stages, 264 classes, 800 px); the data
are drawn COCO-format images whose annotation file lists the model's number of categories. --dtype bf16 runs PyTorch
under torch.autocast and tinygrad's trainer in bfloat16 (float32 master weights and losses on both sides). The host's
part of a step (JPEG decoding, resizing, tinygrad's anchor matching: a data loader's work) is done before the timed
region for both sides and reported apart; the host-to-device copy of the images is inside it. The first --warmup steps
(kernel compilation, JIT capture, dynamo tracing) are left out; the rest give min and median step time, each step ending
on the host (loss read). Images/s = batch / median step time. The step-0 losses of the two sides, from the same weights
and batch, are compared. Prints a docs/benchmarks.md row; --json gets the results after every part.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

from tinybounty.data.coco_synth import CocoDetection, split_paths, write_coco
from tinybounty.data.files import atomic_write
from tinybounty.hardware import machine
from tinybounty.mlperf.retinanet_train import RetinaNetRun, RetinaNetTrainer
from tinybounty.models.retinanet import RetinaNetConfig
from tinybounty.records import bench_command, format_row

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
PARTS = ("eager", "compile", "tinygrad")


def tiny_times(trainer: RetinaNetTrainer, prepared: list, steps: int) -> tuple[list[float], list[float]]:
  """Step times and the step-0 (classification, box) losses."""
  out, first = [], []
  for step in range(steps):
    t = time.perf_counter()
    r = trainer.train_step(prepared[step])
    out.append(time.perf_counter() - t)
    first = first or [r["cls_loss"], r["box_loss"]]
  return out, first


def torch_times(trainer: RetinaNetTrainer, batches: list, steps: int, compiled: bool, device: str, dtype: str) -> tuple[list[float], list[float]]:
  import torch

  from tinybounty.mlperf.retinanet_reference import reference_from, retinanet_loss
  torch.manual_seed(0)
  model = reference_from(trainer.model, torch.float32).to(device).train()
  opt = torch.optim.Adam([p for n, p in model.named_parameters() if n in trainer.params], lr=trainer.run.lr)
  fwd = torch.compile(model) if compiled else model
  anchors, out, first = torch.from_numpy(trainer.anchors).to(device), [], []
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
  for step in range(steps):
    images, boxes, labels = batches[step]
    sync()
    t = time.perf_counter()
    opt.zero_grad()
    with torch.autocast(device.split(":")[0], getattr(torch, DTYPES[dtype]), enabled=dtype != "fp32"):
      logits, deltas = fwd(torch.from_numpy(images).to(device))
    c, r = retinanet_loss(logits.float(), deltas.float(), anchors, [torch.from_numpy(b).to(device) for b in boxes],
                          [torch.from_numpy(x).to(device) for x in labels])
    (c + r).backward()
    opt.step()
    losses = [c.item(), r.item()]
    out.append(time.perf_counter() - t)
    first = first or losses
  del model, opt, fwd
  if device.startswith("cuda"): torch.cuda.empty_cache()
  return out, first


def coco_with_categories(root: pathlib.Path, n_train: int, num_classes: int) -> pathlib.Path:
  """A drawn COCO-format set whose annotation file lists `num_classes` categories (the drawn shapes are the first three)."""
  write_coco(root, n_train=n_train, n_val=0)
  ann = split_paths(root, "train")[1]
  d = json.loads(ann.read_text())
  if num_classes < len(d["categories"]): raise SystemExit(f"--num-classes must be at least {len(d['categories'])}")
  top = max(c["id"] for c in d["categories"])
  d["categories"] += [{"id": top + 1 + i, "name": f"unused_{i}"} for i in range(num_classes - len(d["categories"]))]
  ann.write_text(json.dumps(d))
  return root


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", choices=("tiny", "small", "mlperf"), default="small")
  p.add_argument("--image-size", type=int, help="default 800 (mlperf) or 128")
  p.add_argument("--num-classes", type=int, help="default 264 (mlperf: OpenImages' subset) or 3")
  p.add_argument("--batch-size", type=int, default=8)
  p.add_argument("--steps", type=int, default=8, help="steps per side, warmup included")
  p.add_argument("--warmup", type=int, default=3, help="first steps left out (tinygrad's JIT captures on its 2nd call)")
  p.add_argument("--device", default="cpu", help="PyTorch's device (tinygrad uses DEV's)")
  p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
  p.add_argument("--skip", nargs="*", default=[], choices=PARTS)
  p.add_argument("--skip-compile", action="store_true", help="same as --skip compile")
  p.add_argument("--json", help="write the results here after every part")
  a = p.parse_args(argv)
  if a.steps <= a.warmup: p.error(f"--steps ({a.steps}) must exceed --warmup ({a.warmup})")
  size = a.image_size or (800 if a.config == "mlperf" else 128)
  classes = a.num_classes or (264 if a.config == "mlperf" else 3)
  if a.config == "mlperf": cfg = RetinaNetConfig.mlperf(classes).with_(image_size=size)
  else: cfg = (RetinaNetConfig.small if a.config == "small" else RetinaNetConfig.tiny)(classes, size).with_(norm="batch")
  t0 = time.perf_counter()
  with tempfile.TemporaryDirectory() as d:
    data = CocoDetection(*split_paths(coco_with_categories(pathlib.Path(d), max(32, a.batch_size * a.steps), classes), "train"), size)
  trainer = RetinaNetTrainer(RetinaNetRun(steps=a.steps, batch_size=a.batch_size, lr=1e-4, warmup_steps=0, model=cfg, dtype=DTYPES[a.dtype]), data)
  t1 = time.perf_counter()
  batches = [trainer.batch(s) for s in range(a.steps)]
  t2 = time.perf_counter()
  prepared = [trainer.prepare(s, b) for s, b in enumerate(batches)]  # from the batches decoded above: the matching alone
  host_ms = (time.perf_counter() - t2) / a.steps * 1e3
  print(f"RetinaNet {a.config} at {size} px, {classes} classes, batch {a.batch_size}, {a.dtype}: {len(trainer.anchors)} anchors, "
        f"{sum(int(np.prod(t.shape)) for t in trainer.params.values()) / 1e6:.2f}M trained parameters; init {t1 - t0:.1f} s; host work per "
        f"batch (decode + resize {(t2 - t1) / a.steps * 1e3:.0f} ms, tinygrad's anchor matching {host_ms:.0f} ms), outside the timing",
        flush=True)
  skip = set(a.skip) | ({"compile"} if a.skip_compile else set())
  results: dict[str, dict] = {}
  for part, name in zip(PARTS, ("torch eager", "torch.compile", "tinygrad")):
    if part in skip: continue
    t0 = time.perf_counter()
    if part == "tinygrad": times, first = tiny_times(trainer, prepared, a.steps)
    else: times, first = torch_times(trainer, batches, a.steps, part == "compile", a.device, a.dtype)
    timed = times[a.warmup:]
    results[name] = dict(min=min(timed), median=statistics.median(timed), warmup_s=sum(times[:a.warmup]), times=times, step0=first)
    print(f"{name:14s} min {min(timed) * 1e3:8.1f} ms  median {statistics.median(timed) * 1e3:8.1f} ms  "
          f"{a.batch_size / statistics.median(timed):7.2f} images/s  step-0 losses {first[0]:.6f} {first[1]:.6f}  "
          f"(warmup {sum(times[:a.warmup]):.1f} s: {', '.join(f'{t:.1f}' for t in times[:a.warmup])}; all {time.perf_counter() - t0:.1f} s)",
          flush=True)
    if a.json:
      with atomic_write(a.json) as f: f.write(json.dumps(dict(args=vars(a), host_matching_ms=host_ms, results=results)).encode())
  if "tinygrad" not in results or len(results) < 2: return 0
  tiny = results["tinygrad"]
  match = "; ".join(f"step-0 loss vs {k}: cls {abs(tiny['step0'][0] - v['step0'][0]) / abs(v['step0'][0]):.1e}, "
                    f"box {abs(tiny['step0'][1] - v['step0'][1]) / max(abs(v['step0'][1]), 1e-12):.1e} relative"
                    for k, v in results.items() if k == "torch eager")
  figure = (f"{a.config} config, {size} px, {classes} classes, batch {a.batch_size}, {a.dtype}: tinygrad {a.batch_size / tiny['median']:.2f} "
            f"images/s (median {tiny['median'] * 1e3:.0f} ms, min {tiny['min'] * 1e3:.0f} ms; first steps {tiny['warmup_s']:.0f} s); ") + "; ".join(
    f"{k} {a.batch_size / v['median']:.2f} images/s, tinygrad {v['median'] / tiny['median']:.2f}x" for k, v in results.items() if k != "tinygrad")
  print(match)
  print(format_row("retinanet_step", machine(), bench_command("bench/retinanet_step.py"), f"{figure}; {match}",
                   f"PyTorch reference, same weights and batches, same process, {a.dtype}; decoding and tinygrad's anchor matching "
                   f"({host_ms:.0f} ms/batch) outside both"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
