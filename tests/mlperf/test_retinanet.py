"""RetinaNet in tinygrad against the PyTorch reference (torchvision's definition) in float64, with the same weights; training,
resuming and the CLI on a generated COCO-format set."""
import dataclasses
import json

import numpy as np
import pytest

from tinybounty.data.coco_synth import CocoDetection, split_paths, write_coco
from tinybounty.mlperf.checkpoint import CheckpointError
from tinybounty.mlperf.retinanet_reference import step0_errors
from tinybounty.mlperf.retinanet_train import RetinaNetRun, RetinaNetTrainer, train_retinanet
from tinybounty.models.retinanet import RetinaNet, RetinaNetConfig

TOL = 1e-4  # of the reference loss and of each gradient's scale, the bar


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
  return write_coco(tmp_path_factory.mktemp("coco"), n_train=8, n_val=4, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["frozen", pytest.param("batch", marks=pytest.mark.long)])
def test_step0_losses_and_gradients_match_the_reference(coco, norm):
  data = CocoDetection(*split_paths(coco, "train"), 64)
  images, boxes, labels = data.batch(np.arange(3), np.array([False, True, False]))
  err = step0_errors(RetinaNet(RetinaNetConfig.tiny(3, 64, norm)), images, boxes, labels)
  assert err["cls_loss"] <= TOL and err["box_loss"] <= TOL and err["grad"] <= TOL, err


def test_bad_configs_are_refused():
  with pytest.raises(ValueError, match="multiple of 32"): RetinaNet(RetinaNetConfig.tiny(image_size=100))
  with pytest.raises(ValueError, match="norm must be"): RetinaNet(RetinaNetConfig.tiny(norm="group"))
  with pytest.raises(ValueError, match="loss scale"): RetinaNetRun(dtype="float16")


BF16_FORWARD = """
import sys, numpy as np, torch
from tinygrad import Tensor, dtypes
from tinybounty.data.coco_synth import CocoDetection, split_paths
from tinybounty.mlperf.retinanet_reference import reference_from, retinanet_loss
from tinybounty.mlperf.retinanet_train import RetinaNetRun, RetinaNetTrainer, box_loss, focal_loss
from tinybounty.models.retinanet import RetinaNetConfig
data = CocoDetection(*split_paths(sys.argv[1], "train"), 64)
tr = RetinaNetTrainer(RetinaNetRun(batch_size=2, dtype="bfloat16", model=RetinaNetConfig.tiny(3, 64)), data)
images, cls_t, box_t = tr.prepare(0)
logits, deltas = tr._model(Tensor(images))
cls_t = Tensor(cls_t, dtype=dtypes.int32)
got = Tensor.stack(focal_loss(logits, cls_t), box_loss(deltas, cls_t, Tensor(box_t))).tolist()  # one schedule: one forward
_, boxes, labels = tr.batch(0)
ref = retinanet_loss(*reference_from(tr.model, torch.float64)(torch.from_numpy(images).double()), torch.from_numpy(tr.anchors).double(),
                     [torch.from_numpy(b).double() for b in boxes], [torch.from_numpy(x) for x in labels])
print(*(abs(g - float(r)) / float(r) for g, r in zip(got, ref)))
"""


