"""Python scalars meeting integer and bool tensors: the result has PyTorch's dtype and value, and tinygrad's weak dtypes
(internal to its promotion) never reach a storage. transformers' causal-LM loss pads int64 labels with -100 (a float
through F.pad's signature) and slices them: that raised "viewing dtypes.weakfloat storage as torch.float32"."""
import pytest
import torch
import torch.nn.functional as F
from tinygrad import dtypes

import tinybounty.torch_backend  # noqa: F401
from tinybounty.torch_backend import device

CASES = {
  "pad_int64_float_value": lambda t: F.pad(t, (0, 1), value=-100),
  "pad_int64_fraction_truncates": lambda t: F.pad(t, (1, -1), value=2.5),
  "pad_bool": lambda t: F.pad(t > 0, (1, 1), value=True),
  "pad_then_slice": lambda t: F.pad(t, (0, 1), value=-100)[..., 1:].contiguous(),
  "int_plus_float": lambda t: t + 1.5,
  "int_times_float_then_view": lambda t: (t * 2.0).t()[1:],
  "bool_times_float": lambda t: (t > 0) * 1.5,
  "uint8_plus_float": lambda t: t.to(torch.uint8) + 1.5,
  "where_int_float_scalar": lambda t: torch.where(t > 0, t, 1.5),
  "clamp_int_float_bounds": lambda t: t.clamp(0.5, 2.5),
  "masked_fill_int_float": lambda t: t.masked_fill(t > 0, 2.7),
  "copysign_scalar": lambda t: torch.copysign(t, -1.5),
  "xlogy_scalar": lambda t: torch.xlogy(t, 2.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_scalar_results_have_pytorchs_dtype_and_value(name):
  x = torch.tensor([[1, -2, 3], [4, 5, -6]])
  ref, got = CASES[name](x), CASES[name](x.to("tiny"))
  assert got.dtype == ref.dtype
  assert device._storage(got).buf.dtype not in dtypes.weaks
  torch.testing.assert_close(got.cpu(), ref, rtol=0, atol=0)


def test_default_dtype_decides_a_weak_float_result():
  torch.set_default_dtype(torch.float64)
  try:
    got, ref = torch.arange(3).to("tiny") * 0.1, torch.arange(3) * 0.1
  finally:
    torch.set_default_dtype(torch.float32)
  assert got.dtype == ref.dtype == torch.float64
  torch.testing.assert_close(got.cpu(), ref, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_causal_lm_loss_with_labels(arch):
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  if arch == "llama":
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                                  num_attention_heads=2, num_key_value_heads=2))
  else:
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=16,
                                                                 bos_token_id=0, eos_token_id=0))
  model.eval()  # no dropout: the two devices draw different streams
  ids = torch.randint(0, 64, (2, 8))
  ref = model(ids, labels=ids).loss
  # float64 reference: the bound is PyTorch float32's own error against it (never below 1e-6 of the loss)
  exact = model.double()(ids, labels=ids).loss.float()
  got = model.float().to("tiny")(ids.to("tiny"), labels=ids.to("tiny")).loss.cpu()
  bound = max(10 * (ref - exact).abs().item(), 1e-6 * exact.abs().item())
  assert (got - exact).abs().item() <= bound
