"""Bounty 13: MLPerf RetinaNet.

Criterion. The real target is MLPerf RetinaNet training in tinygrad (ResNeXt50-32x4d + FPN at 800x800 on OpenImages)
reaching MLPerf's mAP 0.34 on GPUs (a tinybox). The analogue here: a RetinaNet of the same structure at a CPU size, its
step-0 focal and box losses and every gradient in tinygrad against the PyTorch reference (torchvision's definition and
loss, float64) with the same weights on a generated COCO-format batch, then 3 Adam steps and a pycocotools evaluation
(--full: 2 more training steps on a larger image, 96 px).
- FAIL: a loss or the worst gradient more than TOL of its scale from the reference's, a non-finite training loss, an
  mAP outside [0, 1], or a crash.
- NEEDS-HARDWARE: all of that right (the MLPerf run needs GPUs; the figure is the gradient error). The CPU training run
  to a clearly rising mAP (docs/mlperf.md) and GPU figures, where recorded, are quoted beside it and change no status.
- PASS: not reachable from this check: it does not train to MLPerf's mAP (never claimed from the analogue).
"""
from __future__ import annotations

import math

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware, with_records

TOL = 1e-4  # of the reference loss and of each gradient's scale, as for BERT (bounty 10)
RECORDS = ("retinanet_train", "retinanet_step")  # the CPU training run to a rising mAP; step throughput against PyTorch


def _cpu_analogue(full: bool) -> Result:
  import tempfile

  import numpy as np
  from tinygrad import Context

  from tinybounty.data.coco_synth import CocoDetection, split_paths, write_coco
  from tinybounty.mlperf.retinanet_reference import step0_errors
  from tinybounty.mlperf.retinanet_train import RetinaNetRun, RetinaNetTrainer, evaluate
  from tinybounty.models.retinanet import RetinaNet, RetinaNetConfig
  size = 96 if full else 64
  with tempfile.TemporaryDirectory() as d, Context(NOOPT=1):
    root = write_coco(d, n_train=8, n_val=4)
    train, val = CocoDetection(*split_paths(root, "train"), size), CocoDetection(*split_paths(root, "val"), size)
    images, boxes, labels = train.batch(np.arange(3), np.array([False, True, False]))
    err = step0_errors(RetinaNet(RetinaNetConfig.tiny(3, size)), images, boxes, labels)
    trainer = RetinaNetTrainer(RetinaNetRun(steps=3, batch_size=2, lr=1e-3, warmup_steps=1, model=RetinaNetConfig.tiny(3, size, "batch")), train)
    steps = [trainer.train_step() for _ in range(3)]
    score = evaluate(trainer.model, val)
  ran = (f"RetinaNet (ResNeXt + FPN P3-P7 + heads, one block per stage, {size} px) in tinygrad vs the PyTorch reference (torchvision's "
         "definition and loss, float64) with the same weights on a generated COCO-format batch; 3 Adam steps; pycocotools mAP")
  detail = (f"step-0 focal loss off by {err['cls_loss']:.1e}, box loss by {err['box_loss']:.1e} (relative); losses "
            + ", ".join(f"{s['loss']:.4f}" for s in steps) + f"; mAP after 3 steps {score['mAP']:.4f} ({score['detections']} detections)")
  return verdict(ran, err, [s["loss"] for s in steps], score["mAP"], detail)


def verdict(ran: str, err: dict[str, float], losses: list[float], m_ap: float, detail: str = "") -> Result:
  """The status by the criterion above from the reference errors, the training losses and the evaluated mAP."""
  ok = max(err["cls_loss"], err["box_loss"], err["grad"]) <= TOL and all(math.isfinite(v) for v in losses) and 0 <= m_ap <= 1
  analogue = Result(Status.PASS if ok else Status.FAIL, figure=err["grad"], unit=f"worst gradient error / scale vs PyTorch (<= {TOL:g})",
                    ran=ran, baseline="PyTorch RetinaNet from torchvision's definition, float64", detail=detail)
  return needs_hardware("GPUs (a tinybox) for MLPerf RetinaNet at 800x800 to mAP 0.34", analogue)


def check(full: bool) -> Result:
  return with_records(_cpu_analogue(full), RECORDS)


BOUNTY = Bounty(13, "MLPerf RetinaNet", "tinybounty.mlperf.retinanet_train",
                hardware="GPUs (tinybox) for the MLPerf run", check=check, timeout=900.0)
