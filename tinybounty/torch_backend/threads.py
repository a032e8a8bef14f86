"""Let tinygrad run on PyTorch's autograd thread.

PyTorch runs backward for a non-CPU device on a worker thread of its own, while the caller waits. tinygrad's compile
cache is one sqlite connection that refuses use from a thread other than its creator. `install()` opens that
connection allowing any thread (uses stay sequential: the caller blocks while backward runs); `uninstall()` closes it
and restores tinygrad's own, exactly as it was.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3

from tinygrad import helpers

_saved: list = []


def install() -> None:
  """Replace tinygrad's cache connection with one usable from any thread. Idempotent."""
  if _saved: return
  _saved.append(helpers._db_connection)
  os.makedirs(os.path.dirname(helpers.CACHEDB), exist_ok=True)
  conn = sqlite3.connect(helpers.CACHEDB, timeout=60, isolation_level="IMMEDIATE", check_same_thread=False)
  with contextlib.suppress(sqlite3.OperationalError): conn.execute("PRAGMA journal_mode=WAL").fetchone()
  conn.execute("PRAGMA synchronous=NORMAL")
  helpers._db_connection = conn


def uninstall() -> None:
  """Close the shared connection and put tinygrad's previous one back."""
  if not _saved: return
  helpers._db_connection.close()
  helpers._db_connection = _saved.pop()


def installed() -> bool:
  return bool(_saved)
