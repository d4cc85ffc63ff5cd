"""Fixtures: a running collector per test, its stderr attached to the report when a test fails."""

from __future__ import annotations

import pytest

from collector import Collector


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
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
