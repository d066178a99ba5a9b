"""The "Verify me" tab of the web page in a real browser: the head-turn liveness challenge, answered by
Chromium's fake camera, then verification against the enrolled person.

The camera plays a .y4m clip written here (tests/liveness_video.py): Eileen Collins' photo either
mapped onto a head-shaped relief and turned (a live head, rendered) or tilted as a flat print. The
challenge's order is random, so the test reads it: the page's request for a challenge goes to the
real server (Playwright's ``route.fetch``), and before the answer reaches the page the camera file is
swapped for a clip that turns in that order. Chromium opens the clip when the page opens the camera,
and plays it from its first frame.

Skipped, saying why, when Playwright or a chromium binary is missing (no browser is downloaded).
"""

from __future__ import annotations

import re
import secrets

import httpx
import pytest

from browser_support import BROWSER_ARGS, CHROMIUM, expect, sync_api  # noqa: E402  (skips without a browser)

import liveness_video as video  # noqa: E402
import service_photos as photos  # noqa: E402
from service_server import running_server  # noqa: E402

EILEEN = "Eileen Collins"
ARROW = {"left": "←", "right": "→"}
CAMERA_ARGS = [*BROWSER_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
#: Capture (~5 s) + the server's check of ~45 frames on a busy 2-core machine + verification.
RESULT_MS = 45_000


def tid(name: str) -> str:
    """CSS selector of a data-testid."""
    return f'[data-testid="{name}"]'


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> video.FakeCamera:
    cam = video.FakeCamera(tmp_path_factory.mktemp("camera"))
    for kind in ("print", "head"):  # render the views now, not while the page waits for its challenge
        for steps in (("left", "right"), ("right", "left")):
            video.clip(steps, kind)
    return cam


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("serve-live")) as handle:
        r = httpx.post(f"{handle.url}/v1/people/{EILEEN}/faces", timeout=60,
                       headers={"Authorization": f"Bearer {handle.admin_key}"},
                       files=[("images", ("eileen.jpg", photos.astronaut(), "image/jpeg"))])
        assert r.status_code == 201, r.text
        yield handle


@pytest.fixture(scope="module")
def browser(camera):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=CAMERA_ARGS + [f"--use-file-for-fake-video-capture={camera.path}"])
        yield b
        b.close()


