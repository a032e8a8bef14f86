"""tinygrad BERT pretraining against transformers' BertForPreTraining with the same weights: loss, every gradient, 10 LAMB steps."""
import numpy as np
import pytest
import torch
from tinygrad import Tensor

from tinybounty.data.bert_shards import FIELDS, load_shards, stdlib_text, vocab_size_of, write_shards
from tinybounty.mlperf.bert_reference import hf_batch, hf_from_tiny, hf_named_params
from tinybounty.mlperf.bert_train import BertRun, BertTrainer
from tinybounty.mlperf.lamb import LambConfig, lr_at
from tinybounty.mlperf.torch_lamb import TorchLamb
from tinybounty.models.bert_pretrain import BertPretrainConfig, decayed

pytestmark = pytest.mark.long  # BERT pretraining step and 10 LAMB steps against float64 transformers: minutes

STEPS = 10


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
  d = tmp_path_factory.mktemp("bert_shards")
  write_shards(stdlib_text()[:12000], d, seq_len=32, max_pred=5, n_shards=2, dupe=2)
  return d


def small_run(shards, **kw) -> BertRun:
  cfg = BertPretrainConfig.tiny(vocab_size_of(shards)).with_(dropout=0.0)
  return BertRun(steps=STEPS, batch_size=4, model=cfg, lamb=LambConfig(lr=3e-2, warmup_steps=3, total_steps=STEPS), **kw)


def reference_grads(trainer: BertTrainer, batch: dict, dtype) -> tuple[float, dict]:
  hf = hf_from_tiny(trainer.model, dtype)
  out = hf(**hf_batch(batch))
  out.loss.backward()
  return out.loss.item(), {n: p.grad.double().numpy() for n, p in hf_named_params(hf)}


def test_step0_loss_and_every_gradient_match_transformers(shards):
  trainer = BertTrainer(small_run(shards), load_shards(shards))
  batch = trainer.batch(0)
  names, params = list(trainer.params), list(trainer.params.values())
  loss = trainer.model.loss(*[Tensor(batch[k]) for k in FIELDS])[0]
  grads = dict(zip(names, [g.numpy() for g in loss.gradient(*params)]))
  loss64, ref64 = reference_grads(trainer, batch, torch.float64)
  loss32, ref32 = reference_grads(trainer, batch, torch.float32)
  assert set(grads) == set(ref64), "every parameter has a gradient on both sides"
  assert abs(loss.item() - loss64) <= 1e-4 * abs(loss64)
  top = max(np.abs(r).max() for r in ref64.values())
  for n, r in ref64.items():
    # scale: the gradient's own size; gradients that are zero in exact arithmetic (key biases: softmax ignores them) are rounding noise
    scale = max(np.abs(r).max(), 1e-3 * top)
    assert np.abs(ref32[n] - r).max() <= 1e-4 * scale, f"{n}: PyTorch float32 itself is off the float64 reference"
    assert np.abs(grads[n] - r).max() <= 1e-4 * scale, f"{n}: {np.abs(grads[n] - r).max():.3g} vs scale {scale:.3g}"


def torch_losses(trainer: BertTrainer, dtype) -> list[float]:
  """The same steps with transformers' BertForPreTraining and our PyTorch LAMB."""
  hf = hf_from_tiny(trainer.model, dtype)
  opt = TorchLamb(hf_named_params(hf), trainer.run.lamb, decay=decayed)
  losses = []
  for step in range(STEPS):
    hf.zero_grad()
    out = hf(**hf_batch(trainer.batch(step)))
    out.loss.backward()
    opt.step(lr_at(trainer.run.lamb, step))
    losses.append(out.loss.item())
  return losses


def test_ten_lamb_steps_track_pytorch(shards):
  trainer = BertTrainer(small_run(shards), load_shards(shards))
  ref64, ref32 = torch_losses(trainer, torch.float64), torch_losses(trainer, torch.float32)
  ours = [trainer.train_step()["loss"] for _ in range(STEPS)]
  assert ref64[-1] < ref64[0] - 0.1, "the run learns (else tracking proves little)"
  drift32 = np.abs(np.array(ref32) - ref64)
  tol = np.maximum(10 * np.maximum.accumulate(drift32), 1e-5 * np.abs(ref64))
  diff = np.abs(np.array(ours) - ref64)
  assert (diff <= tol).all(), f"tinygrad vs PyTorch float64 per step: {diff.tolist()}, allowed {tol.tolist()}"
