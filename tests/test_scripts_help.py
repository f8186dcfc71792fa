"""Every script in scripts/ answers --help with its whole first paragraph and does nothing else: the
shell scripts ran their whole job for --help (gpu-check.sh re-ran setup and the GPU steps;
gpu-wheels.sh would have fetched from PyPI), and the Python ones cut their description mid-sentence."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY_SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
SH_SCRIPTS = [ROOT / "scripts" / name for name in ("gpu-check.sh", "gpu-wheels.sh", "setup.sh")]


@pytest.mark.parametrize("script", PY_SCRIPTS, ids=lambda p: p.name)
def test_a_python_script_describes_itself_in_whole_sentences(script: Path) -> None:
    res = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    first = res.stdout.split("\n\n")[1]  # after the usage lines: the description
    assert first.rstrip().endswith((".", ")", ":")), first


@pytest.mark.parametrize("script", SH_SCRIPTS, ids=lambda p: p.name)
def test_a_shell_script_answers_help_and_refuses_what_it_does_not_take(script: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GPU_CHECK_OUT": str(tmp_path / "out")}
    res = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30, env=env)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert res.stdout.splitlines()[0] == script.read_text().splitlines()[1].lstrip("# ")
    assert not res.stdout.lstrip().startswith("case") and "esac" not in res.stdout
    assert not (tmp_path / "out").exists()  # nothing ran
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True, timeout=30, env=env)
    assert bad.returncode == 2 and "usage: bash" in bad.stderr and not (tmp_path / "out").exists()
