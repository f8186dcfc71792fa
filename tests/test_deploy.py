"""deploy/: the systemd unit the README offers for a 24/7 recorder is one systemd reads without a
complaint, and its command, as systemd hands it to srx, runs with the stream.toml beside it: two
password-protected RTSP cameras (a real GStreamer server), the passwords from the environment,
recorded in segments."""
from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "srx-stream.service"
STREAM_TOML = UNIT.with_name("stream.toml")


def exec_start(unit: str) -> list[str]:
    """ExecStart's words as systemd gives them to the program: lines joined at a trailing backslash,
    quotes taken off, `$$` made `$` (systemd's escape that leaves `${NAME}` to srx)."""
    joined = re.sub(r"\\\n\s*", " ", unit)
    line = next(ln for ln in joined.splitlines() if ln.startswith("ExecStart="))
    return [word.replace("$$", "$") for word in shlex.split(line.removeprefix("ExecStart="))]


@pytest.mark.parametrize("name", ["srx-stream.service", "srx-serve.service"])
def test_the_service_unit_is_one_systemd_reads_without_a_complaint(tmp_path: Path, name: str) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here (the systemd package)")
    unit = tmp_path / name
    srx = Path(sys.executable).with_name("srx")  # this environment's, where the unit names /opt/srx's
    unit.write_text(UNIT.with_name(name).read_text().replace("/opt/srx/.venv/bin/srx", str(srx)))
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr  # an unknown key or value is only a warning


def test_the_service_units_command_runs_as_systemd_gives_it(tmp_path: Path, monkeypatch) -> None:
    """The unit's command with deploy/stream.toml as its --config, the addresses and folders moved
    to this test's: both cameras recorded in segments, no password in the output."""
    from srx.cli import app
    from tests.camera.conftest import free_port
    from tests.camera.test_rtsp import serving_clip

    argv = exec_start(UNIT.read_text())
    assert argv == ["/opt/srx/.venv/bin/srx", "stream", "--config", "/etc/srx/stream.toml"]
    config = STREAM_TOML.read_text()
    assert "quiet = true" in config and 'segment = "1h"' in config and "${DOOR_PASSWORD}" in config
    assert 'serve = "127.0.0.1:8080"' in config  # the page has no login: not on every interface by default
    (tmp_path / "door").mkdir()
    (tmp_path / "gate").mkdir()
    # 10 s clips: a 2 s one can end, on a busy machine, before its first frame reaches srx
    door, _, door_port = serving_clip(tmp_path / "door", 100, login="admin:s3cret@door")
    gate, _, gate_port = serving_clip(tmp_path / "gate", 100, login="admin:gate-pw")
    monkeypatch.setenv("DOOR_PASSWORD", "s3cret@door")
    monkeypatch.setenv("GATE_PASSWORD", "gate-pw")
    rec = tmp_path / "rec"
    mine = tmp_path / "stream.toml"
    mine.write_text(config.replace("10.0.0.5:554/stream1", f"127.0.0.1:{door_port}/clip")
                    .replace("10.0.0.6:554/stream1", f"127.0.0.1:{gate_port}/clip")
                    .replace("/var/lib/srx/rec", str(rec)).replace("127.0.0.1:8080", f"127.0.0.1:{free_port()}"))
    try:
        res = CliRunner().invoke(app, ["stream", "--config", str(mine), "--max-frames", "3", "--duration", "90s",
                                       "--json-summary", str(tmp_path / "summary.json")])
    finally:
        door.kill()
        gate.kill()
    assert res.exit_code == 0, res.output
    for name in ("door", "gate"):
        assert len(list(rec.glob(f"{name}-*.mp4"))) == 1, sorted(p.name for p in rec.iterdir())
    assert "s3cret" not in res.output and "gate-pw" not in res.output
    import json

    sources = json.loads((tmp_path / "summary.json").read_text())["sources"]
    assert {name: s["max_fps"] for name, s in sources.items()} == {"door": 10, "gate": 5}  # the file's, and gate's own


