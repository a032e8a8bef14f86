"""nn.TransformerEncoderLayer and nn.MultiheadAttention in eval mode without grad: PyTorch takes its fused fast path on
the tiny device too (`_transformer_encoder_layer_fwd`, `_native_multi_head_attention`); tiny's kernels equal the CPU's."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tinybounty.torch_backend  # noqa: F401 - registers the device


class _Ops(TorchDispatchMode):
  """Every aten op name that reaches the dispatcher under it: shows the fused fast path was taken."""
  def __init__(self) -> None:
    super().__init__()
    self.seen: set[str] = set()

  def __torch_dispatch__(self, func, types, args=(), kwargs=None):
    self.seen.add(func.name())
    return func(*args, **(kwargs or {}))


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
  torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("padding", [False, True], ids=["no mask", "key padding"])
def test_encoder_layer_fast_path_matches_the_cpu(norm_first, activation, padding):
  torch.manual_seed(0)
  layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first).eval()
  x = torch.randn(2, 5, 16)
  pad = torch.tensor([[False] * 5, [False, False, False, True, True]]) if padding else None
  with torch.no_grad():
    want = layer(x, src_key_padding_mask=pad)
    with _Ops() as ops: got = layer.to("tiny")(x.to("tiny"), src_key_padding_mask=None if pad is None else pad.to("tiny"))
  assert "aten::_transformer_encoder_layer_fwd" in ops.seen
  _close(got, want)


def test_the_fused_op_itself_matches_the_cpu():
  torch.manual_seed(1)
  layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
  args = (torch.randn(3, 4, 8), 8, 2, layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias, layer.self_attn.out_proj.weight,
          layer.self_attn.out_proj.bias, True, False, 1e-5, layer.norm1.weight, layer.norm1.bias, layer.norm2.weight, layer.norm2.bias,
          layer.linear1.weight, layer.linear1.bias, layer.linear2.weight, layer.linear2.bias)
  with torch.no_grad():
    want = torch.ops.aten._transformer_encoder_layer_fwd(*args)
    got = torch.ops.aten._transformer_encoder_layer_fwd(*(a.to("tiny") if isinstance(a, torch.Tensor) else a for a in args))
  _close(got, want)


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_attention_fast_path_matches_the_cpu(need_weights):
  torch.manual_seed(2)
  mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
  x = torch.randn(2, 5, 16)  # self-attention: PyTorch takes the fast path only when query, key and value are one tensor
  with torch.no_grad():
    want = mha(x, x, x, need_weights=need_weights)
    mha.to("tiny")
    xt = x.to("tiny")
    with _Ops() as ops: got = mha(xt, xt, xt, need_weights=need_weights)
  assert "aten::_native_multi_head_attention" in ops.seen
  _close(got[0], want[0])
  if need_weights: _close(got[1], want[1])
