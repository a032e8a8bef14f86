"""Streams and events for `torch.tiny`, as FSDP (fully_shard) asks of a device module.

The tiny device runs every op in program order (tinygrad schedules lazily, collectives complete on wait), so one
stream is all there is: a Stream's waits and events are already satisfied, and `torch.tiny.stream(s)` changes
nothing. FSDP creates separate all-gather and reduce-scatter streams to overlap them with compute; here they share
the program order, which is correct and merely does not overlap.
"""
from __future__ import annotations

import contextlib
from typing import Iterator


class Event:
  """A point in the (single) stream: always reached."""
  def query(self) -> bool: return True
  def synchronize(self) -> None: pass
  def wait(self, stream: Stream | None = None) -> None: pass
  def record(self, stream: Stream | None = None) -> None: pass


class Stream:
  """The tiny device's one stream under another name."""
  def __init__(self, device: object = None, priority: int = 0, **_: object) -> None:
    self.priority = priority

  def wait_stream(self, other: Stream) -> None: pass
  def wait_event(self, event: Event) -> None: pass
  def record_event(self, event: Event | None = None) -> Event: return event or Event()
  def synchronize(self) -> None: pass
  def query(self) -> bool: return True


_current = Stream()


def current_stream(device: object = None) -> Stream:
  return _current


@contextlib.contextmanager
def stream(s: Stream | None) -> Iterator[None]:
  yield


def install(module: object) -> None:
  """Give the device module (torch.tiny) Stream, Event, current_stream and stream."""
  for name, value in {"Stream": Stream, "Event": Event, "current_stream": staticmethod(current_stream), "stream": staticmethod(stream)}.items():
    setattr(type(module), name, value)