def unit_values(text: str) -> dict[str, list[str]]:
    """The unit's settings ({key: [value, ...]}), continued lines joined, comments left out."""
    values: dict[str, list[str]] = {}
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_the_unit_gives_srx_its_passwords_and_the_folders_it_writes() -> None:
    """Under ProtectSystem=strict every folder srx writes (its working folder, SRX_CACHE_DIR, the
    recordings of stream.toml) must be in ReadWritePaths, each ${NAME} of stream.toml must come from
    the EnvironmentFile (cams.env.example names each), and the file runs what its header and the
    README say: x3 by the shipped camera weights."""
    import json

    from srx.cli.config import toml_module

    unit = unit_values(UNIT.read_text())
    assert unit["ProtectSystem"] == ["strict"]
    assert [f.lstrip("-") for f in unit.get("EnvironmentFile", [])] == ["/etc/srx/cams.env"]
    config = toml_module().loads(STREAM_TOML.read_text())
    assert config["weights"] == "camera" and config["scale"] == 3, config
    wanted = set(re.findall(r"\$\{(\w+)\}", json.dumps(config)))  # in the values, not in the comments
    defined = set(re.findall(r"^(\w+)=", UNIT.with_name("cams.env.example").read_text(), re.M))
    assert wanted and wanted <= defined, (wanted, defined)
    writable = [Path(p) for v in unit.get("ReadWritePaths", []) for p in v.split()]
    env = dict(kv.split("=", 1) for v in unit.get("Environment", []) for kv in v.split())
    writes = {"WorkingDirectory": Path(unit["WorkingDirectory"][0]), "SRX_CACHE_DIR": Path(env["SRX_CACHE_DIR"]),
              "output": Path(config["output"]).parent}
    for what, folder in writes.items():
        assert any(folder.is_relative_to(w) for w in writable), (what, folder, writable)


SERVE_UNIT = UNIT.with_name("srx-serve.service")


def test_the_serve_units_stop_outlasts_srx_serves_own_bound() -> None:
    """systemd's SIGKILL (TimeoutStopSec) must come after srx serve's own forced stop (30 s, plus 5 s
    for each model after the first), and reach Triton's processes only after srx had its chance to
    stop them (KillMode=mixed: the SIGTERM to srx alone)."""
    from srx.runtime.triton_server import STOP_DEADLINE_PER_MODEL_S, STOP_DEADLINE_S

    unit = unit_values(SERVE_UNIT.read_text())
    argv = exec_start(SERVE_UNIT.read_text())
    models = argv.count("-w") * argv.count("-s")
    assert models == 3, argv
    bound = STOP_DEADLINE_S + (models - 1) * STOP_DEADLINE_PER_MODEL_S
    assert float(unit["TimeoutStopSec"][0]) > bound + 5, (unit["TimeoutStopSec"], bound)
    assert unit["KillMode"] == ["mixed"] and unit["KillSignal"] == ["SIGTERM"]
    assert unit["ProtectSystem"] == ["strict"] and unit["ProtectHome"] == ["yes"] and unit["PrivateTmp"] == ["yes"]


