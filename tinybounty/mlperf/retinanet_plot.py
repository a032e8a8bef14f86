"""A training run's loss and mAP against step, as a PNG (written atomically)."""
from __future__ import annotations

import os
import pathlib


def plot_run(records: list[dict], path: str | os.PathLike, title: str = "RetinaNet on the generated COCO-format set") -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  steps = [r["step"] + 1 for r in records]
  fig, ax = plt.subplots(figsize=(7, 4))
  ax.plot(steps, [r["cls_loss"] for r in records], label="focal loss", lw=1)
  ax.plot(steps, [r["box_loss"] for r in records], label="box L1 loss", lw=1)
  ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_yscale("log")
  evals = [(r["step"] + 1, r["mAP"], r["AP50"]) for r in records if "mAP" in r]
  if evals:
    ax2 = ax.twinx()
    ax2.plot([e[0] for e in evals], [e[1] for e in evals], "o-", color="C3", label="mAP@[.5:.95]")
    ax2.plot([e[0] for e in evals], [e[2] for e in evals], "s--", color="C2", label="AP50")
    ax2.set_ylabel("COCO AP (pycocotools)"), ax2.set_ylim(0, max(0.05, 1.15 * max(e[2] for e in evals)))  # the AP's own scale
    ax2.legend(loc="upper right")
  ax.legend(loc="upper left"), ax.set_title(title)
  fig.tight_layout()
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.tmp.png")
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  with open(tmp, "rb+") as f: os.fsync(f.fileno())
  os.replace(tmp, path)
