"""Imports flow one way: registry (tinybounty.bounties) -> capabilities -> models -> tinygrad. No capability or model
module imports the registry, and no model imports a capability (read from the source, so lazy imports count too)."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tinybounty"
CAPABILITIES = ("torch_backend", "engine", "runtime", "export", "validate", "runner", "data")


def _imports(path: pathlib.Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import): names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
  return names


def _offenders(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
  return [f"{p.relative_to(PACKAGE.parent)} imports {n}" for pkg in packages for p in sorted((PACKAGE / pkg).rglob("*.py"))
          for n in sorted(_imports(p)) if n.startswith(forbidden)]


def test_no_capability_or_model_imports_the_registry():
  assert _offenders(CAPABILITIES + ("models",), ("tinybounty.bounties",)) == []


def test_models_import_no_capability():
  assert _offenders(("models",), tuple(f"tinybounty.{c}" for c in CAPABILITIES)) == []


def test_the_check_finds_an_offender(tmp_path, monkeypatch):
  (tmp_path / "tinybounty" / "engine").mkdir(parents=True)
  (tmp_path / "tinybounty" / "engine" / "bad.py").write_text("def f():\n  from tinybounty.bounties.base import Result\n")
  monkeypatch.setitem(globals(), "PACKAGE", tmp_path / "tinybounty")
  assert _offenders(("engine",), ("tinybounty.bounties",))[0] == "tinybounty/engine/bad.py imports tinybounty.bounties.base"
