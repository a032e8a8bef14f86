"""python -m tinybounty.engine SCRIPT [ARGS...]: run a Python script with the fast rewrite engine installed."""
import runpy
import sys

from tinybounty.engine import install


def main() -> None:
  if len(sys.argv) < 2: sys.exit("usage: python -m tinybounty.engine SCRIPT [ARGS...]  (or set TINYBOUNTY_ENGINE=1 and import tinybounty.engine)")
  install()
  sys.argv = sys.argv[1:]
  runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
  main()
