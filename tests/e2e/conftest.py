"""Fixtures: a running collector per test, its stderr attached to the report when a test fails.
A test that skips (a peer or tool is missing) fails instead under CI=true or
MILLWATCH_REQUIRE_PEERS, as scripts/test installs every one of them."""

from __future__ import annotations

import os

import pytest

from collector import Collector
from peer_processes import Peers


def skips_fail() -> bool:
    return os.environ.get("CI") == "true" or bool(os.environ.get("MILLWATCH_REQUIRE_PEERS"))


def fail_skip(report) -> None:
    """Turns a skip (not an expected failure) into a failure that says why it skipped."""
    if not report.skipped or hasattr(report, "wasxfail") or not skips_fail():
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true / MILLWATCH_REQUIRE_PEERS, which fails the run: {reason}"


def pytest_collectreport(report):
    fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    fail_skip(report)
    if report.failed:
        for c in getattr(item, "_collectors", []):
            tail = c.stderr_tail()
            if tail:
                report.sections.append((f"millwatch stderr ({c.workdir.name})", tail))


@pytest.fixture
def make_collector(request, tmp_path):
    """Factory: make_collector(config=None, name="c") -> a started Collector, stopped at teardown."""
    made: list[Collector] = []
    request.node._collectors = made

    def make(config: str | None = None, name: str = "c", start: bool = True) -> Collector:
        c = Collector(tmp_path / name, config=config)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    for c in made:
        if c.running:
            c.stop()
        else:
            c.kill()


@pytest.fixture
def collector(make_collector) -> Collector:
    return make_collector()


@pytest.fixture
def peers(tmp_path):
    """The test's peer processes (SMTP sink, HTTP recorder, Alertmanager), stopped at teardown."""
    p = Peers(tmp_path)
    yield p
    p.stop_all()
