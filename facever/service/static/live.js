// "Verify me": a head-turn liveness challenge with the webcam, then verification against an enrolled person.
//
// 1. POST /v1/liveness/challenge → {id, steps, instructions}: the turns to make, in a random order.
// 2. The webcam opens; the page says each step with a big arrow and captures frames (JPEG, ~8 per second).
// 3. POST /v1/liveness/{id} with the frames → live or not, and why.
// 4. When live: POST /v1/people/{person}/verify?liveness={id} with the most frontal frame (best_frame).
//
// Mirroring: the preview is shown mirrored (like a mirror, so "turn to your left" moves the face to the
// screen's left and the arrow points that way), but frames are drawn from the video track itself, which is
// not mirrored: they are sent with mirrored=false. Server text reaches the page only through textContent.

import { personPath, requestJson } from "./api.js";
import { openCamera, stopCamera } from "./photo.js";
import { $, el, num, say } from "./ui.js";

const FPS = 8; // frames captured per second
const MAX_FRAMES = 60; // the server takes at most 60 frames of at most 1 MB
const MAX_SIDE = 640; // frames are downscaled to this width (the detector works at ≤ 640 px anyway)
const LEAD_MS = 800; // "look at the camera" before the first turn: the capture must start frontal
const STEP_MS = 2000; // per turn: turn, hold, come back
const TAIL_MS = 600; // "back to the centre"
const ARROWS = { left: "←", right: "→", centre: "◎" };
const SAY = { left: "turn your head to your left", right: "turn your head to your right" };

/** Plain words for each refusal code of the liveness check. */
const PLAIN = {
  live: "A live head: the turns you were asked for were seen, with the depth of a real face.",
  no_parallax: "This looks like a flat picture (a photo or a screen), not a real head: the nose did not "
    + "stand out from the face as it turned.",
  turns_not_seen: "The head turns were not seen. Turn your head further to each side when the arrow says "
    + "(a third of the way to your shoulder or more), then back.",
  wrong_order: "The turns came in the wrong order: follow the arrows in the order they are shown.",
  not_frontal_start: "The capture must start with you facing the camera: look straight at it until the "
    + "first arrow appears.",
  identity_changed: "The face changed during the capture: only one person should be in front of the camera.",
  too_few_usable_frames: "Too few frames showed a usable face: face the camera in good light, close enough "
    + "and holding still between turns.",
  too_many_frames: "Too many frames were sent for one capture.",
  challenge_expired: "The challenge expired before it was answered: start again.",
};

const state = { run: 0, cancel: null, urls: [] };

/** Wire the "Verify me" tab. */
export function initLive() {
  $("live-form").addEventListener("submit", (e) => {
    e.preventDefault();
    start();
  });
  $("live-cancel").addEventListener("click", () => {
    if (state.cancel) state.cancel("Cancelled.");
  });
}

/** The tab is shown: offer the enrolled names (when the key may list them; typing a name always works). */
export async function showLive() {
  try {
    const r = await requestJson("/v1/people?limit=500", { scope: "identify" });
    const list = $("live-people");
    list.replaceChildren();
    for (const p of r.people || []) {
      const option = document.createElement("option");
      option.value = p.name;
      list.appendChild(option);
    }
  } catch {
    /* no list (no key, or a key without the identify scope): the name can still be typed */
  }
}

function setState(name) {
  $("live-panel").dataset.state = name;
}

function resetResults() {
  say($("live-error"), "");
  $("live-result").hidden = true;
  $("live-verify").hidden = true;
  for (const id of ["live-verify-verdict", "live-verify-explain", "live-count"]) $(id).textContent = "";
  say($("live-verify-error"), "");
  $("live-best").hidden = true;
  $("live-steps").replaceChildren();
  $("live-progress").value = 0;
  delete $("live-cue").dataset.step;
  $("live-instruction").textContent = "";
  state.urls.splice(0).forEach((u) => URL.revokeObjectURL(u));
}

