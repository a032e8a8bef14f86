"""RetinaNet training in tinygrad, MLPerf's recipe: focal loss + L1 box loss, Adam with linear warmup, random flips.

Matching runs on the host per image (`retinanet_boxes.targets`), so one jitted step (TinyJit) takes fixed-shape
per-anchor targets. Batches and flips are functions of (seed, step) only, and the checkpoint holds the model (with
BatchNorm statistics), Adam's moments and the step, so a resumed run takes exactly the steps of an unbroken one.
`evaluate` post-processes as torchvision does and scores with pycocotools' COCOeval (mAP@[.5:.95], MLPerf's metric).
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
from dataclasses import asdict, dataclass, field

import numpy as np
from tinygrad import Context, Tensor, TinyJit, dtypes
from tinygrad.nn.optim import Adam
from tinygrad.nn.state import get_state_dict

from tinybounty.data.coco_synth import CocoDetection
from tinybounty.mlperf import retinanet_boxes as rb
from tinybounty.mlperf.checkpoint import batch_indices, load_checkpoint, save_checkpoint
from tinybounty.models.retinanet import RetinaNet, RetinaNetConfig


@dataclass
class RetinaNetRun:
  """Everything that defines a training run (stored in its checkpoints)."""
  steps: int = 100
  batch_size: int = 8
  lr: float = 1e-4                 # MLPerf's reference: Adam, 1e-4 at batch 32 ...
  warmup_steps: int = 10           # ... after a linear warmup from lr/1000
  seed: int = 0
  model: RetinaNetConfig = field(default_factory=RetinaNetConfig.small)
  checkpoint_every: int = 0        # 0: only at the end
  eval_every: int = 0              # 0: only at the end (when a validation set is given)
  dtype: str = "float32"           # compute precision; "bfloat16": convolutions in bf16 on float32 master weights, losses in float32

  def __post_init__(self):
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"dtype must be 'float32' or 'bfloat16', not {self.dtype!r} (float16 needs a loss scale, which this trainer lacks)")


def focal_loss(logits: Tensor, cls_t: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
  """Sigmoid focal loss per image over its non-ignored anchors, over its foreground count, averaged over images."""
  y = (cls_t.unsqueeze(-1) == Tensor.arange(logits.shape[-1])).float()
  p = logits.sigmoid()
  ce = logits.maximum(0) - logits * y + (-logits.abs()).exp().add(1).log()  # binary cross-entropy with logits, stable
  p_t = p * y + (1 - p) * (1 - y)
  focal = (alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma
  valid = (cls_t != rb.IGNORED).float().unsqueeze(-1)
  return ((focal * valid).sum((1, 2)) / _foreground(cls_t)).mean()


def box_loss(deltas: Tensor, cls_t: Tensor, box_t: Tensor) -> Tensor:
  """L1 between predicted and target box codes over the foreground anchors, per image over its foreground count, averaged."""
  return (((deltas - box_t).abs().sum(2) * (cls_t >= 0).float()).sum(1) / _foreground(cls_t)).mean()


def _foreground(cls_t: Tensor) -> Tensor: return (cls_t >= 0).float().sum(1).maximum(1)


def make_targets(boxes: list[np.ndarray], labels: list[np.ndarray], anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-anchor class and box targets of a batch: (N, A) int32 and (N, A, 4) float32."""
  per = [rb.targets(b, lab, anchors) for b, lab in zip(boxes, labels)]
  return np.stack([c for c, _ in per]), np.stack([b for _, b in per])


