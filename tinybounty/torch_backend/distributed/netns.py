"""Two "machines" on one host: network namespaces joined by a veth pair, each with its own address.

`machines()` creates namespaces tb<pid>a / tb<pid>b with addresses 10.<x>.<y>.1 and .2 on a veth pair (iproute2's
`ip netns add`, `ip link add ... type veth`), yields them, and deletes them on exit (the veth pair goes with them).
A process started with a machine's `prefix` (`ip netns exec NAME`) sees only that namespace's interfaces, so torchrun,
the c10d rendezvous and gloo talk over the veth link exactly as over a network between two hosts. Where namespaces are
not permitted (no CAP_SYS_ADMIN / CAP_NET_ADMIN, no iproute2), the machines are two loopback addresses of this host
(127.0.0.1 and 127.0.0.2, no prefix): the same launch and traffic, but one network stack; `kind` says which.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Machine:
  name: str
  addr: str
  ifname: str
  prefix: tuple[str, ...]  # the command prefix that runs a program on this machine
  kind: str  # "netns" or "loopback"


def _ip(*args: str) -> None:
  subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def namespaces_permitted() -> bool:
  """Whether this process may create network namespaces (tried, then removed)."""
  if shutil.which("ip") is None: return False
  name = f"tbprobe{os.getpid()}"
  try:
    _ip("netns", "add", name)
  except subprocess.CalledProcessError:
    return False
  _ip("netns", "del", name)
  return True


@contextlib.contextmanager
def machines() -> Iterator[list[Machine]]:
  """Two machines that reach each other by address; cleaned up on exit, also after an error."""
  if not namespaces_permitted():
    yield [Machine("loopback-a", "127.0.0.1", "lo", (), "loopback"), Machine("loopback-b", "127.0.0.2", "lo", (), "loopback")]
    return
  pid = os.getpid()
  a, b = f"tb{pid}a", f"tb{pid}b"
  subnet = f"10.{100 + pid % 100}.{pid // 100 % 250}"
  made: list[str] = []
  try:
    for ns in (a, b):
      _ip("netns", "add", ns)
      made.append(ns)
    _ip("link", "add", f"tbv{pid}a", "type", "veth", "peer", "name", f"tbv{pid}b")
    for ns, side, host in ((a, "a", 1), (b, "b", 2)):
      dev = f"tbv{pid}{side}"
      _ip("link", "set", dev, "netns", ns)
      _ip("-n", ns, "addr", "add", f"{subnet}.{host}/24", "dev", dev)
      _ip("-n", ns, "link", "set", dev, "up")
      _ip("-n", ns, "link", "set", "lo", "up")
    yield [Machine(ns, f"{subnet}.{host}", f"tbv{pid}{side}", ("ip", "netns", "exec", ns), "netns")
           for ns, side, host in ((a, "a", 1), (b, "b", 2))]
  finally:
    for ns in made:  # the caller has ended the processes it started inside
      with contextlib.suppress(subprocess.CalledProcessError): _ip("netns", "del", ns)
    with contextlib.suppress(subprocess.CalledProcessError): _ip("link", "del", f"tbv{pid}a")  # only if the move failed
