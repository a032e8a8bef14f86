"""A small CUDA decoding script written the way pytorch-labs/gpt-fast's generate.py and model.py are: our own code, the
same constructs, for CI (gpt-fast itself is never copied here; tests run it too where its checkout is present).

Hard-coded 'cuda' as default device when torch.cuda.is_available(), a Llama model built on the meta device and
loaded with load_state_dict(assign=True) from a checkpoint in gpt-fast's format (its key names; the shape taken from
the directory's name), .to(device, bfloat16), KV caches made inside `with torch.device(device)` and written with
`k_cache[:, :, input_pos] = k` (index_put_), a rotary table from torch.polar read back through .real / .imag,
scaled_dot_product_attention with a boolean causal mask row picked by input_pos, RMSNorm in float32, SwiGLU, sampling
by top-k + softmax + exponential_ "multinomial without a sync", torch.compile(decode_one_token, mode="reduce-overhead",
fullgraph=True) under --compile, int8 weight-only linears under --int8, and torch.cuda.synchronize() timing:

  python -m tinybounty.torch_backend.run --device tiny tinybounty/runner/scripts/gpt_fast_like.py \\
      --checkpoint_path checkpoints/stories15M/model.pth --prompt "Hello" --max_new_tokens 32 --top_k 1
"""
import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tinybounty.runner.gpt_fast_checkpoint import shape_of

default_device = 'cuda' if torch.cuda.is_available() else 'cpu'


class KVCache(nn.Module):
  def __init__(self, batch, seq, heads, head_dim, dtype):
    super().__init__()
    self.register_buffer('k_cache', torch.zeros(batch, heads, seq, head_dim, dtype=dtype))
    self.register_buffer('v_cache', torch.zeros(batch, heads, seq, head_dim, dtype=dtype))

  def update(self, input_pos, k, v):
    self.k_cache[:, :, input_pos] = k
    self.v_cache[:, :, input_pos] = v
    return self.k_cache, self.v_cache


class Int8Linear(nn.Module):
  """Weight-only int8 per output channel: the weight is stored as int8 with a scale per row."""
  def __init__(self, in_features, out_features):
    super().__init__()
    self.register_buffer('weight', torch.empty(out_features, in_features, dtype=torch.int8))
    self.register_buffer('scales', torch.ones(out_features, dtype=torch.bfloat16))

  def forward(self, x):
    return F.linear(x, self.weight.to(dtype=x.dtype)) * self.scales


class RMSNorm(nn.Module):
  def __init__(self, dim, eps=1e-5):
    super().__init__()
    self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

  def forward(self, x):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope(x, table):
  pairs = x.float().reshape(*x.shape[:-1], -1, 2)
  table = table.view(1, pairs.size(1), 1, pairs.size(3), 2)
  out = torch.stack([pairs[..., 0] * table[..., 0] - pairs[..., 1] * table[..., 1],
                     pairs[..., 1] * table[..., 0] + pairs[..., 0] * table[..., 1]], -1)
  return out.flatten(3).type_as(x)