class RetinaNetTrainer:
  """A run's model, Adam state and step counter over one training split; `train_step` takes the next step."""
  def __init__(self, run: RetinaNetRun, data: CocoDetection):
    if data.size != run.model.image_size: raise ValueError(f"the data is resized to {data.size}, the model takes {run.model.image_size}")
    if data.num_classes != run.model.num_classes:
      raise ValueError(f"the data has {data.num_classes} categories, the model {run.model.num_classes} classes")
    self.run, self.data, self.step_no = run, data, 0
    Tensor.manual_seed(run.seed)
    self.model = RetinaNet(run.model)
    self.anchors = rb.anchors(run.model.image_size, run.model.anchor_sizes)
    self.params = self.model.trainable()
    # every state tensor goes in: Adam updates the parameters and realizes the rest, so BatchNorm's running statistics, assigned
    # lazily in the forward pass, are computed inside the jitted step (left out, the JIT would never replay their update)
    self.opt = Adam(list(get_state_dict(self.model).values()), lr=run.lr)
    assert [id(t) for t in self.opt.params] == [id(t) for t in self.params.values()], "Adam's parameters are the model's trainable ones"
    Tensor.realize(*self.state_tensors().values())
    self._jit = TinyJit(self._step)
    self.forward = TinyJit(lambda x: tuple(t.realize() for t in self._model(x)))  # evaluation: one capture, replayed per batch

  def _model(self, images: Tensor) -> tuple[Tensor, Tensor]:
    """Logits and deltas in float32, computed in the run's dtype."""
    logits, deltas = self.model(images.cast(self.run.dtype))
    return logits.float(), deltas.float()

  def _step(self, images: Tensor, cls_t: Tensor, box_t: Tensor, lr: Tensor) -> Tensor:
    with Context(TRAINING=1):  # BatchNorm on batch statistics; the optimizer steps
      logits, deltas = self._model(images)
      cls_loss, reg_loss = focal_loss(logits, cls_t), box_loss(deltas, cls_t, box_t)
      self.opt.zero_grad()
      (cls_loss + reg_loss).backward()
      self.opt.lr.assign(lr)
      # one schedule for the losses and the update, so the losses are those of the weights before it (realized after
      # opt.step(), they would read the updated weights)
      losses = Tensor.stack(cls_loss, reg_loss)
      Tensor.realize(losses, *self.opt.schedule_step())
    return losses

  def lr_at(self, step: int) -> float:
    """The learning rate of 0-based `step`."""
    if step >= self.run.warmup_steps: return self.run.lr
    f = step / max(1, self.run.warmup_steps)  # torchvision's warmup_lr_scheduler: linear from lr * 1e-3
    return self.run.lr * (1e-3 * (1 - f) + f)

  def batch(self, step: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Images, boxes and labels of 0-based `step`, flipped as the run's seed says."""
    idx = batch_indices(len(self.data), self.run.batch_size, self.run.seed, step)
    return self.data.batch(idx, np.random.default_rng([self.run.seed, step, 1]).random(len(idx)) < 0.5)

  def prepare(self, step: int, batch: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The host's part of 0-based `step` (a data loader's work): its images and per-anchor class and box targets
    (`batch`: that step's `batch`, if already decoded)."""
    images, boxes, labels = batch if batch is not None else self.batch(step)
    return (images, *make_targets(boxes, labels, self.anchors))

  def train_step(self, prepared: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict:
    """One Adam step on the next batch (`prepared`: that step's `prepare`, done ahead); returns its losses and learning rate."""
    images, cls_t, box_t = prepared if prepared is not None else self.prepare(self.step_no)
    lr = self.lr_at(self.step_no)
    out = self._jit(Tensor(images), Tensor(cls_t, dtype=dtypes.int32), Tensor(box_t), Tensor([lr], dtype=dtypes.float).reshape(()).realize())
    cls_loss, reg_loss = (float(v) for v in out.numpy())
    self.step_no += 1
    return dict(step=self.step_no - 1, loss=cls_loss + reg_loss, cls_loss=cls_loss, box_loss=reg_loss, lr=lr)

  def state_tensors(self) -> dict[str, Tensor]:
    names = list(self.params)
    return {**{f"model.{k}": v for k, v in get_state_dict(self.model).items()}, "adam.b1_t": self.opt.b1_t, "adam.b2_t": self.opt.b2_t,
            **{f"adam.m.{n}": m for n, m in zip(names, self.opt.m)}, **{f"adam.v.{n}": v for n, v in zip(names, self.opt.v)}}

  def save(self, path: str | os.PathLike) -> None: save_checkpoint(path, self.state_tensors(), {"step": self.step_no, "run": _run_json(self.run)})

  def resume(self, path: str | os.PathLike) -> None:
    self.step_no = int(load_checkpoint(path, self.state_tensors(), run=_run_json(self.run))["step"])


def predict(model: RetinaNet, images: np.ndarray, batch_size: int = 8, forward=None) -> tuple[np.ndarray, np.ndarray]:
  """Class logits and box deltas for `images` in evaluation mode (BatchNorm on its running statistics), `batch_size` at a time;
  `forward` (a jitted model call, say) replaces the plain call and always gets full batches (the last one zero-padded)."""
  logits, deltas = [], []
  for i in range(0, len(images), batch_size):
    chunk = images[i:i + batch_size]
    if forward is not None and len(chunk) < batch_size: chunk = np.concatenate([chunk, np.zeros_like(chunk[:1]).repeat(batch_size - len(chunk), 0)])
    c, r = (forward or model)(Tensor(chunk))
    n = min(batch_size, len(images) - i)
    logits.append(c.numpy()[:n]), deltas.append(r.numpy()[:n])
  return np.concatenate(logits), np.concatenate(deltas)


def evaluate(model: RetinaNet, data: CocoDetection, batch_size: int = 8, forward=None) -> dict[str, float]:
  """COCO mAP@[.5:.95] and AP50 of the model's detections on `data`, by pycocotools (`forward`: as for `predict`)."""
  cfg = model.cfg
  anchors = rb.anchors(cfg.image_size, cfg.anchor_sizes)
  counts = [s * s * RetinaNet.ANCHORS_PER_LOCATION for s in rb.level_shapes(cfg.image_size, cfg.levels)]
  logits, deltas = predict(model, data.images, batch_size, forward)
  return coco_map(data, [rb.detect(logits[i], deltas[i], anchors, cfg.image_size, counts) for i in range(len(data))])


def coco_map(data: CocoDetection, detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
  """pycocotools' bbox AP of per-image (boxes in the resized image, scores, labels), mapped back to the annotation file's pixels and ids."""
  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval
  results = []
  for image_id, (sx, sy), (boxes, scores, labels) in zip(data.ids, data.scales, detections):
    for (x1, y1, x2, y2), s, lab in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
      results.append(dict(image_id=image_id, category_id=data.category_ids[lab], bbox=[x1 / sx, y1 / sy, (x2 - x1) / sx, (y2 - y1) / sy], score=s))
  if not results: return {"mAP": 0.0, "AP50": 0.0, "detections": 0}
  with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
    gt = COCO(str(data.annotation_file))
    ev = COCOeval(gt, gt.loadRes(results), "bbox")
    ev.params.imgIds = list(data.ids)
    ev.evaluate(), ev.accumulate(), ev.summarize()
  return {"mAP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "detections": len(results)}


def _run_json(run: RetinaNetRun) -> dict:
  d = asdict(run)
  for k in ("steps", "checkpoint_every", "eval_every"): d.pop(k)  # a run may be extended or checkpointed differently after resuming
  d["model"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["model"].items()}  # as JSON reads it back
  return d


def train_retinanet(run: RetinaNetRun, train: CocoDetection, val: CocoDetection | None = None, out_dir: str | os.PathLike | None = None,
                    resume: bool = False, progress: bool = True) -> list[dict]:
  """Train; checkpoints go to out_dir/retinanet.safetensors. Returns this call's per-step records (with mAP where evaluated)."""
  from tqdm import tqdm
  trainer = RetinaNetTrainer(run, train)
  ckpt = pathlib.Path(out_dir) / "retinanet.safetensors" if out_dir else None
  if resume:
    if ckpt is None: raise ValueError("resume needs an output directory holding the checkpoint")
    trainer.resume(ckpt)
  records = []
  bar = tqdm(range(trainer.step_no, run.steps), initial=trainer.step_no, total=run.steps, desc="retinanet", disable=not progress)
  for _ in bar:
    records.append(r := trainer.train_step())
    bar.set_postfix(loss=f"{r['loss']:.4f}", cls=f"{r['cls_loss']:.3f}", box=f"{r['box_loss']:.3f}")
    if val is not None and (trainer.step_no == run.steps or (run.eval_every and trainer.step_no % run.eval_every == 0)):
      r.update(evaluate(trainer.model, val, run.batch_size, trainer.forward))
      bar.write(f"step {trainer.step_no}: mAP {r['mAP']:.4f}, AP50 {r['AP50']:.4f}")
    if ckpt and run.checkpoint_every and trainer.step_no % run.checkpoint_every == 0: trainer.save(ckpt)
  if ckpt: trainer.save(ckpt)
  return records
