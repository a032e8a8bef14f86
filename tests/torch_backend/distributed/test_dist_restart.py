"""A torchrun restart across two machines forms its gloo group afresh (the cause of the killed-rank test's failures).

torchrun's c10d rendezvous shares its own TCPStore with the workers by default, and that store outlives them: the
restarted group found the killed attempt's gloo addresses there, and a rank dialed the dead worker's port
("Gloo connectFullMesh failed ... SO_ERROR: Connection refused, remote=[10.x.y.1]:port"), whenever it formed the group
before its peer had rewritten its key. Here the restarted rank 0 starts 3 s late, so rank 1 always comes first: with the
store shared this fails every time, not only on unlucky timing. launch.py turns the sharing off. Plain gloo and a CPU
tensor: no tinygrad in the workers, so this takes seconds, not minutes.
"""
import os
import re

import pytest

from tinybounty.torch_backend.distributed import launch, netns

WORKER = """
import os, signal, time
from datetime import timedelta
import torch, torch.distributed as dist
mark = os.path.join(os.path.dirname(__file__), "started_rank" + os.environ["RANK"])
if os.path.exists(mark) and os.environ["RANK"] == "0": time.sleep(3)  # a slower machine: the restarted rank 1 reaches the store first
open(mark, "w").close()
dist.init_process_group("gloo", timeout=timedelta(seconds=30))
rank, restart = dist.get_rank(), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
if rank == 1 and restart == 0: os.kill(os.getpid(), signal.SIGKILL)  # its gloo address is in the store by now
t = torch.ones(1)
dist.all_reduce(t)
print(f"rank {rank} restart {restart}: all_reduce {t.item():.0f}", flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_restarted_ranks_form_their_gloo_group_afresh(tmp_path):
  (tmp_path / "restart_worker.py").write_text(WORKER)
  path = {"PYTHONPATH": os.pathsep.join([str(tmp_path), launch.ROOT])}
  with netns.machines() as machines:
    runs = launch.torchrun_nodes("restart_worker", [], machines, 1, timeout=150, launcher_args=["--max-restarts", "1"], extra_env=path)
  text = "\n".join(r.output for r in runs)
  assert all(r.returncode == 0 for r in runs), text[-3000:]
  # rank 1 ran again after its kill (its launcher counts the restart); rank 0's launcher may restart it without counting
  assert "rank 1 restart 1: all_reduce 2" in text and re.search(r"rank 0 restart \d: all_reduce 2", text), text[-3000:]
  assert "connectFullMesh failed" not in text, text[-3000:]
