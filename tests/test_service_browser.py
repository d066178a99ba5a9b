"""The web page of ``facever serve`` in a real browser: Playwright driving Debian's chromium.

A real uvicorn server (tests/service_server.py) with a temporary gallery, real faces that packages
ship (Eileen Collins from scikit-image, Grace Hopper from matplotlib, the cameraman from
scikit-image as a stranger), and Chromium's fake camera fed from a .y4m file written here.
Skipped, saying why, when Playwright or a chromium binary is missing (no browser is downloaded).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browser_support import BROWSER_ARGS, CHROMIUM, expect, sync_api  # noqa: E402  (skips without a browser)

import httpx  # noqa: E402

import service_photos as photos  # noqa: E402
from page_photos import cameraman_rgb, group_photo, write_y4m  # noqa: E402
from service_server import running_server  # noqa: E402

EILEEN = "Eileen Collins"
GRACE = "Grace Hopper"
HOSTILE = '<img src=x onerror="window.__pwned=1">Ada & Co/Lovelace'
TIMEOUT_MS = 20_000


def tid(name: str) -> str:
    """CSS selector of a data-testid."""
    return f'[data-testid="{name}"]'


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The photos as files to upload, a text file posing as a photo, the fake camera's clip."""
    d = tmp_path_factory.mktemp("photos")
    out = {"astronaut": d / "astronaut.jpg", "mirrored": d / "astronaut-mirrored.jpg", "hopper": d / "hopper.jpg",
           "group": d / "group.jpg", "cameraman": d / "cameraman.jpg", "text": d / "notes.jpg", "y4m": d / "cam.y4m"}
    out["astronaut"].write_bytes(photos.astronaut())
    out["mirrored"].write_bytes(photos.astronaut_mirrored())
    out["hopper"].write_bytes(photos.hopper())
    out["degraded"] = d / "astronaut-degraded.jpg"
    out["degraded"].write_bytes(photos.astronaut_degraded())
    out["group"].write_bytes(photos.jpeg(group_photo()))
    out["cameraman"].write_bytes(photos.jpeg(cameraman_rgb()))
    out["text"].write_text("these are notes, not a photo\n")
    write_y4m(out["y4m"], photos.astronaut_rgb())
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("serve")) as handle:
        yield handle


