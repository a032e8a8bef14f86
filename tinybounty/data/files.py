"""Writing data files so that a failed write never leaves a half-written file behind."""
from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
  """Open a temporary file beside `path` for binary writing; it replaces `path` only if the block completes."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    with os.fdopen(fd, "wb") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())  # the bytes are on disk before the name points at them
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
