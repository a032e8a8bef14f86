"""The `tinybounty` command line: list, report, check (and the capabilities' own commands)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from rich.console import Console

# Capabilities that add their own subcommands: each module has add_parser(subparsers) -> None.
EXTRA_COMMANDS: list[str] = ["tinybounty.validate.cli", "tinybounty.models.generate_cli", "tinybounty.mlperf.cli"]


def _ids(text: str) -> list[str]:
  return [t for t in text.replace(",", " ").split() if t]


def cmd_list(args: argparse.Namespace) -> int:
  from rich.table import Table

  from tinybounty.bounties import all_bounties
  t = Table(title="tinybounty registry")
  for col in ("id", "bounty", "capability", "real target needs"): t.add_column(col, overflow="fold")
  for b in all_bounties(): t.add_row(b.key, b.title, b.capability, b.hardware)
  Console().print(t)
  return 0


def cmd_report(args: argparse.Namespace) -> int:
  from tinybounty.bounties import all_bounties, get_bounty
  from tinybounty.report import exit_code, render_table, run_report, write_json
  bounties = [get_bounty(i) for i in _ids(args.only)] if args.only else all_bounties()
  rows = run_report(bounties, full=args.full)
  render_table(rows)
  if args.json: write_json(rows, args.json)
  return exit_code(rows)


def cmd_check(args: argparse.Namespace) -> int:
  from tinybounty.bounties import get_bounty
  from tinybounty.bounties.runner import run_check
  from tinybounty.report import exit_code, render_table
  try:
    b = get_bounty(args.id)
  except KeyError as e:
    print(f"tinybounty check: {e.args[0]}", file=sys.stderr)
    return 2
  rows = [(b, run_check(b, full=args.full))]
  render_table(rows)
  return exit_code(rows)


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="tinybounty", description="Where each of tinygrad's bounties stands on this machine.")
  sub = p.add_subparsers(dest="command", required=True)
  sub.add_parser("list", help="show the registry").set_defaults(func=cmd_list)
  r = sub.add_parser("report", help="run every check that fits this hardware and print a table")
  r.add_argument("--full", action="store_true", help="run the long versions (full benchmarks)")
  r.add_argument("--json", metavar="FILE", help="also write the results as JSON")
  r.add_argument("--only", metavar="IDS", help="comma-separated bounty ids")
  r.set_defaults(func=cmd_report)
  c = sub.add_parser("check", help="run one bounty's check with full output")
  c.add_argument("id", help="bounty id, 1-23 (never an issue number)")
  c.add_argument("--full", action="store_true")
  c.set_defaults(func=cmd_check)
  for mod in EXTRA_COMMANDS: importlib.import_module(mod).add_parser(sub)
  return p


def main(argv: list[str] | None = None) -> int:
  os.environ.setdefault("DEV", "CPU")
  args = build_parser().parse_args(argv)
  return args.func(args)