def test_the_serve_units_command_serves_in_the_units_sandbox_and_stops_clean(tmp_path: Path) -> None:
    """deploy/srx-serve.service's command, run as that unit runs it: its environment and working
    folder, inside what its settings leave writable (bubblewrap: the whole file system read-only
    (ProtectSystem=strict), a /tmp of its own (PrivateTmp), no home folders (ProtectHome), only its
    ReadWritePaths writable), the address and ports moved to this test's. A real client upscales at
    two of its scales; then SIGTERM to srx alone, as KillMode=mixed sends it: srx stops every Triton
    process it started, says what each model ran, and exits 0 before TimeoutStopSec."""
    import os
    import signal
    import threading
    import time

    import cv2

    from tests.camera.conftest import free_port
    from tests.conftest import REPO, skip_or_fail, synthetic_photo
    from tests.runtime.test_triton import OK, WHY, descendants, left_behind

    if not OK:
        skip_or_fail(f"{WHY} (CI installs it through scripts/test.sh)")
    if shutil.which("bwrap") is None:
        skip_or_fail("bubblewrap (bwrap) is not installed (.ci/system-packages.sh installs it)")
    text = SERVE_UNIT.read_text()
    unit = unit_values(text)
    state = tmp_path / "state"  # /var/lib/srx
    state.mkdir()
    ports = {p: free_port() for p in ("8001", "8000", "8002")}
    argv = exec_start(text)
    assert argv[:2] == ["/opt/srx/.venv/bin/srx", "serve"] and "--host" in argv
    argv[0] = str(Path(sys.executable).with_name("srx"))
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv = [ports.get(a, a) if i and argv[i - 1].endswith("-port") else a for i, a in enumerate(argv)]
    argv = [str(a) for a in argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for kv in (kv for v in unit["Environment"] for kv in v.split()):
        key, _, value = kv.partition("=")
        env[key] = value.replace("/var/lib/srx", str(state))
    assert unit["WorkingDirectory"] == ["/var/lib/srx"] and unit["ReadWritePaths"] == ["/var/lib/srx"]
    interpreter = Path(sys.base_prefix).resolve()  # what the venv's python is, should it sit in a home folder
    sandbox = ["bwrap", "--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev", "--proc", "/proc",
               "--tmpfs", "/tmp", "--tmpfs", "/home", "--tmpfs", "/root", "--tmpfs", "/run/user"]
    for keep in {interpreter, Path(sys.prefix).resolve(), REPO}:  # read-only, as the unit's /opt/srx is
        if keep.is_relative_to("/tmp") or keep.is_relative_to("/home") or keep.is_relative_to("/root"):
            sandbox += ["--ro-bind", str(keep), str(keep)]
    sandbox += ["--remount-ro", "/home", "--remount-ro", "/root", "--remount-ro", "/run/user"]
    sandbox += ["--bind", str(state), str(state), "--chdir", str(state), "--"]
    proc = subprocess.Popen(sandbox + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while not any("clients:" in ln for ln in lines) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(ln.startswith("serving srx_camera_x2, srx_camera_x3, srx_camera_x4 ") for ln in lines), "".join(lines)
        photo = tmp_path / "frame.png"
        cv2.imwrite(str(photo), synthetic_photo(40, 48, seed=3))
        for scale in (3, 4):  # a camera box of each kind
            out = tmp_path / f"up-x{scale}.png"
            res = subprocess.run([sys.executable, "-m", "srx", "upscale", str(photo), "--out", str(out), "--scale", str(scale),
                                  "--backend", "triton", "--server", f"127.0.0.1:{ports['8001']}"],
                                 capture_output=True, text=True, timeout=120, cwd=REPO)
            assert res.returncode == 0, res.stdout + res.stderr
            assert cv2.imread(str(out)).shape == (40 * scale, 48 * scale, 3)
        children = descendants(proc.pid)
        srx = [p for p in children if b"serve" in Path(f"/proc/{p}/cmdline").read_bytes()
               and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(proc.pid)]
        assert len(srx) == 1, srx
        t_stop = time.monotonic()
        os.kill(srx[0], signal.SIGTERM)  # KillMode=mixed: the main process alone
        proc.wait(float(unit["TimeoutStopSec"][0]))
        took = time.monotonic() - t_stop
    finally:
        if proc.poll() is None:
            for p in descendants(proc.pid) | {proc.pid}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            proc.wait(10)
    out_text = "".join(lines)
    assert proc.returncode == 0, out_text
    assert "stopped srx_camera_x3: 1 frame in 1 model run" in out_text, out_text
    assert "stopped srx_camera_x4: 1 frame in 1 model run" in out_text and "stopped srx_camera_x2: 0 frames" in out_text
    assert "Traceback" not in out_text and took < float(unit["TimeoutStopSec"][0])
    assert not left_behind(children)
    assert list((state / "cache").rglob("*.onnx")), "the ONNX cache is not where the unit puts it"


ALERTS = UNIT.with_name("srx-alerts.yml")

#: promtool's unit test of deploy/srx-alerts.yml: series as srx's /metrics gives them, scraped once a
#: minute, and the alerts each rule must raise (and only those: a file that ended is no lost camera)
ALERT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'srx_source_state{{{box},source="door",state="reconnecting"}}'
        values: '0 0 1 0 1 1 1'
      - series: 'srx_source_state{{{box},source="door",state="stalled"}}'
        values: '0 0 0 1 0 0 0'
      - series: 'srx_source_state{{{box},source="clip",state="ended"}}'
        values: '1x6'
      - series: 'srx_source_state{{{box},source="clip",state="reconnecting"}}'
        values: '0x6'
      - series: 'srx_source_up{{{box},source="clip"}}'
        values: '0x6'
      - series: 'srx_source_state{{{box},source="yard",state="failed"}}'
        values: '0 0 0 0 0 0 1'
      - series: 'srx_backend_up{{{box},source="door"}}'
        values: '1 1 1 0 0 0 0'
      - series: 'srx_backend_up{{{box},source="clip"}}'
        values: '1x6'
      - series: 'srx_recording_up{{{box},source="door",output="/rec/door.mp4"}}'
        values: '1x6'
      - series: 'srx_recording_segments_lost_total{{{box},source="door",output="/rec/door.mp4"}}'
        values: '0 0 0 0 0 1 1'
      - series: 'srx_recording_up{{{box},source="clip",output="/rec/clip.mp4"}}'
        values: '1 1 1 1 1 0 0'
      - series: 'up{{{box}}}'
        values: '1 1 1 1 0 0 0'
      - series: 'srx_publish_up{{{box},source="door",output="rtsp://nvr:8554/door"}}'
        values: '1 1 0 0 0 0 1'
    alert_rule_test:
      - eval_time: 3m
        alertname: SrxCameraLost
      - eval_time: 4m
        alertname: SrxCameraLost
        exp_alerts:
          - exp_labels: {{severity: warning, {labels}, source: door}}
            exp_annotations: {{summary: "camera door on box1:8080 has sent no frame for 2 minutes"}}
      - eval_time: 6m
        alertname: SrxCameraLost
        exp_alerts:
          - exp_labels: {{severity: warning, {labels}, source: door}}
            exp_annotations: {{summary: "camera door on box1:8080 has sent no frame for 2 minutes"}}
      - eval_time: 6m
        alertname: SrxSourceFailed
        exp_alerts:
          - exp_labels: {{severity: critical, {labels}, source: yard, state: failed}}
            exp_annotations: {{summary: "source yard on box1:8080 failed for good"}}
      - eval_time: 6m
        alertname: SrxBicubicFallback
        exp_alerts:
          - exp_labels: {{severity: critical, {labels}, source: door}}
            exp_annotations: {{summary: "box1:8080: door goes out bicubic, the model backend is away"}}
      - eval_time: 6m
        alertname: SrxRecordingFailing
        exp_alerts:
          - exp_labels: {{severity: critical, {labels}, source: clip, output: /rec/clip.mp4}}
            exp_annotations: {{summary: "recording /rec/clip.mp4 on box1:8080 lost footage in the last 15 minutes"}}
          - exp_labels: {{severity: critical, {labels}, source: door, output: /rec/door.mp4}}
            exp_annotations: {{summary: "recording /rec/door.mp4 on box1:8080 lost footage in the last 15 minutes"}}
      - eval_time: 5m
        alertname: SrxPublishingLost
        exp_alerts:
          - exp_labels: {{severity: warning, {labels}, source: door, output: "rtsp://nvr:8554/door"}}
            exp_annotations: {{summary: "door on box1:8080 does not reach rtsp://nvr:8554/door"}}
      - eval_time: 6m
        alertname: SrxPublishingLost
      - eval_time: 6m
        alertname: SrxDown
        exp_alerts:
          - exp_labels: {{severity: critical, {labels}}}
            exp_annotations: {{summary: "srx on box1:8080 does not answer /metrics"}}
  - interval: 1m
    input_series:
      - series: 'srx_frames_read_total{{{box},source="door"}}'
        values: '0+600x20'
      - series: 'srx_frames_dropped_total{{{box},source="door"}}'
        values: '0+180x20'
      - series: 'srx_frames_read_total{{{box},source="gate"}}'
        values: '0+600x20'
      - series: 'srx_frames_dropped_total{{{box},source="gate"}}'
        values: '0+6x20'
      - series: 'srx_latency_seconds_sum{{{box},source="door"}}'
        values: '0+840x20'
      - series: 'srx_latency_seconds_count{{{box},source="door"}}'
        values: '0+420x20'
      - series: 'srx_latency_seconds_sum{{{box},source="gate"}}'
        values: '0+90x20'
      - series: 'srx_latency_seconds_count{{{box},source="gate"}}'
        values: '0+600x20'
      - series: 'srx_source_lag_seconds{{{box},source="door"}}'
        values: '0x5 12x15'
      - series: 'srx_source_lag_seconds{{{box},source="gate"}}'
        values: '0x5 12 0 12 0 12 0 12 0 12 0x10'
      - series: 'srx_frames_damaged_total{{{box},source="door"}}'
        values: '0+30x20'
      - series: 'srx_frames_damaged_total{{{box},source="gate"}}'
        values: '0+3x20'
    alert_rule_test:
      - eval_time: 20m
        alertname: SrxDroppingFrames
        exp_alerts:
          - exp_labels: {{severity: warning, {labels}, source: door}}
            exp_annotations: {{summary: "door on box1:8080 drops 30% of its frames"}}
      - eval_time: 20m
        alertname: SrxLatencyHigh
        exp_alerts:
          - exp_labels: {{severity: warning, {labels}, source: door}}
            exp_annotations: {{summary: "door on box1:8080 takes 2s from capture to output"}}
      - eval_time: 7m
        alertname: SrxCameraLate
      - eval_time: 8m
        alertname: SrxCameraLate
        exp_alerts:
          - exp_labels: {{severity: warning, {labels}, source: door}}
            exp_annotations: {{summary: "door on box1:8080: frames come 12s late (a slow link)"}}
      - eval_time: 20m
        alertname: SrxFramesDamaged
        exp_alerts:
          - exp_labels: {{severity: warning, {labels}, source: door}}
            exp_annotations: {{summary: "door on box1:8080: 5% of its frames come damaged"}}
"""


def promtool() -> str:
    from tests.conftest import skip_or_fail

    found = shutil.which("promtool")
    if found is None:
        skip_or_fail("promtool is not installed here (Debian's prometheus package; CI installs it via .ci/system-packages.sh)")
    return str(found)


def test_the_alert_rules_load_and_raise_what_they_say(tmp_path: Path) -> None:
    """deploy/srx-alerts.yml loads in Prometheus' own checker, and on series shaped as srx's /metrics
    gives them each rule raises its alert, with its labels and words, and nothing else: a camera
    reconnecting is lost, a file that ended is not (srx_source_up is 0 for both)."""
    tool = promtool()
    res = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "SUCCESS: 10 rules found" in res.stdout, res.stdout + res.stderr
    tests = tmp_path / "srx-alerts-test.yml"
    tests.write_text(ALERT_TESTS.format(rules=ALERTS, box='instance="box1:8080",job="srx"',
                                        labels='instance: "box1:8080", job: srx'))
    res = subprocess.run([tool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
