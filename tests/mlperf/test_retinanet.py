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


@pytest.mark.slow  # the short training run in CI: jitted steps, a pycocotools evaluation, a resumed leg
def test_cli_trains_evaluates_and_plots(tmp_path, capsys):
  from tinybounty.cli import main
  rc = main(["train", "retinanet", "--config", "tiny", "--image-size", "64", "--train-images", "8", "--val-images", "4", "--steps", "2",
             "--batch-size", "2", "--out", str(tmp_path), "--log", str(tmp_path / "log.json"), "--plot", str(tmp_path / "curve.png")])
  assert rc == 0
  log = json.loads((tmp_path / "log.json").read_text())
  assert [r["step"] for r in log] == [0, 1] and all(np.isfinite(r["loss"]) for r in log) and 0 <= log[-1]["mAP"] <= 1
  assert (tmp_path / "retinanet.safetensors").stat().st_size > 0 and (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
  args = ["train", "retinanet", "--config", "tiny", "--image-size", "64", "--steps", "3", "--batch-size", "2", "--val-split", "",
          "--data", str(tmp_path / "coco"), "--out", str(tmp_path), "--log", str(tmp_path / "log.json"), "--resume"]
  assert main(args) == 0  # the resumed leg's log continues the first one's
  assert [r["step"] for r in json.loads((tmp_path / "log.json").read_text())] == [0, 1, 2]
  assert main(["train", "retinanet", "--data", str(tmp_path / "nowhere")]) == 2
  assert "no such annotation file" in capsys.readouterr().err
