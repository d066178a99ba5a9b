"""Screenshots of the web page of ``facever serve`` (docs/screenshots/{verify,identify,people,liveness}.png).

Starts a real server on a free loopback port with a temporary gallery (tests/service_server.py),
enrols the two sample people (Eileen Collins from scikit-image, Grace Hopper from matplotlib),
and drives Debian's chromium with Playwright at 1280×800, each page with its results shown.
"Verify me" runs the liveness challenge with Chromium's fake camera playing a rendered head turning
(tests/liveness_video.py): liveness-turn.png during a turn, liveness.png with the results.

    python scripts/page_screenshots.py [--out docs/screenshots] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

import service_photos as photos  # noqa: E402
from liveness_video import FakeCamera  # noqa: E402
from page_photos import group_photo  # noqa: E402
from service_server import running_server  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--hide-scrollbars", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream"]
NAMES = ("verify", "identify", "people", "liveness-turn", "liveness")


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def write_photos(folder: Path) -> dict[str, Path]:
    """The sample photos as JPEG files in ``folder``."""
    data = {"eileen.jpg": photos.astronaut(), "eileen-mirrored.jpg": photos.astronaut_mirrored(),
            "grace.jpg": photos.hopper(), "grace-mirrored.jpg": photos.hopper_mirrored(),
            "group.jpg": photos.jpeg(group_photo())}
    out = {}
    for name, blob in data.items():
        out[name] = folder / name
        out[name].write_bytes(blob)
    return out


def enrol_over_http(url: str, key: str, person: str, *paths: Path) -> None:
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    r = httpx.post(f"{url}/v1/people/{person}/faces", files=files, headers={"Authorization": f"Bearer {key}"},
                   timeout=60)
    r.raise_for_status()


def shoot(page, url: str, files: dict[str, Path], out: Path) -> None:
    """People (enrolling Grace through the form), Verify and Identify, each with results, as PNGs in ``out``."""
    page.goto(f"{url}/#people")
    page.fill(tid("enrol-name"), "Grace Hopper")
    page.set_input_files(tid("enrol-files"), [files["grace.jpg"], files["grace-mirrored.jpg"]])
    page.click(tid("enrol-submit"))
    expect(page.locator(tid("enrol-report-row"))).to_have_count(2)
    expect(page.locator(tid("people-thumb-img"))).to_have_count(2)
    page.fill(tid("enrol-name"), "")
    page.locator(tid("people-search")).focus()
    page.screenshot(path=str(out / "people.png"))

    page.click(tid("tab-verify"))
    page.set_input_files(tid("verify-1-file"), files["eileen.jpg"])
    page.set_input_files(tid("verify-2-file"), files["eileen-mirrored.jpg"])
    page.click(tid("verify-submit"))
    expect(page.locator(tid("verify-verdict"))).to_have_text("Same person")
    page.screenshot(path=str(out / "verify.png"))

    page.click(tid("tab-identify"))
    page.set_input_files(tid("identify-file"), files["group.jpg"])
    page.click(tid("identify-submit"))
    expect(page.locator(tid("identify-face"))).to_have_count(3)
    page.screenshot(path=str(out / "identify.png"))


def shoot_liveness(page, url: str, camera: FakeCamera, out: Path) -> None:
    """"Verify me" for Eileen Collins: a shot while she turns (the arrow), one with the results."""
    page.route("**/v1/liveness/challenge", camera.answer_with("head"))
    page.goto(f"{url}/#live")
    page.fill(tid("live-person"), "Eileen Collins")
    page.click(tid("live-start"))
    expect(page.locator(tid("live-step"))).to_have_count(2)
    page.wait_for_function("""() => {
        const cue = document.querySelector('[data-testid=live-cue]');
        const p = document.querySelector('[data-testid=live-progress]');
        return cue && !cue.hidden && cue.dataset.step !== 'centre' && p.value > 0.3;
    }""")
    page.wait_for_timeout(700)  # well into the first turn
    page.screenshot(path=str(out / "liveness-turn.png"))
    expect(page.locator(tid("live-verify-verdict"))).to_have_text("Verified: Eileen Collins", timeout=90_000)
    page.locator(tid("live-person")).blur()
    page.screenshot(path=str(out / "liveness.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"),
                        help="chromium executable (default: from PATH)")
    args = parser.parse_args(argv)
    if not args.chromium:
        parser.error("no chromium on PATH: pass --chromium PATH")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "serve") as srv:
        files = write_photos(Path(tmp))
        # Eileen is enrolled through the API; Grace through the page (her report shows in people.png).
        enrol_over_http(srv.url, srv.admin_key, "Eileen Collins", files["eileen.jpg"], files["eileen-mirrored.jpg"])
        camera = FakeCamera(Path(tmp) / "camera")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium,
                                        args=ARGS + [f"--use-file-for-fake-video-capture={camera.path}"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            expect.set_options(timeout=30_000)
            page.goto(f"{srv.url}/#verify")
            page.fill(tid("api-key"), srv.admin_key)
            page.click(tid("key-save"))
            shoot(page, srv.url, files, args.out)
            shoot_liveness(page, srv.url, camera, args.out)
            browser.close()
    for name in NAMES:
        print(args.out / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
