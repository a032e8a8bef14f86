import pytest
from tinygrad.nn.state import get_parameters

from tinybounty.models.resnet import ResNet, resnet18, resnet50


@pytest.mark.parametrize("make, count", [(resnet18, 11_689_512), (resnet50, 25_557_032)], ids=["resnet18", "resnet50"])
def test_parameter_count_matches_torchvision(make, count):
  assert sum(p.numel() for p in get_parameters(make()) if p.is_param) == count


def test_bad_depth_is_an_error():
  with pytest.raises(ValueError, match="depth"): ResNet(19)
