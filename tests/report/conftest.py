"""Report tests: one headless Chromium for the whole session (fixture ``browser``), and helpers
that render a report through the real CLI in-process."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.report.browser import CHROMIUM, Browser


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian package `chromium`)")
    with Browser.start() as b:
        yield b


def run_cli(*args: str):
    from diag.cli import app

    return CliRunner().invoke(app, list(args))
