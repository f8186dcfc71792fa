"""scripts/setup.sh with SRX_OFFLINE=1, for real: no package index, the .venv built over the Python
that runs the tests (itself a venv, as on the lent H200's image), srx installed from the checkout."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", ".venv-system", "runs", "out", ".whl", "__pycache__", "*.egg-info", ".pytest_cache")


def _offline_setup(tmp_path: Path, python: str) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of the checkout, then `SRX_OFFLINE=1 bash scripts/setup.sh` in it with `python` and no index."""
    repo = tmp_path / "checkout"
    shutil.copytree(REPO, repo, ignore=SKIP)
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "VIRTUAL_ENV")}
    env.update(SRX_OFFLINE="1", PIP_NO_INDEX="1", PYTHON=python)
    return repo, subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, env=env, capture_output=True, text=True,
                                timeout=300)


@pytest.mark.slow
def test_offline_setup_builds_over_this_python_without_an_index(tmp_path):
    repo, proc = _offline_setup(tmp_path, sys.executable)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "installed offline" in proc.stdout
    # srx from the copy, torch from the Python that made the venv (nothing was downloaded)
    probe = subprocess.run([str(repo / ".venv/bin/python"), "-c", "import srx, torch; print(srx.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert Path(probe.stdout.strip()).resolve().is_relative_to(repo.resolve())
    models = subprocess.run([str(repo / ".venv/bin/srx"), "models"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert models.returncode == 0 and "camera" in models.stdout, models.stderr[-2000:]


@pytest.mark.slow
def test_offline_setup_names_what_is_missing(tmp_path):
    """A bare Python with no index to fetch from: setup says which packages are missing and fails."""
    base = getattr(sys, "_base_executable", None) or shutil.which("python3")
    bare = subprocess.run([base, "-c", "import torch"], capture_output=True)
    if bare.returncode == 0:
        pytest.skip(f"{base} has torch itself, so nothing would be missing")
    _, proc = _offline_setup(tmp_path, base)
    assert proc.returncode != 0
    assert "missing here: torch" in proc.stderr and "PIP_FIND_LINKS" in proc.stderr


@pytest.mark.slow
def test_a_built_wheel_holds_every_package_and_runs(tmp_path):
    """`pip install .` (not -e), `pip install git+...` and a published wheel install what
    pyproject lists: every package of the checkout must be there (srx.cli was not: `srx` could not
    start), with the shipped weights, and the installed `srx` must run from it alone."""
    import zipfile

    repo = tmp_path / "checkout"
    shutil.copytree(REPO, repo, ignore=SKIP)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", str(tmp_path / "dist"), str(repo)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("srx-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {"srx": REPO / "srx", "srx/train": REPO / "train", "srx/export": REPO / "export",
                "srx/runtime": REPO / "runtime", "srx/camera": REPO / "camera"}
    for prefix, folder in packages.items():
        for init in folder.rglob("__init__.py"):
            inside = f"{prefix}/{init.parent.relative_to(folder).as_posix()}/__init__.py".replace("/./", "/")
            assert inside in names, f"{inside} is not in {wheel.name}: add its package to pyproject.toml"
    shipped = {p.name for p in (REPO / "srx" / "weights").glob("*.pt")}
    assert shipped and {f"srx/weights/{n}" for n in shipped} <= names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    run = subprocess.run([sys.executable, "-c", "import srx, sys; from srx.cli.app import main; print(srx.__file__); "
                          "sys.argv = ['srx', 'models']; main()"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[0].startswith(str(unpacked)) and "camera" in run.stdout