@pytest.fixture
def live_page(browser, server):
    """A fresh page on the "Verify me" tab with a kiosk key (identify scope), recording its requests."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    page.js_errors = []
    page.requests = []
    page.on("pageerror", lambda e: page.js_errors.append(str(e)))
    page.on("request", lambda r: page.requests.append((r.method, r.url)))
    page.goto(f"{server.url}/#live")
    page.fill(tid("api-key"), server.make_key(f"kiosk-{secrets.token_hex(4)}", ["identify"]))
    page.click(tid("key-save"))
    yield page
    ctx.close()


def start_challenge(page, camera: video.FakeCamera, kind: str, person: str = EILEEN) -> list[str]:
    """Type the person, start, and follow the cues the page shows; returns the steps asked."""
    page.route("**/v1/liveness/challenge", camera.answer_with(kind))
    expect(page.locator("#live-people option")).to_have_count(1)  # the enrolled names are offered
    page.fill(tid("live-person"), person)
    page.click(tid("live-start"))
    steps_shown = page.locator(tid("live-step"))
    expect(steps_shown).to_have_count(2)
    steps = [steps_shown.nth(i).get_attribute("data-step") for i in range(2)]
    assert steps == camera.served[-1][1] and camera.served[-1][0] == kind  # the page shows the server's steps
    # Each step is said with a big arrow (the preview is mirrored: the subject's left is the screen's left).
    for i, step in enumerate(steps):
        expect(page.locator(tid("live-instruction"))).to_contain_text(f"to your {step}", ignore_case=True)
        expect(page.locator(tid("live-arrow"))).to_have_text(ARROW[step])
        assert page.locator(tid("live-step")).nth(i).get_attribute("class") == "current"
    return steps


def answers(page) -> list[str]:
    """URLs of the liveness answers the page sent."""
    return [u for m, u in page.requests if m == "POST" and "/v1/liveness/" in u and not u.endswith("/challenge")]


def test_tilted_photo_is_not_live_and_nothing_is_verified(live_page, camera):
    page = live_page
    steps = start_challenge(page, camera, "print")
    verdict = page.locator(tid("live-verdict"))
    expect(verdict).to_have_text("Not live", timeout=RESULT_MS)
    assert verdict.get_attribute("data-live") == "false"
    expect(page.locator(tid("live-panel"))).to_have_attribute("data-state", "not-live")
    # The reason in plain words (here: the flat print's nose never moved like a turning head's), and the figures.
    reason = page.text_content(tid("live-reason"))
    assert "turns were not seen" in reason or "flat picture" in reason, reason
    assert page.text_content(tid("live-turns-asked")) == " then ".join(steps)
    assert page.text_content(tid("live-detail")).startswith(("turns_not_seen:", "no_parallax:"))
    expect(page.locator(tid("live-best"))).to_be_visible()
    # No verification was made, and the camera is closed.
    expect(page.locator(tid("live-verify"))).to_be_hidden()
    assert len(answers(page)) == 1
    assert not [u for m, u in page.requests if m == "POST" and "/verify" in u]
    expect(page.locator(tid("live-video"))).to_be_hidden()
    assert page.evaluate("() => document.querySelector('[data-testid=live-video]').srcObject === null")
    assert page.js_errors == []


def test_live_head_passes_and_is_verified(live_page, camera, server):
    page = live_page
    start_challenge(page, camera, "head")
    verdict = page.locator(tid("live-verdict"))
    expect(verdict).to_have_text(re.compile("."), timeout=RESULT_MS)
    assert verdict.text_content() == "Live", page.text_content(tid("live-detail"))
    expect(page.locator(tid("live-verify-verdict"))).to_have_text(f"Verified: {EILEEN}", timeout=20_000)
    assert page.get_attribute(tid("live-verify-verdict"), "data-same") == "true"
    assert "τ" in page.text_content(tid("live-verify-explain"))
    expect(page.locator(tid("live-panel"))).to_have_attribute("data-state", "done")
    # Frames from the raw video track are not mirrored, and the page says so: a wrong flag would swap
    # the turns the server reads and fail the order check.
    (answer,) = answers(page)
    assert answer.endswith("?mirrored=false")
    given = page.text_content(tid("live-frames"))
    usable, _, n = given.split()[:3]
    assert 20 <= int(n) <= 60 and int(usable) >= int(n) // 2, given
    verify = [u for m, u in page.requests if m == "POST" and "/verify?liveness=" in u]
    assert len(verify) == 1 and "/v1/people/Eileen%20Collins/verify" in verify[0]
    # The challenge was used by that verification: it cannot vouch for another photo.
    challenge_id = answer.rsplit("/", 1)[1].split("?")[0]
    r = httpx.post(f"{server.url}/v1/people/{EILEEN}/verify", params={"liveness": challenge_id}, timeout=30,
                   headers={"Authorization": f"Bearer {server.admin_key}"},
                   files={"image": ("e.jpg", photos.astronaut(), "image/jpeg")})
    assert r.status_code == 409 and r.json()["code"] == "challenge_used", r.text
    assert page.js_errors == []


def test_missing_name_and_unreachable_server_are_explained(live_page):
    page = live_page
    page.click(tid("live-start"))
    expect(page.locator(tid("live-error"))).to_have_text("Type or choose the name of an enrolled person.")
    page.route("**/v1/liveness/challenge", lambda route: route.abort("connectionrefused"))
    page.fill(tid("live-person"), EILEEN)
    page.click(tid("live-start"))
    expect(page.locator(tid("live-error"))).to_contain_text("The challenge could not be started: Cannot reach")
    expect(page.locator(tid("live-start"))).to_be_enabled()
    expect(page.locator(tid("live-video"))).to_be_hidden()
    assert page.js_errors == []