@pytest.mark.slow
def test_bfloat16_losses_are_within_bf16_rounding_of_the_float64_reference(coco):
  import os
  import subprocess
  import sys
  # DEV=CPU's clang 14 has no __bf16 type; tinygrad's LLVM renderer compiles bfloat16
  out = subprocess.run([sys.executable, "-c", BF16_FORWARD, str(coco)], env={**os.environ, "DEV": "CPU:LLVM"}, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  cls_err, box_err = (float(v) for v in out.stdout.split())
  # bf16 keeps 8 significant bits (unit roundoff 2**-9); over a few layers the loss keeps a few of them: 1e-2 is ~5 units,
  # and an error under float32's rounding would mean the model never ran in bf16
  assert 1e-6 < cls_err <= 1e-2 and box_err <= 1e-2, (cls_err, box_err)


def _run(**kw) -> RetinaNetRun:
  return RetinaNetRun(**{**dict(steps=3, batch_size=2, lr=1e-3, warmup_steps=1, model=RetinaNetConfig.tiny(3, 64, "batch")), **kw})


@pytest.mark.long  # three jitted training runs: minutes
def test_a_resumed_run_equals_an_unbroken_one(coco, tmp_path):
  train = CocoDetection(*split_paths(coco, "train"), 64)
  unbroken = train_retinanet(_run(), train, progress=False)
  first = train_retinanet(_run(steps=2), train, out_dir=tmp_path, progress=False)
  rest = train_retinanet(_run(), train, out_dir=tmp_path, resume=True, progress=False)
  assert [r["step"] for r in first + rest] == [0, 1, 2]
  assert [r["loss"] for r in first + rest] == [r["loss"] for r in unbroken]
  with pytest.raises(CheckpointError, match="differs in lr"): train_retinanet(_run(lr=5e-4), train, out_dir=tmp_path, resume=True)


def test_data_that_does_not_fit_the_model_is_refused(coco):
  data = CocoDetection(*split_paths(coco, "train"), 64)
  with pytest.raises(ValueError, match="3 categories, the model 5 classes"): RetinaNetTrainer(_run(model=RetinaNetConfig.tiny(5, 64)), data)
  with pytest.raises(ValueError, match="resized to 64, the model takes 96"):
    RetinaNetTrainer(_run(model=dataclasses.replace(RetinaNetConfig.tiny(3, 64), image_size=96)), data)


def _reference_loss(trainer: RetinaNetTrainer, step: int) -> float:
  """The float64 PyTorch reference's loss of the trainer's current weights on its batch `step`."""
  import torch

  from tinybounty.mlperf.retinanet_reference import reference_from, retinanet_loss
  images, boxes, labels = trainer.batch(step)
  logits, deltas = reference_from(trainer.model, torch.float64).train()(torch.from_numpy(images).double())
  c, r = retinanet_loss(logits, deltas, torch.from_numpy(trainer.anchors).double(), [torch.from_numpy(b).double() for b in boxes],
                        [torch.from_numpy(x) for x in labels])
  return float(c + r)


@pytest.mark.slow  # the short training run in CI: jitted steps, a pycocotools evaluation, a resumed leg
def test_cli_trains_evaluates_and_plots(tmp_path, capsys):
  from tinybounty.cli import main
  rc = main(["train", "retinanet", "--config", "tiny", "--image-size", "64", "--train-images", "8", "--val-images", "4", "--steps", "2",
             "--batch-size", "2", "--warmup-steps", "0", "--out", str(tmp_path), "--log", str(tmp_path / "log.json"),
             "--plot", str(tmp_path / "curve.png")])
  assert rc == 0
  log = json.loads((tmp_path / "log.json").read_text())
  assert [r["step"] for r in log] == [0, 1] and all(np.isfinite(r["loss"]) for r in log) and 0 <= log[-1]["mAP"] <= 1
  # the logged step-0 loss is the initial weights' on batch 0 (at lr 1e-3, a loss read after the update is ~1% off)
  run = RetinaNetRun(steps=2, batch_size=2, lr=1e-3, warmup_steps=0, model=RetinaNetConfig.tiny(3, 64))
  ref = _reference_loss(RetinaNetTrainer(run, CocoDetection(*split_paths(tmp_path / "coco", "train"), 64)), 0)
  assert abs(log[0]["loss"] - ref) <= TOL * ref, (log[0]["loss"], ref)
  assert (tmp_path / "retinanet.safetensors").stat().st_size > 0 and (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
  args = ["train", "retinanet", "--config", "tiny", "--image-size", "64", "--steps", "3", "--batch-size", "2", "--warmup-steps", "0",
          "--val-split", "", "--data", str(tmp_path / "coco"), "--out", str(tmp_path), "--log", str(tmp_path / "log.json"), "--resume"]
  assert main(args) == 0  # the resumed leg's log continues the first one's
  assert [r["step"] for r in json.loads((tmp_path / "log.json").read_text())] == [0, 1, 2]
  assert main(["train", "retinanet", "--data", str(tmp_path / "nowhere")]) == 2
  assert "no such annotation file" in capsys.readouterr().err
