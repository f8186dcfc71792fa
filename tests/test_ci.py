"""CI (.ci/run) sets SRX_REQUIRE_ALL=1: there the suite's skips for want of ../shared, an RTSP server or
Chromium become failures, so a green CI cannot hide that those tests never ran."""
from __future__ import annotations

from pathlib import Path

import pytest

import tests.conftest as conftest

REPO = Path(__file__).resolve().parents[1]


def test_ci_requires_everything():
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    export = lines.index("export SRX_REQUIRE_ALL=1")
    assert export < lines.index("bash scripts/test.sh")


def test_require_all_turns_these_skips_into_failures(monkeypatch):
    monkeypatch.setattr(conftest, "REQUIRE_ALL", True)
    with pytest.raises(pytest.fail.Exception, match="SRX_REQUIRE_ALL is set.*not found"):
        conftest.need_shared(REPO / "no" / "such" / "dataset")
    with pytest.raises(pytest.fail.Exception, match="no chromium"):
        conftest.skip_or_fail("no chromium on this machine")
    monkeypatch.setattr(conftest, "REQUIRE_ALL", False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        conftest.need_shared(REPO / "no" / "such" / "dataset")
