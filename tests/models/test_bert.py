"""BertEncoder against a PyTorch reference (embeddings + post-LN nn.TransformerEncoderLayer, erf GELU) with copied weights."""
import numpy as np
import torch
import torch.nn.functional as F
from tinygrad import Tensor

from tinybounty.models.bert import BertConfig, BertEncoder

T = lambda t: torch.from_numpy(t.numpy())


def torch_bert(model: BertEncoder, ids: Tensor, types: Tensor, mask: Tensor) -> np.ndarray:
  cfg = model.cfg
  x = F.embedding(T(ids).long(), T(model.word_embeddings.weight)) + T(model.position_embeddings.weight)[:ids.shape[1]]
  x = F.layer_norm(x + F.embedding(T(types).long(), T(model.token_type_embeddings.weight)), (cfg.dim,), T(model.ln.weight), T(model.ln.bias),
                   cfg.norm_eps)
  for ours in model.layers:
    layer = torch.nn.TransformerEncoderLayer(cfg.dim, cfg.n_heads, cfg.hidden_dim, dropout=0.0, activation="gelu", layer_norm_eps=cfg.norm_eps,
                                             batch_first=True, norm_first=False).eval()
    layer.load_state_dict({"self_attn.in_proj_weight": T(ours.qkv.weight), "self_attn.in_proj_bias": T(ours.qkv.bias),
                           "self_attn.out_proj.weight": T(ours.out.weight), "self_attn.out_proj.bias": T(ours.out.bias),
                           "linear1.weight": T(ours.fc1.weight), "linear1.bias": T(ours.fc1.bias),
                           "linear2.weight": T(ours.fc2.weight), "linear2.bias": T(ours.fc2.bias),
                           "norm1.weight": T(ours.ln1.weight), "norm1.bias": T(ours.ln1.bias),
                           "norm2.weight": T(ours.ln2.weight), "norm2.bias": T(ours.ln2.bias)})
    x = layer(x, src_key_padding_mask=T(mask) == 0)
  return x.detach().numpy()


def test_matches_torch_and_padding_is_ignored():
  cfg = BertConfig.tiny()
  model = BertEncoder(cfg)
  ids, types = Tensor.randint(2, 12, high=cfg.vocab_size).realize(), Tensor.randint(2, 12, high=2).realize()
  mask = Tensor([[1]*12, [1]*8 + [0]*4], dtype="int32").realize()
  out = model(ids, types, mask).numpy()
  np.testing.assert_allclose(out, torch_bert(model, ids, types, mask), atol=1e-4, rtol=1e-4)
  repadded = Tensor(np.concatenate([ids.numpy()[:, :8], (ids.numpy()[:, 8:] + 1) % cfg.vocab_size], axis=1)).cast(ids.dtype)
  out2 = model(repadded, types, mask).numpy()
  np.testing.assert_allclose(out2[1, :8], out[1, :8], atol=1e-5)  # padded tokens do not reach real ones
  assert np.abs(out2[0, 8:] - out[0, 8:]).max() > 1e-3  # while real tokens there do change the output
