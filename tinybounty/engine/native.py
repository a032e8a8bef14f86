"""The C rewrite loop (loop.c), compiled on first use with the system C compiler and loaded with importlib.

The shared object is cached under tinygrad's cache directory (`$XDG_CACHE_HOME/tinygrad/tinybounty`, or
`TINYBOUNTY_NATIVE_CACHE`), named by a hash of the source, the compiler command and the Python version, and written to a
temporary file then renamed, so a failed or concurrent build never leaves a half-written module. `bind()` hands it
tinygrad's objects (UOp's slots, a few Ops, the hash-consing cache, stock's constructor for the cases it leaves to stock)
and returns its C fast paths: `UOpMetaClass.__call__`, `recursive_property.__get__`, `UOp.__del__`,
`UOp.toposort` and `RewriteContext.walk_rewrite`. `load()` raises
NativeUnavailable naming the problem (no compiler, no Python.h, a compile error); `TINYBOUNTY_NATIVE=0` turns it off.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from tinygrad.dtype import AddrSpace, DType, Invalid, dtypes, least_upper_dtype
from tinygrad.helpers import DISALLOW_BROADCAST, SPEC, cache_dir
from tinygrad.mixin.elementwise import ElementwiseMixin
from tinygrad.uop.ops import BottomUpGate, Ops, RewriteContext, UOp, UOpMetaClass, recursive_property

from tinybounty.engine import hot
from tinybounty.engine.hot import ABSENT, DTYPE_TABLE, STOCK, dtype_of, recursive_property_get, shape_of, toposort
from tinybounty.engine.rewrite import native_simplify, native_walk_rewrite

SOURCE = Path(__file__).with_name("loop.c")
INCLUDED = [Path(__file__).with_name("rules.c")]  # #included by loop.c: part of the module's hash
FLAGS = ["-O2", "-shared", "-fPIC", "-fno-strict-aliasing"]
_loaded: dict[str, ModuleType] = {}


class NativeUnavailable(RuntimeError):
  """The C loop cannot be built or loaded here; the message says why."""


def _compiler() -> str:
  if cc := os.environ.get("CC"):
    if path := shutil.which(cc.split()[0]): return path
    raise NativeUnavailable(f"CC={cc} is not an executable")
  for cc in (sysconfig.get_config_var("CC"), "clang", "gcc", "cc"):
    if cc and (path := shutil.which(cc.split()[0])): return path
  raise NativeUnavailable("no C compiler found (set CC, or install clang: scripts/setup does)")


def _build(target: Path) -> None:
  include = sysconfig.get_paths()["include"]
  if not (Path(include) / "Python.h").exists():
    raise NativeUnavailable(f"Python.h not found in {include}: install this Python's development headers (python3-dev on Debian)")
  cmd = [_compiler(), *FLAGS, f"-I{include}", str(SOURCE), "-o"]
  target.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=target.parent)
  os.close(fd)
  try:
    proc = subprocess.run([*cmd, tmp], capture_output=True, text=True)
    if proc.returncode != 0: raise NativeUnavailable(f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")
    os.replace(tmp, target)
  finally:
    if os.path.exists(tmp): os.unlink(tmp)


def module_path() -> Path:
  """Where the compiled loop for this source, compiler flags and Python lives (built or not)."""
  source = SOURCE.read_bytes() + b"".join(p.read_bytes() for p in INCLUDED)
  key = hashlib.sha256(source + " ".join(FLAGS).encode() + sys.version.encode()).hexdigest()[:16]
  root = Path(os.environ.get("TINYBOUNTY_NATIVE_CACHE") or Path(cache_dir) / "tinybounty")
  return root / f"_loop_{key}{sysconfig.get_config_var('EXT_SUFFIX')}"


def load() -> ModuleType:
  """The compiled C loop module, built first if needed (raises NativeUnavailable with the reason)."""
  if (mod := _loaded.get("loop")) is not None: return mod
  if os.environ.get("TINYBOUNTY_NATIVE", "1") in ("", "0"): raise NativeUnavailable("turned off by TINYBOUNTY_NATIVE=0")
  if not (path := module_path()).exists(): _build(path)
  spec = importlib.util.spec_from_file_location("tinybounty.engine._loop", path)
  if spec is None or spec.loader is None: raise NativeUnavailable(f"cannot load {path}")
  try:
    spec.loader.exec_module(mod := importlib.util.module_from_spec(spec))
  except ImportError as e:
    raise NativeUnavailable(f"loading {path} failed: {e}") from e
  _loaded["loop"] = mod
  return mod


STOCK_NATIVE = {"uop_del": UOp.__dict__["__del__"], "walk_rewrite": RewriteContext.__dict__["walk_rewrite"],
                "shape_property": UOp.__dict__["shape"], "index": UOp.__dict__["index"], "const": UOp.__dict__["const"],
                "binop": UOp.__dict__.get("_binop", ABSENT), "simplify": UOp.__dict__["simplify"]}


def bind() -> tuple[ModuleType, dict[str, tuple[Any, str, Any]]]:
  """The C module set up with tinygrad's objects, and its patches, name -> (owner, attribute, ours): the fast paths that
  replace hot.PATCHES entries of the same name, and those only the C engine has (stock's are in STOCK_NATIVE)."""
  mod = load()
  if (patches := _bound.get(mod)) is None:
    objects = {"UOp": UOp, "ucache": UOpMetaClass.ucache, "SPEC": SPEC, "BottomUpGate": BottomUpGate, "ALU": AddrSpace.ALU,
               "opaque_bodies": UOp._OPAQUE_CALL_BODIES, **{op: Ops[op] for op in ("BUFFER", "FUNCTION", "CALL", "CONST", "CAST", "BITCAST",
               "WHERE", "INDEX", "PARAM")}, "DType": DType, **{d: getattr(dtypes, d) for d in ("void", "bool", "weakint", "weakfloat")},
               **dict(zip(("dtype_table", "FIRST", "PROMO"), DTYPE_TABLE)), "dtype_of": dtype_of, "stock_call": STOCK["uop_call"],
               "stock_init": UOp.__init__, "stock_del": STOCK_NATIVE["uop_del"], "toposort": toposort, "recursive_get": recursive_property_get,
               "shape_kind": hot.SHAPE_KIND, "shape_of": shape_of, "DISALLOW_BROADCAST": DISALLOW_BROADCAST, "STACK": Ops.STACK,
               "int_dtypes": (*dtypes.ints, dtypes.weakint), "least_upper_dtype": least_upper_dtype,
               "movement_or_detach": set(hot.MOVEMENT_OR_DETACH), "Invalid": Invalid, "stock_index": STOCK_NATIVE["index"],
               "stock_const": STOCK_NATIVE["const"].__func__,
               "stock_binop": ElementwiseMixin._binop, "stock_shape_fget": STOCK_NATIVE["shape_property"].fget,
               "shape_nm": hot.SHAPE_PROP.nm, "ADD": Ops.ADD, "MUL": Ops.MUL, "FLOORMOD": Ops.FLOORMOD}
    call, get, delete, topo, index, binop = mod.setup(objects, UOpMetaClass, recursive_property)
    patches = _bound[mod] = {"uop_call": (UOpMetaClass, "__call__", call), "recursive_property": (recursive_property, "__get__", get),
                             "uop_del": (UOp, "__del__", delete), "toposort": (UOp, "toposort", topo),
                             "walk_rewrite": (RewriteContext, "walk_rewrite", native_walk_rewrite(mod)),
                             "shape": (hot.SHAPE_PROP, "fxn", mod.shape_rule), "shape_property": (UOp, "shape", property(mod.shape_get)),
                             "index": (UOp, "index", index), "const": (UOp, "const", staticmethod(mod.const)), "binop": (UOp, "_binop", binop),
                             "simplify": (UOp, "simplify", native_simplify(mod))}
  return mod, patches


_bound: dict[ModuleType, dict[str, tuple[Any, str, Any]]] = {}
