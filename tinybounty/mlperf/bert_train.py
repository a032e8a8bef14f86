"""BERT pretraining in tinygrad, MLPerf's recipe: masked LM + next sentence, LAMB, warmup/poly LR, loss scaling, clipping.

One jitted step (TinyJit) computes the loss on a batch, the gradients of the scaled loss, and the LAMB update; batches
are a function of (seed, step) only and tinygrad's RNG state travels in the checkpoint, so a run resumed from a
checkpoint takes exactly the steps an unbroken run takes.
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import asdict, dataclass, field

import numpy as np
from tinygrad import Context, Tensor, TinyJit, dtypes
from tinygrad.nn.state import get_state_dict

from tinybounty.data.bert_shards import FIELDS, load_shards
from tinybounty.mlperf.checkpoint import batch_indices, load_checkpoint, save_checkpoint
from tinybounty.mlperf.lamb import Lamb, LambConfig, LossScaler, lr_at
from tinybounty.models.bert_pretrain import BertForPretraining, BertPretrainConfig, decayed

DTYPES = {"float32": dtypes.float, "float16": dtypes.half, "bfloat16": dtypes.bfloat16}


@dataclass
class BertRun:
  """Everything that defines a pretraining run (stored in its checkpoints)."""
  steps: int = 20
  batch_size: int = 8
  seed: int = 0
  dtype: str = "float32"
  model: BertPretrainConfig = field(default_factory=BertPretrainConfig.tiny)
  lamb: LambConfig = field(default_factory=lambda: LambConfig(lr=1e-3, warmup_steps=2, total_steps=20))
  checkpoint_every: int = 0      # 0: only at the end


class BertTrainer:
  def __init__(self, run: BertRun, data: dict[str, np.ndarray]):
    if run.dtype not in DTYPES: raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {run.dtype!r}")
    if data["input_ids"].shape[1] > run.model.max_seq_len:
      raise ValueError(f"the shards' sequence length {data['input_ids'].shape[1]} exceeds the model's max_seq_len {run.model.max_seq_len}")
    if (mx := int(data["input_ids"].max(initial=0))) >= run.model.vocab_size: raise ValueError(f"token id {mx} >= vocab_size {run.model.vocab_size}")
    self.run, self.data, self.step_no = run, data, 0
    Tensor.manual_seed(run.seed)
    self.model = BertForPretraining(run.model, DTYPES[run.dtype])
    self.params = get_state_dict(self.model)
    Tensor.realize(*self.params.values())
    self.opt = Lamb(self.params, run.lamb, decay=decayed)
    self.scaler = LossScaler.for_dtype(DTYPES[run.dtype])
    self._jit = TinyJit(self._step)

  def _step(self, ids: Tensor, mask: Tensor, seg: Tensor, pos: Tensor, mlm_ids: Tensor, nsp: Tensor, lr_scale: Tensor) -> Tensor:
    lr, scale = lr_scale[0], lr_scale[1]
    loss, mlm_loss, nsp_loss = self.model.loss(ids, mask, seg, pos, mlm_ids, nsp)
    grads = (loss * scale).gradient(*self.opt.params)
    outs, gnorm, taken = self.opt.step([g / scale for g in grads], lr)
    stats = Tensor.stack(loss, mlm_loss, nsp_loss, gnorm, taken)
    Tensor.realize(stats, *outs)
    return stats

  def batch(self, step: int) -> dict[str, np.ndarray]:
    idx = batch_indices(len(self.data["input_ids"]), self.run.batch_size, self.run.seed, step)
    return {k: self.data[k][idx] for k in FIELDS}

  def train_step(self) -> dict[str, float]:
    """One optimizer step on the next batch; returns its loss parts, grad norm, learning rate, loss scale and whether it was taken."""
    b, lr = self.batch(self.step_no), lr_at(self.run.lamb, self.step_no)
    with Context(TRAINING=1):  # dropout on
      stats = self._jit(*[Tensor(b[k]) for k in FIELDS], Tensor([lr, self.scaler.scale], dtype=dtypes.float).realize()).numpy()
    out = dict(step=self.step_no, loss=float(stats[0]), mlm_loss=float(stats[1]), nsp_loss=float(stats[2]), grad_norm=float(stats[3]),
               lr=lr, loss_scale=self.scaler.scale, taken=bool(stats[4] > 0))
    self.scaler.update(out["taken"])
    self.step_no += 1
    return out

  def state_tensors(self) -> dict[str, Tensor]: return {**{f"model.{k}": v for k, v in self.params.items()}, **self.opt.state()}

  def save(self, path: str | os.PathLike) -> None:
    save_checkpoint(path, self.state_tensors(), {"step": self.step_no, "scaler": self.scaler.state(), "run": _run_json(self.run)})

  def resume(self, path: str | os.PathLike) -> None:
    state = load_checkpoint(path, self.state_tensors(), run=_run_json(self.run))
    self.step_no = int(state["step"])
    self.scaler.load(state["scaler"])


def _run_json(run: BertRun) -> dict:
  d = asdict(run)
  d.pop("steps"), d.pop("checkpoint_every")  # a run may be extended or checkpointed differently after resuming
  return d


def train_bert(run: BertRun, data_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, resume: bool = False,
               progress: bool = True) -> list[dict]:
  """Train from MLPerf shards in `data_dir`; checkpoints go to out_dir/bert.safetensors. Returns the per-step records of this call."""
  from tqdm import tqdm
  trainer = BertTrainer(run, load_shards(data_dir, run.model.vocab_size))
  ckpt = pathlib.Path(out_dir) / "bert.safetensors" if out_dir else None
  if resume:
    if ckpt is None: raise ValueError("resume needs an output directory holding the checkpoint")
    trainer.resume(ckpt)
  records = []
  bar = tqdm(range(trainer.step_no, run.steps), initial=trainer.step_no, total=run.steps, desc="bert", disable=not progress)
  for _ in bar:
    records.append(r := trainer.train_step())
    bar.set_postfix(loss=f"{r['loss']:.4f}", mlm=f"{r['mlm_loss']:.3f}", nsp=f"{r['nsp_loss']:.3f}", lr=f"{r['lr']:.2e}")
    if ckpt and run.checkpoint_every and trainer.step_no % run.checkpoint_every == 0: trainer.save(ckpt)
  if ckpt: trainer.save(ckpt)
  return records
