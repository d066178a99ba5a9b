"""What the real-browser tests share: Playwright and Debian's chromium, or a skip that says why.

Importing this module from a test module skips that module (at collection) when Playwright or a
chromium binary is missing; no browser is ever downloaded.
"""

from __future__ import annotations

import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)", allow_module_level=True)

expect = sync_api.expect
expect.set_options(timeout=20_000)

#: Headless chromium as root on a closed network: no sandbox, no GPU, no background connections.
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
