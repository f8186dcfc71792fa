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


def _srx_imports(path: Path) -> set[str]:
    """Every srx.<stage> module `path` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "srx" and len(parts) > 1 and parts[1] in FLOW:
                found.add(parts[1])
    return found


def _modules() -> list[tuple[str, Path]]:
    out = [(stage, p) for stage in FLOW for p in sorted((REPO / stage).rglob("*.py"))]
    out += [("shared", p) for p in sorted((REPO / "srx").glob("*.py"))]
    return out


@pytest.mark.parametrize("owner,path", _modules(), ids=lambda v: str(v.relative_to(REPO)) if isinstance(v, Path) else v)
def test_imports_follow_the_flow(owner, path):
    imported = _srx_imports(path)
    if owner == "shared":
        assert not imported, f"{path.relative_to(REPO)} is shared by every stage but imports srx.{sorted(imported)}"
        return
    later = {s for s in imported if FLOW.index(s) > FLOW.index(owner)}
    assert not later, (f"{path.relative_to(REPO)} (srx.{owner}) imports srx.{', srx.'.join(sorted(later))}, a later "
                       f"stage; the flow is {' → '.join(FLOW)}")


def test_the_checker_sees_lazy_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from srx.runtime.onnxruntime_runner import X\n    import srx.camera.stream\n")
    assert _srx_imports(sample) == {"runtime", "camera"}
    sample.write_text("from srx import runtime\nfrom srx.errors import SrxError\n")
    assert _srx_imports(sample) == {"runtime"}
