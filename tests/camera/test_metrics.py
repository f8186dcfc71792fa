"""/metrics as Prometheus reads it: a real `srx stream --serve` run, its exposition checked by
promtool, scraped by a real Prometheus server that evaluates deploy/srx-alerts.yml."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.camera.conftest import free_port, wait_until
from tests.conftest import silent_video, skip_or_fail

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "srx-alerts.yml"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def test_prometheus_scrapes_a_run_and_its_alert_rules_tell_a_lost_camera_from_an_ended_file(
        tmp_path: Path, tiny_checkpoint) -> None:
    """A camera that is not plugged in (retried in the background) beside a file that ends, both
    recorded: promtool finds nothing to lint in /metrics, Prometheus takes every series, the lost
    camera's alert is pending and the ended file raises none (srx_source_up is 0 for both; a
    trial's rule on it alerted on every file that ended), the recording of the file is finished and
    up, and when srx stops, Prometheus' `up` goes to 0."""
    promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
    if promtool is None or prometheus is None:
        skip_or_fail("Prometheus is not installed here (Debian's prometheus package; CI installs it via "
                     ".ci/system-packages.sh)")
    if Path("/dev/video7").exists():
        skip_or_fail("this machine has a /dev/video7")
    clip = silent_video(tmp_path / "short.avi", 20, (48, 32))
    port, prom_port = free_port(), free_port()
    srx = subprocess.Popen(
        [sys.executable, "-m", "srx", "stream", "--camera", "7", "--source", str(clip), "-w", str(tiny_checkpoint(3)),
         "--backend", "torch", "--no-window", "-q", "--reconnect-max-wait", "1", "--duration", "120s",
         "--max-fps", "short=50",
         "--output", str(tmp_path / "rec" / "{name}.mkv"), "--segment", "1s", "--serve", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "srx", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
    prom = None
    base = f"http://127.0.0.1:{port}"
    try:
        def ended() -> bool:
            assert srx.poll() is None, srx.communicate()[0]
            try:
                return json.loads(_get(base + "/stats"))["sources"]["short"]["state"] == "ended"
            except OSError:
                return False

        wait_until(ended, 90, "the file source to end")
        settings = {name: {k: v.get(k) for k in ("source", "max_fps", "roi")}
                    for name, v in json.loads(_get(base + "/stats"))["sources"].items()}
        assert settings == {"cam7": {"source": "camera 7", "max_fps": None, "roi": None},  # what each was set to
                            "short": {"source": f"file {clip}", "max_fps": 50, "roi": None}}, settings
        metrics = _get(base + "/metrics")
        lint = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint.stdout + lint.stderr
        for series in ('srx_source_state{source="cam7",state="reconnecting"} 1', 'srx_backend_up{source="short"} 1',
                       'srx_recording_up{source="short",output="', "srx_build_info{", "srx_start_time_seconds "):
            assert series in metrics, (series, metrics)
        prom = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def query(expr: str) -> list[dict]:
            url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            try:
                return json.loads(_get(url))["data"]["result"]
            except OSError:
                assert prom.poll() is None, prom.communicate()[1]
                return []

        def value(expr: str) -> float | None:
            got = query(expr)
            return float(got[0]["value"][1]) if got else None

        wait_until(lambda: value('ALERTS{alertname="SrxCameraLost",source="cam7"}') == 1, 60,
                   "Prometheus to scrape srx and the lost camera's alert to be pending")
        assert query('ALERTS{alertname="SrxCameraLost",alertstate="pending"}')[0]["metric"]["source"] == "cam7"
        assert value('srx_source_state{source="short",state="ended"}') == 1 and value('srx_source_up{source="short"}') == 0
        assert not query('ALERTS{source="short"}')  # a file that ended is no camera lost
        assert value('srx_recording_up{source="short"}') == 1
        samples = [line for line in metrics.splitlines() if line and not line.startswith("#")]
        assert value('scrape_samples_scraped{job="srx"}') == len(samples)  # every series taken
        assert (tmp_path / "rec" / "short.mkv").exists() or list((tmp_path / "rec").glob("short-*.mkv"))
        srx.send_signal(signal.SIGTERM)
        srx.wait(60)
        wait_until(lambda: value('up{job="srx"}') == 0, 30, "Prometheus to see srx gone")
    finally:
        for proc in (srx, prom):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