async function start() {
  const name = $("live-person").value.trim();
  resetResults();
  if (!name) {
    say($("live-error"), "Type or choose the name of an enrolled person.");
    return;
  }
  const run = ++state.run;
  const status = $("live-status");
  $("live-start").disabled = true;
  setState("challenge");
  status.textContent = "Asking the server for a challenge…";
  let stage = "challenge";
  try {
    const challenge = await requestJson("/v1/liveness/challenge", { method: "POST" });
    if (run !== state.run) return;
    showSteps(challenge);
    stage = "camera";
    status.textContent = "Opening the camera…";
    const frames = await capture(challenge, run);
    if (run !== state.run) return;
    stage = "check";
    setState("checking");
    status.textContent = `Checking ${frames.length} frames…`;
    const form = new FormData();
    frames.forEach((blob, i) => form.append("frames", blob, `frame-${String(i + 1).padStart(2, "0")}.jpg`));
    const result = await requestJson(`/v1/liveness/${encodeURIComponent(challenge.id)}?mirrored=false`,
      { method: "POST", body: form });
    if (run !== state.run) return;
    showLiveness(result, frames);
    if (!result.live) {
      setState("not-live");
      return;
    }
    stage = "verify";
    setState("verifying");
    status.textContent = `Verifying your face against ${name}…`;
    await verify(name, challenge.id, frames[result.best_frame ?? 0]);
    setState("done");
  } catch (err) {
    if (run !== state.run) return;
    const where = { challenge: "The challenge could not be started: ", camera: "", check: "The frames could not be "
      + "checked: ", verify: "The verification failed: " }[stage];
    say(stage === "verify" ? $("live-verify-error") : $("live-error"), `${where}${err.message}`);
    if (stage === "verify") $("live-verify").hidden = false;
    setState("error");
  } finally {
    if (run === state.run) {
      status.textContent = "";
      $("live-start").disabled = false;
      $("live-cue").hidden = true;
    }
  }
}

function showSteps(challenge) {
  const list = $("live-steps");
  list.replaceChildren();
  (challenge.steps || []).forEach((step, i) => {
    const words = (challenge.instructions || [])[i] || SAY[step] || step;
    const li = el("li", { testid: "live-step", text: `${ARROWS[step] || ""} ${words}` });
    li.dataset.step = step;
    list.appendChild(li);
  });
}

/** The cue at `t` ms since the capture began: {key: "left" | "right" | "centre", text, index of the step}. */
function cueAt(t, steps, instructions) {
  if (t < LEAD_MS) return { key: "centre", text: "Look straight at the camera", index: -1 };
  const i = Math.floor((t - LEAD_MS) / STEP_MS);
  if (i >= steps.length) return { key: "centre", text: "Back to the centre", index: steps.length };
  const words = instructions[i] || SAY[steps[i]] || steps[i];
  const text = i === 0 ? words : `Now ${words.replace(/^turn your head /, "")}`;
  return { key: steps[i], text: text.charAt(0).toUpperCase() + text.slice(1), index: i };
}

function showCue(cue) {
  const box = $("live-cue");
  box.hidden = false;
  if (box.dataset.step === cue.key && $("live-instruction").textContent === cue.text) return; // said once
  box.dataset.step = cue.key;
  $("live-arrow").textContent = ARROWS[cue.key] || "";
  $("live-instruction").textContent = cue.text;
  $("live-steps").querySelectorAll("li").forEach((li, i) => {
    li.classList.toggle("current", i === cue.index);
    li.classList.toggle("done", i < cue.index);
  });
}

