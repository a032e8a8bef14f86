"""The native entry point of a CPU graph: one generated function that calls every kernel of a batch in order.

The entry takes one argument, a table of 64-bit words. Launch i owns `1 + len(args)` consecutive words: the kernel's
address, then its arguments (buffer addresses and variable values). The code only depends on the launches' shapes
(argument types and thread counts), never on addresses, so structurally equal batches share one compiled entry and the
device compiler's disk cache keeps it across processes. It is rendered in the toolchain that built the kernels: C for
tinygrad's clang backend (`DEV=CPU`), LLVM IR compiled by tinygrad's libLLVM for its LLVM backend (`DEV=CPU:LLVM`).
"""
from __future__ import annotations

import ctypes
import functools
import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

from tinygrad.device import Compiler, Device, TinyELF
from tinygrad.dtype import DType, dtypes
from tinygrad.helpers import Target
from tinygrad.runtime.ops_cpu import CPUProgram
from tinygrad.runtime.support.compiler_cpu import ClangCompiler


@dataclass(frozen=True)
class Launch:
  """One kernel launch: argument types (None: a buffer pointer, else an integer variable) and its threads.

  Like tinygrad's CPUProgram, the kernel runs `threads` times in a row, with t = 0..threads-1 passed as the argument at
  `core_id` if it has one.
  """
  args: tuple[DType | None, ...]
  threads: int = 1
  core_id: int | None = None

  @property
  def loops(self) -> bool: return self.threads > 1 or self.core_id is not None


def table_offsets(launches: Sequence[Launch]) -> list[int]:
  """Where each launch's words start in the entry's table (its kernel address; its arguments follow)."""
  return list(itertools.accumulate((1 + len(ln.args) for ln in launches[:-1]), initial=0))


def _c_type(dt: DType | None) -> str:
  if dt is None: return "void*"
  return ("unsigned " if dtypes.is_unsigned(dt) else "signed ") + {1: "char", 2: "short", 4: "int", 8: "long long"}[dt.itemsize]


def render_c(launches: Sequence[Launch], name: str = "cpugraph") -> str:
  """The entry as C: `void name(const unsigned long long *a)`."""
  sigs = list(dict.fromkeys(", ".join(map(_c_type, ln.args)) or "void" for ln in launches))
  lines = ["typedef unsigned long long u64;"] + [f"typedef void (*fn{i})({s});" for i, s in enumerate(sigs)]
  lines.append(f"void {name}(const u64 *restrict a) {{")
  for ln, off in zip(launches, table_offsets(launches)):
    fn = f"fn{sigs.index(', '.join(map(_c_type, ln.args)) or 'void')}"
    args = ", ".join("t" if k == ln.core_id else f"({_c_type(dt)})a[{off + 1 + k}]" for k, dt in enumerate(ln.args))
    call = f"(({fn})a[{off}])({args});"
    lines.append(f"  for (int t = 0; t < {ln.threads}; t++) {call}" if ln.loops else f"  {call}")
  return "\n".join(lines + ["}"])


def _llvm_type(dt: DType | None) -> str: return "ptr" if dt is None else f"i{8 * dt.itemsize}"


def render_llvm(launches: Sequence[Launch], name: str = "cpugraph") -> str:
  """The entry as LLVM IR (opaque pointers, LLVM >= 15): `void @name(ptr %a)`."""
  lines = [f"define void @{name}(ptr noalias %a) nounwind {{", "entry:"]
  for i, (ln, off) in enumerate(zip(launches, table_offsets(launches))):
    words = []
    for k in range(1 + len(ln.args)):
      lines += [f"  %p{i}_{k} = getelementptr inbounds i64, ptr %a, i64 {off + k}", f"  %w{i}_{k} = load i64, ptr %p{i}_{k}"]
      words.append(f"%w{i}_{k}")
    lines.append(f"  %f{i} = inttoptr i64 {words[0]} to ptr")
    args = []
    for k, dt in enumerate(ln.args):
      if k == ln.core_id: args.append(f"{_llvm_type(dt)} %t{i}"); continue
      cast = "inttoptr" if dt is None else "trunc" if dt.itemsize < 8 else None
      if cast is not None: lines.append(f"  %x{i}_{k} = {cast} i64 {words[k + 1]} to {_llvm_type(dt)}")
      args.append(f"{_llvm_type(dt)} " + (f"%x{i}_{k}" if cast is not None else words[k + 1]))
    call = f"  call void %f{i}({', '.join(args)})"
    if not ln.loops:
      lines.append(call)
      continue
    tdt = "i32" if ln.core_id is None else _llvm_type(ln.args[ln.core_id])
    lines += [f"  br label %pre{i}", f"pre{i}:", f"  br label %loop{i}", f"loop{i}:",
              f"  %t{i} = phi {tdt} [ 0, %pre{i} ], [ %n{i}, %loop{i} ]", call, f"  %n{i} = add {tdt} %t{i}, 1",
              f"  %c{i} = icmp slt {tdt} %n{i}, {ln.threads}", f"  br i1 %c{i}, label %loop{i}, label %done{i}", f"done{i}:"]
  return "\n".join(lines + ["  ret void", "}"])


@functools.cache
def _compiler(renderer: str, arch: str) -> Compiler:
  if renderer == "LLVM":  # imported here: loading tinygrad's LLVM bindings needs libLLVM, which the clang backend does not
    from tinygrad.runtime.support.compiler_llvm import CPULLVMCompiler
    return CPULLVMCompiler(arch.split(","))
  return ClangCompiler(arch.split(","))


@functools.cache
def _load(src: str, renderer: str, arch: str) -> tuple[Callable[[int], None], CPUProgram]:
  lib = _compiler(renderer, arch).compile_cached(src)
  prg = CPUProgram(Device["CPU"], TinyELF(lib, "cpugraph", Target("CPU", renderer, arch), ()))
  return ctypes.CFUNCTYPE(None, ctypes.c_void_p)(prg.addr), prg


def toolchain(target: Target) -> str:
  """What builds the entry for kernels of `target`: "LLVM" (LLVM IR, tinygrad's libLLVM) for the LLVM backend, else "CLANG" (C)."""
  return "LLVM" if target.renderer == "LLVM" else "CLANG"


def compile_entry(launches: Sequence[Launch], target: Target) -> Callable[[int], None]:
  """The compiled entry for these launches, built by the toolchain of `target`'s kernels.

  The result is called with the address of the table; it is cached per source text in this process and on disk.
  """
  tc = toolchain(target)
  return _load((render_llvm if tc == "LLVM" else render_c)(launches), tc, target.arch)[0]
