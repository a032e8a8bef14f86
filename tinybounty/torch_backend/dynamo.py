"""The "tiny" name for torch.compile: `torch.compile(model, backend="tiny")`, found two ways, as PyTorch expects of a
third-party backend.

- Installed (`pip install`), torch._dynamo finds it by the `torch_dynamo_backends` entry point in pyproject.toml
  (`tiny = tinybounty.torch_backend.dynamo:tiny`), with no import at all.
- Imported (`import tinybounty.torch_backend`, from a checkout on PYTHONPATH too), `install()` registers it in dynamo's
  registry: at once if torch._dynamo is loaded, else the moment it loads (importing torch._dynamo costs seconds, and
  most users of the device never compile). `uninstall()` takes the import hook and the registration back.

`tiny` itself is a thin function: the compiler (compile.py, aot_autograd and TinyJit) is imported on the first graph.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from typing import Any, Sequence

NAME = "tiny"
_REGISTRY = "torch._dynamo.backends.registry"


def tiny(gm: Any, example_inputs: Sequence[Any]) -> Any:
  """The "tiny" torch.compile backend: aot_autograd, forward and backward lowered through the op table (compile.py)."""
  from tinybounty.torch_backend import compile as tiny_compile
  return tiny_compile.tiny(gm, example_inputs)


def _register(registry: Any) -> None:
  # an entry point in the registry means dynamo is loading us through it and registers what it loads itself (a second
  # registration of the name would fail its duplicate check)
  if NAME in registry._COMPILER_FNS or registry._BACKENDS.get(NAME) is not None: return
  registry.register_backend(compiler_fn=tiny, name=NAME)
  _state["registered"] = True


class _RegisterOnImport(importlib.abc.MetaPathFinder):
  """Finds nothing itself: wraps the loader of dynamo's registry module so that loading it registers "tiny"."""
  def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
    if fullname != _REGISTRY: return None
    spec = importlib.machinery.PathFinder.find_spec(fullname, path)
    if spec is None or spec.loader is None: return None
    exec_module = spec.loader.exec_module
    def exec_and_register(module: Any) -> None:
      exec_module(module)
      _register(module)
    spec.loader.exec_module = exec_and_register  # type: ignore[method-assign]
    return spec


_state: dict[str, Any] = {}


def install() -> None:
  """Register "tiny" with torch._dynamo now if it is loaded, else when it loads. Idempotent."""
  if (registry := sys.modules.get(_REGISTRY)) is not None: return _register(registry)
  if "hook" not in _state:
    _state["hook"] = _RegisterOnImport()
    sys.meta_path.insert(0, _state["hook"])


def uninstall() -> None:
  """Remove the import hook, and the registration this module made (an entry point's stays dynamo's)."""
  if (hook := _state.pop("hook", None)) is not None and hook in sys.meta_path: sys.meta_path.remove(hook)
  if _state.pop("registered", False) and (registry := sys.modules.get(_REGISTRY)) is not None:
    registry._COMPILER_FNS.pop(NAME, None)
    registry._BACKENDS.pop(NAME, None)
