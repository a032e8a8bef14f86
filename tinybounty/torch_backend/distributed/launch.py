"""Launching the data-parallel programs with torchrun from Python (tests, benchmarks, registry checks).

Each launch gets a fresh port, a wall-clock limit after which the whole process group is killed (never a hang),
and the package on PYTHONPATH; the caller reads the result file the program wrote.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def free_port(host: str = "127.0.0.1") -> int:
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


@dataclass
class Launched:
  returncode: int
  output: str
  seconds: float


# torchrun's c10d rendezvous hands its workers the launcher's own TCPStore by default, and that store outlives them: a
# restarted worker group (--max-restarts) finds the dead attempt's keys still there, as c10d adds no per-attempt prefix
# (torch 2.13; TORCHELASTIC_RESTART_COUNT is per launcher, so it cannot be one). gloo reads a peer's address from them
# before the restarted peer has overwritten it, dials the dead worker's port and fails ("Gloo connectFullMesh failed ...
# SO_ERROR: Connection refused, remote=[10.x.y.1]:port"). Unshared, the rank-0 worker of each rendezvous round hosts a
# fresh store on a fresh port (pytorch/pytorch#135712 reports the same for NCCL).
UNSHARED_STORE = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
  """This process's environment with the package first on PYTHONPATH, one thread per rank and a fresh store per torchrun round."""
  e = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep), "OMP_NUM_THREADS": "1",
       "PYTHONUNBUFFERED": "1", **UNSHARED_STORE}
  e.setdefault("DEV", "CPU")
  return {**e, **(extra or {})}


def run(cmd: list[str], timeout: float, extra_env: dict[str, str] | None = None, prefix: list[str] | None = None) -> Launched:
  """Run `cmd` (optionally under `prefix`, e.g. `ip netns exec NAME`) in its own session; kill the session at `timeout`."""
  import time
  t0 = time.perf_counter()
  p = subprocess.Popen((prefix or []) + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(extra_env),
                       start_new_session=True, cwd=ROOT)
  try:
    out, _ = p.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    out, _ = p.communicate()
    out += f"\n[launch] killed after {timeout:.0f} s"
  return Launched(p.returncode, out, time.perf_counter() - t0)


def torchrun(module: str, nproc: int, args: list[str], timeout: float = 600, extra_env: dict[str, str] | None = None,
             launcher_args: list[str] | None = None) -> Launched:
  """`torchrun --nproc-per-node nproc [launcher_args] -m module args` on this host (a standalone rendezvous by default)."""
  launcher = launcher_args if launcher_args is not None else ["--standalone"]
  cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *launcher, "-m", module, *args]
  return run(cmd, timeout, extra_env)


def torchrun_nodes(module: str, args: list[str], machines: list, nproc_per_node: int, timeout: float = 600,
                   launcher_args: list[str] | None = None, extra_env: dict[str, str] | None = None) -> list[Launched]:
  """One `torchrun --nnodes len(machines) --rdzv-backend c10d` per machine, all at once; the first machine hosts the
  rendezvous store (--rdzv-conf is_host). gloo is pinned to each machine's interface (GLOO_SOCKET_IFNAME). Every launcher is killed with its
  workers at `timeout`."""
  import time
  port, rdzv_id = free_port(), f"tiny{os.getpid()}{int(time.time())}"
  procs = []
  for i, m in enumerate(machines):
    # the store's host is named explicitly: c10d's own test (does the endpoint name this host?) misses namespace addresses
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(len(machines)), "--nproc-per-node", str(nproc_per_node),
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{machines[0].addr}:{port}", "--rdzv-id", rdzv_id, "--local-addr", m.addr,
           "--rdzv-conf", f"is_host={str(i == 0).lower()},join_timeout=120",
           *(launcher_args or []), "-m", module, *args]
    e = env({"GLOO_SOCKET_IFNAME": m.ifname, **(extra_env or {})})
    procs.append((time.perf_counter(), subprocess.Popen(list(m.prefix) + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                                        env=e, start_new_session=True, cwd=ROOT)))
  out, deadline = [], time.perf_counter() + timeout
  for t0, p in procs:
    try:
      text, _ = p.communicate(timeout=max(1.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
      for _, q in procs:
        if q.poll() is None: os.killpg(q.pid, signal.SIGKILL)
      text, _ = p.communicate()
      text += f"\n[launch] killed after {timeout:.0f} s"
    out.append(Launched(p.returncode, text, time.perf_counter() - t0))
  return out
