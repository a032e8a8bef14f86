"""scatter on tiny against PyTorch CPU: duplicate indices (the last wins), signed zeros, every dtype kind, and index
lengths where tinygrad's own scatter (a `where` chain as deep as the index) overflowed Python's recursion."""
import numpy as np
import pytest
import torch

import tinybounty.torch_backend  # noqa: F401


@pytest.mark.parametrize("shape, index_shape, dim", [((5,), (8,), 0), ((4, 6), (3, 5), 1), ((4, 6), (7, 2), 0), ((3, 4, 5), (2, 4, 3), 1),
                                                     ((3, 4, 5), (3, 2, 9), 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64, torch.bool])
def test_scatter_matches_cpu(shape, index_shape, dim, dtype):
  rng = np.random.default_rng(sum(shape) + dim)
  self = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
  src = torch.from_numpy(rng.standard_normal(tuple(max(a, b) for a, b in zip(shape, index_shape))).astype(np.float32))
  self[0], src[..., 0] = -0.0, -0.0
  self, src = (self > 0, src > 0) if dtype == torch.bool else (self.to(dtype), src.to(dtype))
  index = torch.from_numpy(rng.integers(0, shape[dim], index_shape))  # with duplicates
  want = self.scatter(dim, index, src)
  got = self.to("tiny").scatter(dim, index.to("tiny"), src.to("tiny")).cpu()
  assert torch.equal(got, want)
  if dtype.is_floating_point: assert torch.equal(got.signbit(), want.signbit())
  assert torch.equal(self.to("tiny").scatter(dim, index.to("tiny"), 3).cpu(), self.scatter(dim, index, 3))


def test_sort_backward_of_thousands():
  x = (torch.randperm(8000) - 4000).float() / 7  # no ties: sort's index order is then unique
  t = x.to("tiny").requires_grad_()
  values, _ = torch.sort(t)
  (values * torch.arange(8000, device="tiny")).sum().backward()
  ref = x.clone().requires_grad_()
  (torch.sort(ref)[0] * torch.arange(8000)).sum().backward()
  assert torch.equal(t.grad.cpu(), ref.grad)