@pytest.fixture(scope="module")
def browser(files):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS + [
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={files['y4m']}"])
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """open_page(url, key=None, tab="verify") → a fresh page (own sessionStorage) with the key typed in."""
    contexts = []

    def _open(url: str, key: str | None = None, tab: str = "verify"):
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.js_errors = errors
        page.goto(f"{url}/#{tab}")
        if key is not None:
            page.fill(tid("api-key"), key)
            page.click(tid("key-save"))
        return page

    yield _open
    for ctx in contexts:
        ctx.close()


def canvas_alpha(page, testid: str, points: list[tuple[float, float]]) -> list[int]:
    """Alpha of the overlay canvas at image-pixel ``points`` (scaled to the displayed size like the page)."""
    return page.evaluate(
        """([sel, pts]) => {
            const c = document.querySelector(sel);
            const img = c.parentElement.querySelector("img");
            const k = c.width / img.naturalWidth, ky = c.height / img.naturalHeight;
            const ctx = c.getContext("2d");
            return pts.map(([x, y]) => ctx.getImageData(Math.round(x * k), Math.round(y * ky), 1, 1).data[3]);
        }""", [tid(testid), points])


def box_is_drawn(page, testid: str, box: list[float]) -> bool:
    """The box's four edge midpoints are painted and its centre is not."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    edges = canvas_alpha(page, testid, [(x1, cy), (x2, cy), (cx, y1), (cx, y2)])
    return min(edges) > 0 and canvas_alpha(page, testid, [(cx, cy)])[0] == 0


def api_verify(server_url: str, key: str, a: Path, b: Path) -> httpx.Response:
    """The same comparison straight through the API (to know where the boxes must be)."""
    files = {"image1": (a.name, a.read_bytes(), "image/jpeg"), "image2": (b.name, b.read_bytes(), "image/jpeg")}
    return httpx.post(f"{server_url}/v1/verify", headers={"Authorization": f"Bearer {key}"}, files=files, timeout=30)


def test_verify_same_and_different_with_boxes(server, files, open_page):
    key = server.make_key("kiosk-browser", ["verify"])
    page = open_page(server.url, key)
    expect(page.locator(tid("model-version"))).to_contain_text("model ")
    page.set_input_files(tid("verify-1-file"), files["astronaut"])
    page.set_input_files(tid("verify-2-file"), files["mirrored"])
    page.click(tid("verify-submit"))
    expect(page.locator(tid("verify-verdict"))).to_have_text("Same person")
    expected = api_verify(server.url, key, files["astronaut"], files["mirrored"]).json()
    assert page.text_content(tid("verify-distance")) == f"{expected['distance']:.3f}"
    assert page.text_content(tid("verify-threshold")) == f"{expected['threshold']:.3f}"
    assert "%" in page.text_content(tid("verify-far")) and "%" in page.text_content(tid("verify-frr"))
    for i in (1, 2):
        assert page.get_attribute(tid(f"verify-{i}-overlay"), "data-faces") == "1"
        assert box_is_drawn(page, f"verify-{i}-overlay", expected["faces"][i - 1]["box"])
    # A different second photo clears the boxes, then gives the other verdict.
    page.set_input_files(tid("verify-2-file"), files["hopper"])
    expect(page.locator(tid("verify-result"))).to_be_hidden()
    page.click(tid("verify-submit"))
    expect(page.locator(tid("verify-verdict"))).to_have_text("Different people")
    expected = api_verify(server.url, key, files["astronaut"], files["hopper"]).json()
    assert box_is_drawn(page, "verify-2-overlay", expected["faces"][1]["box"])
    assert page.js_errors == []


def test_enrol_two_people_list_and_identify(server, files, open_page):
    page = open_page(server.url, server.admin_key, tab="people")
    for name, photo in [(EILEEN, files["astronaut"]), (GRACE, files["hopper"])]:
        page.fill(tid("enrol-name"), name)
        page.set_input_files(tid("enrol-files"), photo)
        page.click(tid("enrol-submit"))
        expect(page.locator(tid("enrol-summary"))).to_contain_text(f"{name}: 1 enrolled")
        expect(page.locator(tid("enrol-report-status"))).to_have_text(["enrolled"])
        expect(page.locator(tid("enrol-lookalikes"))).to_be_hidden()  # two different people
    expect(page.locator(tid("people-row"))).to_have_count(2)
    assert sorted(page.locator(tid("people-name")).all_text_contents()) == sorted([EILEEN, GRACE])
    # Thumbnails: the stored crops, fetched with the admin key as blob URLs.
    expect(page.locator(tid("people-thumb-img"))).to_have_count(2)
    assert page.get_attribute(tid("people-thumb-img") + " >> nth=0", "src").startswith("blob:")

    page.click(tid("tab-identify"))
    page.set_input_files(tid("identify-file"), files["group"])
    page.click(tid("identify-submit"))
    names = page.locator(tid("identify-face-name"))
    expect(names).to_have_count(3)
    assert sorted(names.all_text_contents()) == sorted([EILEEN, GRACE, "unknown"])
    expect(page.locator(tid("identify-summary"))).to_contain_text("expected FPIR")
    label = page.get_attribute(tid("identify-overlay"), "aria-label")
    assert EILEEN in label and GRACE in label and "unknown" in label
    r = httpx.post(f"{server.url}/v1/identify", params={"faces": "all"}, timeout=30,
                   headers={"Authorization": f"Bearer {server.admin_key}"},
                   files={"image": ("group.jpg", files["group"].read_bytes(), "image/jpeg")}).json()
    for face in r["faces"]:
        x1, y1, x2, y2 = face["face"]["box"]
        assert box_is_drawn(page, "identify-overlay", face["face"]["box"])
        # The label sits above the box (below it, or inside its top edge, where labels would overlap).
        assert max(canvas_alpha(page, "identify-overlay", [(x1 + 3, y1 - 8), (x1 + 3, y2 + 8), (x1 + 3, y1 + 8)])) > 0

    # A key without the admin scope: neutral placeholders instead of crops, and no error shown.
    page = open_page(server.url, server.make_key("door-browser", ["identify"]), tab="people")
    expect(page.locator(tid("people-row"))).to_have_count(2)
    page.wait_for_load_state("networkidle")
    expect(page.locator(tid("people-thumb-img"))).to_have_count(0)
    eileen = page.locator(tid("people-row")).filter(has_text=EILEEN)
    expect(eileen.locator(tid("people-thumb"))).to_have_text("EC")
    expect(page.locator(tid("people-error"))).to_be_hidden()
    assert page.js_errors == []


def test_enrolling_a_look_alike_shows_a_warning(server, files, open_page):
    """A worse photo of Eileen Collins under a new name is enrolled, with a visible warning naming her."""
    page = open_page(server.url, server.admin_key, tab="people")
    page.fill(tid("enrol-name"), "Look Alike")
    page.set_input_files(tid("enrol-files"), files["degraded"])
    page.click(tid("enrol-submit"))
    expect(page.locator(tid("enrol-summary"))).to_contain_text("Look Alike: 1 enrolled")
    warning = page.locator(tid("enrol-lookalike"))
    expect(warning).to_have_count(1)
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(f"looks like {EILEEN}")
    expect(warning).to_contain_text("identification threshold")
    r = httpx.delete(f"{server.url}/v1/people/Look%20Alike", headers={"Authorization": f"Bearer {server.admin_key}"})
    assert r.status_code == 200
    assert page.js_errors == []


def test_hostile_name_rename_and_remove(server, files, open_page):
    page = open_page(server.url, server.admin_key, tab="people")
    page.fill(tid("enrol-name"), HOSTILE)
    page.set_input_files(tid("enrol-files"), files["cameraman"])
    page.check(tid("enrol-force"))
    page.click(tid("enrol-submit"))
    expect(page.locator(tid("enrol-summary"))).to_contain_text("1 enrolled")
    page.fill(tid("people-search"), "lovelace")  # debounced search with ?q=
    row = page.locator(tid("people-row"))
    expect(row).to_have_count(1)
    expect(row.locator(tid("people-name"))).to_have_text(HOSTILE)  # shown as text, never parsed as HTML
    assert page.evaluate("() => window.__pwned === undefined && !document.querySelector('img[src=x]')")
    # "Add photos" on the row: the same photo again is reported as skipped, not stored twice.
    row.locator(tid("people-add-files")).set_input_files(files["cameraman"])
    expect(page.locator(tid("enrol-report-status"))).to_have_text(["skipped"])
    expect(row.locator(tid("people-count"))).to_have_text("1 face")

    row.locator(tid("people-rename")).click()
    page.fill(tid("people-rename-input"), "Ada Lovelace")
    page.click(tid("people-rename-save"))
    expect(page.locator(tid("people-message"))).to_contain_text("Renamed")
    expect(page.locator(tid("people-name"))).to_have_text(["Ada Lovelace"])

    row = page.locator(tid("people-row"))
    row.locator(tid("people-remove")).click()
    dialog = page.locator(tid("confirm-dialog"))
    expect(dialog).to_be_visible()
    expect(page.locator(tid("confirm-text"))).to_contain_text("Ada Lovelace")
    page.click(tid("confirm-cancel"))  # cancelling keeps the person
    expect(dialog).to_be_hidden()
    expect(page.locator(tid("people-row"))).to_have_count(1)
    row.locator(tid("people-remove")).click()
    page.click(tid("confirm-ok"))
    expect(page.locator(tid("people-message"))).to_contain_text("Removed")
    expect(page.locator(tid("people-row"))).to_have_count(0)
    people = httpx.get(f"{server.url}/v1/people", headers={"Authorization": f"Bearer {server.admin_key}"}).json()
    assert "Ada Lovelace" not in [p["name"] for p in people["people"]]
    assert page.js_errors == []


def test_wrong_key_and_missing_scope_are_explained(server, files, open_page):
    page = open_page(server.url, "not-a-real-key")
    expect(page.locator(tid("global-error"))).to_contain_text("key is not valid")
    page.set_input_files(tid("verify-1-file"), files["astronaut"])
    page.set_input_files(tid("verify-2-file"), files["mirrored"])
    page.click(tid("verify-submit"))
    expect(page.locator(tid("verify-error"))).to_contain_text("key is not valid")
    expect(page.locator(tid("verify-result"))).to_be_hidden()

    page = open_page(server.url, server.make_key("verify-only", ["verify"]), tab="people")
    expect(page.locator(tid("people-error"))).to_have_text("This key lacks the “identify” scope.")
    expect(page.locator(tid("global-error"))).to_be_hidden()


def test_non_image_and_network_failure_are_explained(server, files, open_page):
    page = open_page(server.url, server.admin_key)
    page.set_input_files(tid("verify-1-file"), files["text"])
    page.set_input_files(tid("verify-2-file"), files["astronaut"])
    page.click(tid("verify-submit"))
    r = api_verify(server.url, server.admin_key, files["text"], files["astronaut"])
    assert r.status_code == 415
    expect(page.locator(tid("verify-error"))).to_have_text(r.json()["detail"])
    # A request that never reaches the server is explained as text too.
    page.route("**/v1/verify", lambda route: route.abort("connectionrefused"))
    page.set_input_files(tid("verify-1-file"), files["astronaut"])
    page.click(tid("verify-submit"))
    expect(page.locator(tid("verify-error"))).to_contain_text("Cannot reach the server")


def test_webcam_snapshot_against_a_no_auth_server(tmp_path, files, open_page):
    with running_server(tmp_path, args=["--no-auth"], with_admin_key=False) as srv:
        page = open_page(srv.url)  # no key typed: --no-auth needs none
        expect(page.locator(tid("model-version"))).to_contain_text("model ")
        for i in (1, 2):
            page.click(tid(f"verify-{i}-camera"))
            expect(page.locator(tid(f"verify-{i}-video") + '[data-live="true"]')).to_be_visible()
            page.click(tid(f"verify-{i}-capture"))
            expect(page.locator(tid(f"verify-{i}-image"))).to_be_visible()
            expect(page.locator(tid(f"verify-{i}-video"))).to_be_hidden()
        page.click(tid("verify-submit"))
        # The server found Eileen Collins' face in both camera frames: same person, one box each.
        expect(page.locator(tid("verify-verdict"))).to_have_text("Same person")
        for i in (1, 2):
            assert page.get_attribute(tid(f"verify-{i}-overlay"), "data-faces") == "1"
        # The enrol form takes webcam snapshots too.
        page.click(tid("tab-people"))
        page.click(tid("enrol-camera"))
        expect(page.locator(tid("enrol-video") + '[data-live="true"]')).to_be_visible()
        page.click(tid("enrol-capture"))
        expect(page.locator(tid("enrol-snapshot"))).to_have_count(1)
        page.fill(tid("enrol-name"), EILEEN)
        page.click(tid("enrol-submit"))
        expect(page.locator(tid("enrol-report-status"))).to_have_text(["enrolled"])
        expect(page.locator(tid("people-name"))).to_have_text([EILEEN])
        assert page.js_errors == []