class Block(nn.Module):
  def __init__(self, s):
    super().__init__()
    self.s = s
    self.wqkv = nn.Linear(s.dim, (s.n_head + 2 * s.kv_heads) * s.head_dim, bias=False)
    self.wo = nn.Linear(s.dim, s.dim, bias=False)
    self.w1, self.w3 = nn.Linear(s.dim, s.hidden, bias=False), nn.Linear(s.dim, s.hidden, bias=False)
    self.w2 = nn.Linear(s.hidden, s.dim, bias=False)
    self.attention_norm, self.ffn_norm = RMSNorm(s.dim), RMSNorm(s.dim)
    self.kv_cache = None

  def forward(self, x, input_pos, table, mask):
    s, (b, t, _) = self.s, x.shape
    kv = s.kv_heads * s.head_dim
    q, k, v = self.wqkv(self.attention_norm(x)).split([s.dim, kv, kv], dim=-1)
    q, k = rope(q.view(b, t, s.n_head, s.head_dim), table), rope(k.view(b, t, s.kv_heads, s.head_dim), table)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
    k, v = self.kv_cache.update(input_pos, k, v)
    k, v = k.repeat_interleave(s.n_head // s.kv_heads, dim=1), v.repeat_interleave(s.n_head // s.kv_heads, dim=1)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0)
    h = x + self.wo(y.transpose(1, 2).contiguous().view(b, t, s.dim))
    f = self.ffn_norm(h)
    return h + self.w2(F.silu(self.w1(f)) * self.w3(f))


class Transformer(nn.Module):
  def __init__(self, s):
    super().__init__()
    self.s = s
    self.tok_embeddings = nn.Embedding(s.vocab_size, s.dim)
    self.layers = nn.ModuleList(Block(s) for _ in range(s.n_layer))
    self.norm, self.output = RMSNorm(s.dim), nn.Linear(s.dim, s.vocab_size, bias=False)

  def setup_caches(self, batch, seq):
    seq = (seq + 7) // 8 * 8
    dtype = self.output.scales.dtype if hasattr(self.output, 'scales') else self.output.weight.dtype
    for layer in self.layers: layer.kv_cache = KVCache(batch, seq, self.s.kv_heads, self.s.head_dim, dtype)
    freqs = 1.0 / (10000 ** (torch.arange(0, self.s.head_dim, 2).float() / self.s.head_dim))
    angles = torch.outer(torch.arange(self.s.block_size, device=freqs.device), freqs)
    cis = torch.polar(torch.ones_like(angles), angles)
    self.table = torch.stack([cis.real, cis.imag], dim=-1).to(dtype)
    self.causal_mask = torch.tril(torch.ones(seq, seq, dtype=torch.bool))

  def forward(self, idx, input_pos):
    mask, table = self.causal_mask[None, None, input_pos], self.table[input_pos]
    x = self.tok_embeddings(idx)
    for layer in self.layers: x = layer(x, input_pos, table, mask)
    return self.output(self.norm(x))


def load_state(model, sd):
  """gpt-fast's key names -> ours (attention.wqkv -> wqkv, feed_forward.w1 -> w1, ...)."""
  renamed = {k.replace('attention.wqkv', 'wqkv').replace('attention.wo', 'wo').replace('feed_forward.', ''): v for k, v in sd.items()}
  model.load_state_dict(renamed, assign=True)


def to_int8(model):
  """Replace every linear of the blocks and the output by Int8Linear with symmetric per-row int8 weights."""
  def convert(lin):
    w = lin.weight.float()
    scales = w.abs().amax(dim=1).clamp(min=1e-6) / 127
    q = Int8Linear(lin.in_features, lin.out_features).to(w.device)
    q.weight.copy_(torch.round(w / scales[:, None]).clamp(-128, 127).to(torch.int8))
    q.scales = scales.to(torch.bfloat16)
    return q
  for layer in model.layers:
    for name in ('wqkv', 'wo', 'w1', 'w2', 'w3'): setattr(layer, name, convert(getattr(layer, name)))
  model.output = convert(model.output)
  return model


def sample(logits, temperature, top_k):
  logits = logits[:, -1] / max(temperature, 1e-5)
  if top_k is not None:
    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
    logits = torch.where(logits < v.select(-1, -1).unsqueeze(-1), -float('Inf'), logits)
  probs = F.softmax(logits, dim=-1)
  q = torch.empty_like(probs).exponential_(1)
  return torch.argmax(probs / q, dim=-1, keepdim=True).to(dtype=torch.int)


def prefill(model, x, input_pos, temperature, top_k):
  return sample(model(x, input_pos), temperature, top_k)


def decode_one_token(model, x, input_pos, temperature, top_k):
  return sample(model(x, input_pos), temperature, top_k)


@torch.no_grad()
def generate(model, prompt, max_new_tokens, temperature, top_k):
  t = prompt.size(0)
  with torch.device(prompt.device): model.setup_caches(1, t + max_new_tokens)
  seq = torch.empty(t + max_new_tokens, dtype=prompt.dtype, device=prompt.device)
  seq[:t] = prompt
  tok = prefill(model, prompt.view(1, -1), torch.arange(0, t, device=prompt.device), temperature, top_k).clone()
  seq[t] = tok.view(())
  input_pos = torch.tensor([t], device=prompt.device, dtype=torch.int)
  for i in range(max_new_tokens - 1):
    tok = decode_one_token(model, tok.view(1, -1), input_pos, temperature, top_k).clone()
    input_pos += 1
    seq[t + 1 + i] = tok.view(())
  return seq


def main(a):
  import sentencepiece as spm
  device = a.device
  with torch.device('meta'): model = Transformer(shape_of(a.checkpoint_path.parent.name))
  load_state(model, torch.load(str(a.checkpoint_path), mmap=True, weights_only=True))
  model = model.to(device=device, dtype=torch.bfloat16).eval()
  if a.int8: model = to_int8(model)
  torch.cuda.synchronize()
  sp = spm.SentencePieceProcessor(str(a.checkpoint_path.parent / 'tokenizer.model'))
  prompt = torch.tensor([sp.bos_id()] + sp.EncodeAsIds(a.prompt), dtype=torch.int, device=device)
  global decode_one_token, prefill
  if a.compile: decode_one_token = torch.compile(decode_one_token, mode="reduce-overhead", fullgraph=True)
  if a.compile_prefill: prefill = torch.compile(prefill, fullgraph=True, dynamic=True)
  for i in range(-1 if a.compile else 0, a.num_samples):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    y = generate(model, prompt, a.max_new_tokens, a.temperature, a.top_k)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if i < 0: print(f"Compilation time: {dt:.2f} seconds"); continue
    print(sp.DecodeIds(y.tolist()))
    print(f"Time for inference {i + 1}: {dt:.02f} sec total, {a.max_new_tokens / dt:.02f} tokens/sec")
  return y


if __name__ == '__main__':
  p = argparse.ArgumentParser()
  p.add_argument('--prompt', default="Hello, my name is")
  p.add_argument('--num_samples', type=int, default=1)
  p.add_argument('--max_new_tokens', type=int, default=32)
  p.add_argument('--top_k', type=int, default=200)
  p.add_argument('--temperature', type=float, default=0.8)
  p.add_argument('--checkpoint_path', type=Path, required=True)
  p.add_argument('--compile', action='store_true')
  p.add_argument('--compile_prefill', action='store_true')
  p.add_argument('--int8', action='store_true', help="weight-only int8 linears (gpt-fast's quantize.py --mode int8 does this offline)")
  p.add_argument('--device', default=default_device)
  main(p.parse_args())
