"""Bounty 10: BERT MLPerf on the AMD LLVM path."""
from __future__ import annotations

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware

TOL = 1e-4  # of each gradient's scale, as the issue asks


def _cpu_analogue(full: bool) -> Result:
  import tempfile

  from tinygrad import Context

  from tinybounty.data.bert_shards import load_shards, stdlib_text, vocab_size_of, write_shards
  from tinybounty.mlperf.bert_reference import step0_errors
  from tinybounty.mlperf.bert_train import BertRun, BertTrainer
  from tinybounty.mlperf.lamb import LambConfig
  from tinybounty.models.bert_pretrain import BertPretrainConfig
  with tempfile.TemporaryDirectory() as d, Context(NOOPT=1):
    write_shards(stdlib_text()[:12000], d, seq_len=32, max_pred=5, n_shards=1, dupe=2)
    cfg = BertPretrainConfig.tiny(vocab_size_of(d)).with_(dropout=0.0)
    trainer = BertTrainer(BertRun(steps=3, batch_size=4, model=cfg, lamb=LambConfig(lr=3e-2, warmup_steps=1, total_steps=3)), load_shards(d))
    loss_err, grad_err = step0_errors(trainer.model, trainer.batch(0))
    steps = [trainer.train_step() for _ in range(3)]
  ok = loss_err <= TOL and grad_err <= TOL and all(s["taken"] for s in steps)
  losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
  detail = f"step-0 loss off by {loss_err:.2e} (relative); 3 LAMB steps, losses {losses}"
  if full:
    from tinybounty.mlperf.amd_kernels import compile_step, summary
    for arch in ("gfx942", "gfx1100"):
      s = summary(compile_step(arch, "AMDLLVM", cfg, 2, 32, 5))
      ok &= s["compiled"] == s["kernels"]
      detail += f"; {arch} via LLVM: {s['compiled']}/{s['kernels']} kernels compiled, {s['spilling']} spill, max {s['max_vgpr']} VGPRs"
  return Result(Status.PASS if ok else Status.FAIL, figure=grad_err, unit=f"worst gradient error / scale vs transformers (<= {TOL:g})",
                ran="tiny BERT pretraining (MLM + NSP) in tinygrad vs transformers' BertForPreTraining (float64) with the same weights on "
                    "a generated MLPerf HDF5 shard; 3 LAMB steps on the CPU"
                    + ("; whole step compiled for gfx942/gfx1100 on NULL:AMDLLVM" if full else ""),
                baseline="transformers BertForPreTraining, float64", detail=detail)


def check(full: bool) -> Result:
  return needs_hardware("AMD MI300X GPUs (gfx942) to time BERT steps through the LLVM path against comgr", _cpu_analogue(full))


BOUNTY = Bounty(10, "BERT MLPerf on the AMD LLVM path", "tinybounty.mlperf.bert_train",
                hardware="AMD MI300X GPUs (tinybox) for the MLPerf run", check=check, timeout=600.0)
