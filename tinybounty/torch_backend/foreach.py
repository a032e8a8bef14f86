"""The optimizers' multi-tensor ops (`_foreach_add_`, `_foreach_addcdiv_`, `_foreach_lerp_`, `_foreach_sqrt` ...) as one
kernel call over the whole list.

PyTorch picks the foreach path for every optimizer on the tiny device (a PrivateUse1 device is on its foreach list),
and without kernels of ours the dispatcher ran PyTorch's slow composite: one op per parameter, each through the whole
Python-backend seam (~40 us) and, under capture, recorded as its own op. AdamW on ten layers was 140 recorded ops a
step. Here a foreach overload whose element-wise twin is in the op table (`_foreach_add.List` -> `add.Tensor`,
`_foreach_div_.ScalarList` -> `div.Scalar`, matched argument by argument on their schemas) runs that twin on each
element and writes the results, as one dispatch and, under capture, one recorded op (kind "I": a list of in-place
targets). Overloads without such a twin keep PyTorch's composite. An in-place call whose targets share a storage, or
whose other arguments read another element's target, runs element by element, as PyTorch's does, so an element sees
the writes before it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from tinybounty.torch_backend import device, ops


def _element_type(t: Any) -> str:
  s = str(t)
  return s[5:-1] if s.startswith("List[") else s


def _twin(schema: torch._C.FunctionSchema, table: set[str]) -> tuple[str, torch._C.FunctionSchema] | None:
  """The table overload computing one element of a foreach overload, matched by argument position and type."""
  base = schema.name.removeprefix("aten::_foreach_").removesuffix("_")
  candidates = {"List": ("Tensor", "default"), "Scalar": ("Scalar", "default"), "ScalarList": ("Scalar", "default"),
                "Tensor": ("Tensor", "default"), "": ("default",)}.get(schema.overload_name, ())
  for ov in candidates:
    name = f"{base}.{ov}"
    if name not in table or (op := device._overload(name)) is None: continue
    want, have = op._schema.arguments, schema.arguments
    if len(have) > len(want) or any(not a.has_default_value() for a in want[len(have):]): continue
    if all(_element_type(h.type) == str(w.type) for h, w in zip(have, want)): return name, op._schema
  return None


def _split(schema: torch._C.FunctionSchema, twin: torch._C.FunctionSchema) -> Callable[[tuple, dict], list[tuple[tuple, dict]]]:
  """A function turning a foreach call's arguments into each element's (args, kwargs) for the twin."""
  lists = [str(a.type).startswith("List[") for a in schema.arguments]
  names = [a.name for a in schema.arguments]
  kw_only = {w.name for w in twin.arguments if w.kwarg_only}
  wnames = [w.name for w in twin.arguments]
  def split(args: tuple, kwargs: dict) -> list[tuple[tuple, dict]]:
    full = list(args) + [kwargs[n] for n in names[len(args):] if n in kwargs]
    n = len(full[0])
    for a, is_list in zip(full, lists):
      if is_list and len(a) != n: raise RuntimeError(f"tiny: {schema.name}: every list argument needs {n} elements, got {len(a)}")
    out = []
    for i in range(n):
      vals = [a[i] if is_list else a for a, is_list in zip(full, lists)]
      pos = tuple(v for v, w in zip(vals, wnames) if w not in kw_only)
      out.append((pos, {w: v for v, w in zip(vals, wnames) if w in kw_only}))
    return out
  return split


def _aliased(targets: list[torch.Tensor], args: tuple, kwargs: dict) -> bool:
  """Whether a target shares a storage with another target (or is not tiny), or an argument of one element reads
  another element's target (a single tensor argument read by every element: any target)."""
  owner: dict[int, int] = {}
  for i, t in enumerate(targets):
    if (st := device.tiny_storage(t)) is None or owner.setdefault(id(st), i) != i: return True
  for a in (*args[1:], *kwargs.values()):
    if isinstance(a, (list, tuple)):
      if any(owner.get(id(device.tiny_storage(x)), i) != i for i, x in enumerate(a)): return True
    elif id(device.tiny_storage(a)) in owner: return True
  return False


def _kernels(name: str, schema: torch._C.FunctionSchema, twin_name: str, twin: torch._C.FunctionSchema) -> Callable:
  split, fn = _split(schema, twin), ops.lookup(twin_name)
  def each(*args: Any, **kwargs: Any) -> list:
    """The table's results for every element (tinygrad Tensors in, tinygrad Tensors out)."""
    return [fn(*a, **k) for a, k in split(args, kwargs)]
  each.__qualname__ = each.__name__ = name  # capture's reasons name the op
  each.foreach = True  # type: ignore[attr-defined]  # capture.py: every element runs the same op (its scalar rule)
  if not schema.name.endswith("_"): return device.functional_kernel(each)
  base, ov = twin_name.split(".")
  inplace_twin, uniform = device._overload(f"{base}_.{ov}"), base in ("fill", "zero")  # zero_ writes through broadcast dims

  def eager(*args: Any, **kwargs: Any) -> None:
    for t, v in zip(args[0], each(*device._unwrap_args(args), **device._unwrap_args(kwargs))): device.write(t, v, uniform)

  def kernel(*args: Any, **kwargs: Any) -> None:
    if not args[0]: return None
    if _aliased(args[0], args, kwargs):
      if inplace_twin is None: raise NotImplementedError(f"tiny: {name} with targets that alias each other")
      for a, k in split(args, kwargs): inplace_twin(*a, **k)
      return None
    device.dispatch_hook("I", each, eager, args, kwargs, uniform)
    return None
  return kernel


def install() -> list[str]:
  """Register a kernel for every foreach overload with an element-wise twin in the table; returns their names."""
  table, done = set(ops.names()), []
  for schema in torch._C._jit_get_all_schemas():
    if not schema.name.startswith("aten::_foreach_") or schema.overload_name.endswith("out") or "out" in schema.overload_name.split("_"): continue
    if schema.returns and not all(str(r.type) == "List[Tensor]" for r in schema.returns): continue
    if (found := _twin(schema, table)) is None: continue
    name = schema.name.removeprefix("aten::") + (f".{schema.overload_name}" if schema.overload_name else "")
    device._impl(name, _kernels(name, schema, *found))
    done.append(name)
  return done
