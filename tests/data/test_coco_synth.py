"""The COCO-format detection set: what the generator draws is where its annotations say, and malformed sets fail clearly."""
import json

import numpy as np
import pytest

from tinybounty.data.coco_synth import MEAN, STD, CocoDetection, CocoError, split_paths, write_coco


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return write_coco(tmp_path_factory.mktemp("coco"), n_train=8, n_val=2, seed=1, max_objects=1)


def test_objects_are_drawn_inside_their_boxes(root):
  from PIL import Image
  images, ann = split_paths(root, "train")
  doc = json.loads(ann.read_text())
  assert [c["name"] for c in doc["categories"]] == ["square", "disc", "triangle"] and len(doc["images"]) == 8
  for a in doc["annotations"]:
    im = doc["images"][a["image_id"] - 1]
    px = np.asarray(Image.open(images / im["file_name"]).convert("RGB"), np.float32)
    x, y, w, h = a["bbox"]
    inside = px[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4].reshape(-1, 3)
    # one object per image: the centre of its box is one flat colour (JPEG noise aside), unlike the textured background
    assert inside.std(0).max() < 12 < px.reshape(-1, 3).std(0).max()


def test_resize_scales_boxes_and_flip_moves_them_with_the_pixels(root):
  ds = CocoDetection(*split_paths(root, "train"), 64)
  assert ds.images.shape == (8, 3, 64, 64) and ds.num_classes == 3
  (img,), (box,), _ = ds.batch(np.array([0]))
  (fimg,), (fbox,), _ = ds.batch(np.array([0]), np.array([True]))
  np.testing.assert_array_equal(fimg, img[:, :, ::-1])
  np.testing.assert_allclose(fbox[:, [0, 2]], 64 - box[:, [2, 0]])
  x1, y1, x2, y2 = np.round(box[0]).astype(int)
  fx1, fx2 = np.round(fbox[0, [0, 2]]).astype(int)
  # the object's flat colour sits inside the box before and after the flip
  assert img[:, y1 + 4:y2 - 4, x1 + 4:x2 - 4].std((1, 2)).max() < 0.3 and fimg[:, y1 + 4:y2 - 4, fx1 + 4:fx2 - 4].std((1, 2)).max() < 0.3
  pixel = img[:, (y1 + y2) // 2, (x1 + x2) // 2] * STD + MEAN  # normalization undone: back in [0, 1]
  assert (0 <= pixel).all() and (pixel <= 1).all()


def _broken(root, tmp_path, edit) -> CocoDetection:
  images, ann = split_paths(root, "train")
  doc = json.loads(ann.read_text())
  edit(doc)
  (bad := tmp_path / "bad.json").write_text(json.dumps(doc))
  return CocoDetection(images, bad, 64)


@pytest.mark.parametrize("edit, message", [
  (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "has bbox [1, 2, 3]"),
  (lambda d: d["annotations"][0].update(category_id=99), "unknown category 99"),
  (lambda d: d["annotations"][0].update(image_id=999), "unknown image 999"),
  (lambda d: d["images"][0].update(file_name="gone.jpg"), "gone.jpg: image 1"),
  (lambda d: d.pop("categories"), "lacks ['categories']"),
])
def test_malformed_sets_name_the_problem(root, tmp_path, edit, message):
  with pytest.raises(CocoError, match=message.replace("[", r"\[").replace("]", r"\]")): _broken(root, tmp_path, edit)


def test_missing_annotation_file(tmp_path):
  with pytest.raises(CocoError, match="no such annotation file"): CocoDetection(tmp_path, tmp_path / "instances_train.json", 64)
