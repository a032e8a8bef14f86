"""RetinaNet's host-side box arithmetic against hand-computed cases, the torch reference's independent matcher, and pycocotools."""
import numpy as np
import pytest
import torch

from tinybounty.data.coco_synth import CocoDetection, split_paths, write_coco
from tinybounty.mlperf import retinanet_boxes as rb
from tinybounty.mlperf import retinanet_reference as ref
from tinybounty.mlperf.retinanet_train import coco_map


def test_anchors_are_torchvision_s_layout():
  a = rb.anchors(64, (32, 64, 128, 256, 512))
  assert rb.level_shapes(64, 5) == [8, 4, 2, 1, 1]
  assert a.shape == ((64 + 16 + 4 + 1 + 1) * 9, 4)
  # first location of P3: aspect 0.5 (w = 32 / sqrt(0.5) = 45.25, h = 22.63) halved and rounded; then scale 2^(1/3): 40.32
  # wide before the aspect, w = 57.02 and h = 28.51
  np.testing.assert_array_equal(a[0], [-23, -11, 23, 11])
  np.testing.assert_array_equal(a[1], [-29, -14, 29, 14])
  np.testing.assert_array_equal(a[4], [-20, -20, 20, 20])  # aspect 1, scale 2^(1/3): 40.3 wide
  np.testing.assert_array_equal(a[9] - a[0], [8, 0, 8, 0])  # the next location is one stride (8 px) to the right
  np.testing.assert_array_equal(a[8 * 9] - a[0], [0, 8, 0, 8])  # row-major: the 9th location starts the second row
  # P6 of an 800 px image: 13 cells, stride 800 // 13 = 61 as torchvision computes it
  big = rb.anchors(800, (32, 64, 128, 256, 512))
  p6 = big[sum(s * s for s in rb.level_shapes(800, 5)[:3]) * 9:][9] - big[sum(s * s for s in rb.level_shapes(800, 5)[:3]) * 9:][0]
  np.testing.assert_array_equal(p6, [61, 0, 61, 0])


def test_match_thresholds_and_low_quality_matches():
  gt = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], np.float32)
  anchors = np.array([[0, 0, 10, 12],      # IoU 0.83 with gt 0: foreground
                      [0, 0, 10, 22],      # IoU 0.45: ignored
                      [0, 0, 10, 40],      # IoU 0.25: background
                      [100, 100, 110, 140],  # IoU 0.25 with gt 1, its best anchor: a low-quality match
                      [200, 200, 210, 210]], np.float32)
  np.testing.assert_array_equal(rb.match(gt, anchors), [0, rb.IGNORED, rb.BACKGROUND, 1, rb.BACKGROUND])
  assert (rb.match(np.zeros((0, 4), np.float32), anchors) == rb.BACKGROUND).all()


def test_numpy_matcher_equals_the_torch_reference_s_on_random_scenes():
  rng = np.random.default_rng(0)
  anchors = rb.anchors(128, (32, 64, 128, 256, 512))
  for _ in range(30):
    xy = rng.uniform(0, 100, (int(rng.integers(1, 6)), 2))
    gt = np.concatenate([xy, xy + rng.uniform(8, 60, xy.shape)], 1).astype(np.float32)
    np.testing.assert_array_equal(rb.match(gt, anchors), ref.matcher(torch.tensor(gt), torch.tensor(anchors)).numpy())


def test_encode_decode_round_trip_and_reference_codes():
  rng = np.random.default_rng(1)
  a = np.concatenate([xy := rng.uniform(0, 50, (20, 2)), xy + rng.uniform(5, 40, (20, 2))], 1)
  g = np.concatenate([xy := rng.uniform(0, 50, (20, 2)), xy + rng.uniform(5, 40, (20, 2))], 1)
  np.testing.assert_allclose(rb.decode(rb.encode(g, a), a), g, rtol=1e-12, atol=1e-9)
  np.testing.assert_allclose(rb.encode(g, a), ref.encode(torch.tensor(g), torch.tensor(a)).numpy(), rtol=1e-12, atol=1e-12)


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
  boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]], np.float32)
  np.testing.assert_array_equal(rb.nms(boxes, np.array([0.5, 0.9, 0.1]), 0.5), [1, 2])
  np.testing.assert_array_equal(rb.nms(boxes, np.array([0.5, 0.9, 0.1]), 0.9), [1, 0, 2])  # IoU 0.82 survives a 0.9 threshold


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
  root = write_coco(tmp_path_factory.mktemp("coco"), n_train=6, n_val=6, seed=3)
  return CocoDetection(*split_paths(root, "val"), 64)


def test_coco_map_of_the_ground_truth_is_one_and_of_shifted_boxes_lower(coco):
  perfect = [(b, np.ones(len(b)), lab) for b, lab in zip(coco.boxes, coco.labels)]
  assert coco_map(coco, perfect)["mAP"] == pytest.approx(1.0)
  # wrong class on every box: nothing is found
  assert coco_map(coco, [(b, s, (lab + 1) % coco.num_classes) for b, s, lab in perfect])["mAP"] == 0.0
  # boxes moved by a quarter of their width: IoU 0.6, found at AP50 but not at the stricter thresholds
  moved = [(b + np.stack([(b[:, 2] - b[:, 0]) / 4, 0 * b[:, 0]] * 2, 1), s, lab) for b, s, lab in perfect]
  m = coco_map(coco, moved)
  assert m["AP50"] == pytest.approx(1.0) and 0.1 < m["mAP"] < 0.5


def test_detect_decodes_the_anchors_it_scores():
  anchors = rb.anchors(64, (32, 64, 128, 256, 512))
  counts = [s * s * 9 for s in rb.level_shapes(64, 5)]
  logits = np.full((len(anchors), 3), -10.0, np.float32)
  deltas = np.zeros((len(anchors), 4), np.float32)
  logits[40, 2], deltas[40] = 5.0, [0.1, -0.2, np.log(1.5), 0.0]
  boxes, scores, labels = rb.detect(logits, deltas, anchors, 64, counts)
  assert len(boxes) == 1 and labels[0] == 2 and scores[0] == pytest.approx(1 / (1 + np.exp(-5.0)))
  np.testing.assert_allclose(boxes[0], np.clip(rb.decode(deltas[40:41], anchors[40:41])[0], 0, 64), rtol=1e-6)
