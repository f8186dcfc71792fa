"""deploy/: the systemd unit the README offers for a 24/7 recorder is one systemd reads without a
complaint, and its command, as systemd hands it to srx, runs: two password-protected RTSP cameras
(a real GStreamer server), the passwords from the environment, recorded in segments."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "srx-stream.service"


def exec_start(unit: str) -> list[str]:
    """ExecStart's words as systemd gives them to the program: lines joined at a trailing backslash,
    quotes taken off, `$$` made `$` (systemd's escape that leaves `${NAME}` to srx)."""
    joined = re.sub(r"\\\n\s*", " ", unit)
    line = next(ln for ln in joined.splitlines() if ln.startswith("ExecStart="))
    return [word.replace("$$", "$") for word in shlex.split(line.removeprefix("ExecStart="))]


def test_the_service_unit_is_one_systemd_reads_without_a_complaint(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here (the systemd package)")
    unit = tmp_path / "srx-stream.service"
    srx = Path(sys.executable).with_name("srx")  # this environment's, where the unit names /opt/srx's
    unit.write_text(UNIT.read_text().replace("/opt/srx/.venv/bin/srx", str(srx)))
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr  # an unknown key or value is only a warning


def test_the_service_units_command_runs_as_systemd_gives_it(tmp_path: Path, monkeypatch) -> None:
    from srx.cli import app
    from tests.camera.conftest import free_port
    from tests.camera.test_rtsp import serving_clip

    argv = exec_start(UNIT.read_text())
    assert argv[:2] == ["/opt/srx/.venv/bin/srx", "stream"]
    assert "--quiet" in argv and "--segment" in argv and any("${DOOR_PASSWORD}" in w for w in argv)
    assert "127.0.0.1:8080" in argv  # the page has no login: not on every interface by default
    (tmp_path / "door").mkdir()
    (tmp_path / "gate").mkdir()
    # 10 s clips: a 2 s one can end, on a busy machine, before its first frame reaches srx
    door, _, door_port = serving_clip(tmp_path / "door", 100, login="admin:s3cret@door")
    gate, _, gate_port = serving_clip(tmp_path / "gate", 100, login="admin:gate-pw")
    monkeypatch.setenv("DOOR_PASSWORD", "s3cret@door")
    monkeypatch.setenv("GATE_PASSWORD", "gate-pw")
    rec = tmp_path / "rec"
    args = [w.replace("10.0.0.5:554/stream1", f"127.0.0.1:{door_port}/clip")
            .replace("10.0.0.6:554/stream1", f"127.0.0.1:{gate_port}/clip")
            .replace("/var/lib/srx/rec", str(rec)).replace("127.0.0.1:8080", f"127.0.0.1:{free_port()}")
            for w in argv[2:]]
    try:
        res = CliRunner().invoke(app, ["stream", *args, "--max-frames", "3", "--duration", "90s"])
    finally:
        door.kill()
        gate.kill()
    assert res.exit_code == 0, res.output
    for name in ("door", "gate"):
        assert len(list(rec.glob(f"{name}-*.mp4"))) == 1, sorted(p.name for p in rec.iterdir())
    assert "s3cret" not in res.output and "gate-pw" not in res.output
