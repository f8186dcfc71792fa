"""The stages depend one way: train → export → runtime → camera. A stage may import srx's shared
modules and the stages before it, never one after it; the shared modules (srx/*.py) import no stage;
only the CLI (srx/cli) sees them all. Imports inside functions count too: a lazy import is still a
dependency."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOW = ["train", "export", "runtime", "camera"]  # stage i may import stages 0..i
LAYERS = [*FLOW, "cli"]  # the CLI composes them all, and nothing imports it


def _package_of(path: Path) -> list[str]:
    """The package a file of this repository is imported in: export/onnx.py is in srx.export."""
    rel = path.resolve().relative_to(REPO).parts[:-1]
    return list(rel) if rel and rel[0] == "srx" else ["srx", *rel]


def _srx_imports(path: Path, package: list[str] | None = None) -> set[str]:
    """Every srx.<stage> (or srx.cli) module `path` imports, at any depth of the file, also by name
    through importlib.import_module or __import__. Relative imports are resolved against `path`'s
    package (given for files outside the repository)."""
    package = package if package is not None else _package_of(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . / .. import: up level - 1 packages from this file's own
                up = package[:len(package) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        for name in names:
            parts = name.split(".")
            if parts[0] == "srx" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


def _modules() -> list[tuple[str, Path]]:
    out = [(stage, p) for stage in FLOW for p in sorted((REPO / stage).rglob("*.py"))]
    out += [("shared", p) for p in sorted((REPO / "srx").glob("*.py")) if p.name != "__main__.py"]  # `python -m srx`: the CLI
    return out


@pytest.mark.parametrize("owner,path", _modules(), ids=lambda v: str(v.relative_to(REPO)) if isinstance(v, Path) else v)
def test_imports_follow_the_flow(owner, path):
    imported = _srx_imports(path)
    if owner == "shared":
        assert not imported, f"{path.relative_to(REPO)} is shared by every stage but imports srx.{sorted(imported)}"
        return
    later = {s for s in imported if LAYERS.index(s) > LAYERS.index(owner)}
    assert not later, (f"{path.relative_to(REPO)} (srx.{owner}) imports srx.{', srx.'.join(sorted(later))}, a later "
                       f"stage; the flow is {' → '.join(LAYERS)}")


def test_the_checker_sees_lazy_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from srx.runtime.onnxruntime_runner import X\n    import srx.camera.stream\n")
    assert _srx_imports(sample, ["srx", "export"]) == {"runtime", "camera"}
    sample.write_text("from srx import runtime\nfrom srx.errors import SrxError\n")
    assert _srx_imports(sample, ["srx", "export"]) == {"runtime"}
    # relative imports, resolved from the package the file is in (here srx.export)
    sample.write_text("from ..runtime import select\nfrom . import onnx\nfrom .. import camera\n")
    assert _srx_imports(sample, ["srx", "export"]) == {"runtime", "export", "camera"}
    # imports by name, and of the CLI, which only composes the stages
    sample.write_text("import importlib\nm = importlib.import_module('srx.camera.stream')\n"
                      "n = __import__('srx.runtime')\nfrom srx.cli.app import app\n")
    assert _srx_imports(sample, ["srx", "export"]) == {"camera", "runtime", "cli"}
    assert _package_of(REPO / "export" / "onnx.py") == ["srx", "export"]
    assert _package_of(REPO / "srx" / "cli" / "app.py") == ["srx", "cli"]
