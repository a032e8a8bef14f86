"""The whole op table: importing this module imports every op family, each of which registers its aten overloads in
table.py (`aten`, `lookup`, `names`; the interface the eager device and the compile backend build on is described
there). The families import the table and never this module, so imports flow one way: ops -> families -> table.
"""
from tinybounty.torch_backend import creation, distance, elementwise, indexing, linalg, losses, matmul, pooling, reduce, reductions, shapes, special  # noqa: F401
from tinybounty.torch_backend.table import lookup, names, to_tiny_dtype, to_torch_dtype

__all__ = ["lookup", "names", "to_tiny_dtype", "to_torch_dtype"]