/** Open the camera, say each step and capture frames; resolves with the JPEG blobs in capture order. */
async function capture(challenge, run) {
  const steps = challenge.steps || [];
  const instructions = challenge.instructions || [];
  const video = $("live-video");
  let stopped = ""; // why the capture must end early ("" while it runs)
  let wake = () => {}; // ends the current wait between two frames
  const stop = (why) => { if (!stopped) stopped = why; wake(); };
  state.cancel = (why) => { stop(why); stopCamera(); };
  $("live-cancel").hidden = false;
  try {
    // onStop: the camera closed under us (Cancel, another tab, another camera opened)
    await openCamera(video, () => stop("The camera closed before the capture ended: start again."));
    if (stopped) throw new Error(stopped);
    setState("capturing");
    $("live-status").textContent = "Follow the arrows.";
    const total = LEAD_MS + steps.length * STEP_MS + TAIL_MS;
    const interval = Math.max(1000 / FPS, total / (MAX_FRAMES - 1));
    const canvas = document.createElement("canvas");
    const frames = [];
    const t0 = performance.now();
    for (let k = 0; frames.length < MAX_FRAMES; k++) {
      const t = performance.now() - t0;
      if (t > total) break;
      showCue(cueAt(t, steps, instructions));
      frames.push(await grab(video, canvas));
      $("live-progress").value = Math.min(1, t / total);
      $("live-count").textContent = `${frames.length} frames`;
      const wait = t0 + (k + 1) * interval - performance.now();
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, Math.max(0, wait)); });
      if (stopped) throw new Error(stopped);
      if (run !== state.run) throw new Error("Cancelled.");
    }
    $("live-progress").value = 1;
    return frames;
  } finally {
    state.cancel = null;
    $("live-cancel").hidden = true;
    $("live-cue").hidden = true;
    if (video.srcObject) stopCamera(); // ours is still the open camera
  }
}

/** The video's current frame (the track's own pixels: not mirrored), ≤ MAX_SIDE wide, as a JPEG blob. */
async function grab(video, canvas) {
  const scale = Math.min(1, MAX_SIDE / video.videoWidth);
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  if (!blob) throw new Error("A camera frame could not be encoded.");
  return blob;
}

function showLiveness(r, frames) {
  const live = !!r.live;
  const verdict = $("live-verdict");
  verdict.textContent = live ? "Live" : "Not live";
  verdict.className = `verdict ${live ? "same" : "different"}`;
  verdict.dataset.live = String(live);
  $("live-reason").textContent = PLAIN[r.code] || (typeof r.reason === "string" ? r.reason : "No reason given.");
  // the server's own words, for the curious (and for support): only on a refusal, where they add figures
  const why = typeof r.reason === "string" ? r.reason : "no reason given";
  say($("live-detail"), live ? "" : `${r.code || "refused"}: ${why}`);
  const checks = r.checks || {};
  const f = checks.frames || {};
  const turns = checks.turns || {};
  const par = checks.parallax || {};
  const words = (list) => (Array.isArray(list) && list.length ? list.join(" then ") : "none");
  $("live-frames").textContent = f.given === undefined ? `${frames.length} sent` : `${f.usable} of ${f.given} usable`;
  $("live-turns-asked").textContent = words((r.challenge || {}).steps || turns.steps_asked);
  $("live-turns-seen").textContent = words(r.steps_seen);
  $("live-parallax").textContent = par.value === null || par.value === undefined ? "n/a"
    : `${num(par.value)} (needs ≥ ${num(par.threshold)})`;
  const best = r.best_frame;
  if (Number.isInteger(best) && frames[best]) {
    const url = URL.createObjectURL(frames[best]);
    state.urls.push(url);
    $("live-best-img").src = url;
    $("live-best-caption").textContent = `Frame ${best + 1} of ${frames.length}, the most frontal, as sent`
      + (live ? ": the face that is verified" : "");
    $("live-best").hidden = false;
  }
  $("live-result").hidden = false;
}

async function verify(name, challengeId, frame) {
  const form = new FormData();
  form.append("image", frame, "best-frame.jpg");
  const path = `${personPath(name)}/verify?liveness=${encodeURIComponent(challengeId)}`;
  const r = await requestJson(path, { method: "POST", body: form, scope: "identify" });
  const same = !!r.same;
  const verdict = $("live-verify-verdict");
  verdict.textContent = same ? `Verified: ${r.person ?? name}` : `Not ${r.person ?? name}`;
  verdict.className = `verdict ${same ? "same" : "different"}`;
  verdict.dataset.same = String(same);
  $("live-verify-explain").textContent = `distance ${num(r.distance)} ${same ? "≤" : ">"} τ ${num(r.threshold)} `
    + `to ${r.person ?? name}'s nearest enrolled face`;
  $("live-verify").hidden = false;
}
