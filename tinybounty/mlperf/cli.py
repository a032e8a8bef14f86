"""`tinybounty train bert`: MLPerf BERT pretraining in tinygrad on MLPerf-layout HDF5 shards (generated if none are given)."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile


def _bert(args: argparse.Namespace) -> int:
  from tinybounty.data.bert_shards import ShardError, stdlib_text, vocab_size_of, write_shards
  from tinybounty.mlperf.bert_train import BertRun, train_bert
  from tinybounty.mlperf.checkpoint import CheckpointError
  from tinybounty.mlperf.lamb import LambConfig
  from tinybounty.models.bert_pretrain import BertPretrainConfig
  data = args.data
  if data is None:
    data = str(pathlib.Path(args.out or tempfile.mkdtemp(prefix="tb_bert_")) / "shards")
    if not list(pathlib.Path(data).glob("*.hdf5")): write_shards(stdlib_text(), data, seq_len=args.seq_len, seed=args.seed)
    print(f"no --data: generated MLPerf-layout shards from standard-library docstrings in {data}")
  elif not pathlib.Path(data).is_dir():
    print(f"tinybounty train bert: {data}: no such data directory", file=sys.stderr)
    return 2
  vocab = args.vocab_size or vocab_size_of(data)
  if vocab is None:
    print("tinybounty train bert: no vocab.txt beside the shards; give --vocab-size (30522 for MLPerf's uncased vocabulary)", file=sys.stderr)
    return 2
  model = BertPretrainConfig.large().with_(vocab_size=vocab) if args.config == "large" else BertPretrainConfig.tiny(vocab)
  run = BertRun(steps=args.steps, batch_size=args.batch_size, seed=args.seed, dtype=args.dtype, model=model, checkpoint_every=args.checkpoint_every,
                lamb=LambConfig(lr=args.lr, warmup_steps=args.warmup_steps, total_steps=args.total_steps or args.steps))
  try:
    records = train_bert(run, data, args.out, resume=args.resume)
  except (ShardError, CheckpointError, ValueError) as e:
    print(f"tinybounty train bert: {e}", file=sys.stderr)
    return 2
  if args.log:
    with open(args.log, "w") as f: json.dump(records, f, indent=1)
  if records: print(f"step {records[-1]['step']}: loss {records[-1]['loss']:.4f} (first of this run {records[0]['loss']:.4f})")
  return 0


def _retinanet(args: argparse.Namespace) -> int:
  from tinybounty.data.coco_synth import CocoDetection, CocoError, split_paths, write_coco
  from tinybounty.data.files import atomic_write
  from tinybounty.mlperf.checkpoint import CheckpointError
  from tinybounty.mlperf.retinanet_train import RetinaNetRun, train_retinanet
  from tinybounty.models.retinanet import RetinaNetConfig
  root = args.data
  if root is None:
    root = pathlib.Path(args.out or tempfile.mkdtemp(prefix="tb_retinanet_")) / "coco"
    if not split_paths(root, "val")[1].is_file(): write_coco(root, args.train_images, args.val_images, seed=args.seed)
    print(f"no --data: generated a COCO-format set of drawn shapes in {root}")
  try:
    train = CocoDetection(*split_paths(root, args.train_split), args.image_size, limit=args.limit)
    val = CocoDetection(*split_paths(root, args.val_split), args.image_size) if args.val_split else None
    make = {"tiny": RetinaNetConfig.tiny, "small": RetinaNetConfig.small, "mlperf": lambda k, s: RetinaNetConfig.mlperf(k).with_(image_size=s)}
    run = RetinaNetRun(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps, seed=args.seed,
                       model=make[args.config](train.num_classes, args.image_size), checkpoint_every=args.checkpoint_every,
                       eval_every=args.eval_every, dtype=args.dtype)
    records = train_retinanet(run, train, val, args.out, resume=args.resume)
  except (CocoError, CheckpointError, ValueError) as e:
    print(f"tinybounty train retinanet: {e}", file=sys.stderr)
    return 2
  if args.log:
    if args.resume and records and pathlib.Path(args.log).is_file():  # a resumed run's log continues the first leg's
      records = [r for r in json.loads(pathlib.Path(args.log).read_text()) if r["step"] < records[0]["step"]] + records
    with atomic_write(args.log) as f: f.write(json.dumps(records, indent=1).encode())
  if args.plot and records:
    from tinybounty.mlperf.retinanet_plot import plot_run
    plot_run(records, args.plot)
  if records: print(f"step {records[-1]['step'] + 1}: loss {records[-1]['loss']:.4f} (step {records[0]['step'] + 1}: {records[0]['loss']:.4f})"
                    + (f", mAP {records[-1]['mAP']:.4f}" if "mAP" in records[-1] else ""))
  return 0


def add_parser(sub) -> None:
  t = sub.add_parser("train", help="train an MLPerf workload in tinygrad (bert, retinanet)")
  models = t.add_subparsers(dest="workload", required=True)
  b = models.add_parser("bert", help="BERT pretraining: masked LM + next sentence, LAMB, loss scaling")
  b.add_argument("--data", help="directory of MLPerf HDF5 shards (default: generate a small set)")
  b.add_argument("--out", help="checkpoint directory (bert.safetensors)")
  b.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
  b.add_argument("--config", choices=("tiny", "large"), default="tiny")
  b.add_argument("--vocab-size", type=int, help="default: the lines of vocab.txt beside the shards")
  b.add_argument("--seq-len", type=int, default=64, help="sequence length of generated shards")
  b.add_argument("--steps", type=int, default=20)
  b.add_argument("--batch-size", type=int, default=8)
  b.add_argument("--lr", type=float, default=3e-2)
  b.add_argument("--warmup-steps", type=int, default=2)
  b.add_argument("--total-steps", type=int, help="length of the poly decay (default: --steps)")
  b.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
  b.add_argument("--seed", type=int, default=0)
  b.add_argument("--checkpoint-every", type=int, default=0)
  b.add_argument("--log", help="write the per-step records as JSON")
  b.set_defaults(func=_bert)
  r = models.add_parser("retinanet", help="RetinaNet: ResNeXt50-32x4d + FPN, focal loss, Adam; COCO-format data and mAP")
  r.add_argument("--data", help="root of a COCO-format set: SPLIT/ images and annotations/instances_SPLIT.json (default: generate one)")
  r.add_argument("--train-split", default="train")
  r.add_argument("--val-split", default="val", help="evaluated with pycocotools ('' for none)")
  r.add_argument("--out", help="checkpoint directory (retinanet.safetensors)")
  r.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
  r.add_argument("--config", choices=("tiny", "small", "mlperf"), default="small", help="mlperf: ResNeXt50-32x4d, FPN 256, frozen BatchNorm")
  r.add_argument("--image-size", type=int, default=128, help="square model input (MLPerf: 800)")
  r.add_argument("--train-images", type=int, default=256, help="size of a generated training set")
  r.add_argument("--val-images", type=int, default=64)
  r.add_argument("--limit", type=int, help="use only the first N training images")
  r.add_argument("--steps", type=int, default=100)
  r.add_argument("--batch-size", type=int, default=8)
  r.add_argument("--lr", type=float, default=1e-3)
  r.add_argument("--warmup-steps", type=int, default=10)
  r.add_argument("--seed", type=int, default=0)
  r.add_argument("--checkpoint-every", type=int, default=0)
  r.add_argument("--eval-every", type=int, default=0)
  r.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="compute precision (master weights stay float32)")
  r.add_argument("--log", help="write the per-step records as JSON")
  r.add_argument("--plot", help="write a PNG of loss and mAP against step")
  r.set_defaults(func=_retinanet)
