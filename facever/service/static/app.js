// facever web page: key field, model header, tabs, Verify and Identify. People lives in people.js,
// "Verify me" (the liveness challenge) in live.js.
// Server text (names, details) only ever goes into the page through textContent.

import { getKey, setKey, requestJson } from "./api.js";
import { PhotoSlot, stopCamera } from "./photo.js";
import { initPeople, showPeople } from "./people.js";
import { initLive, showLive } from "./live.js";
import { $, say, pct, num } from "./ui.js";


// ───────────────────────── key and model header ─────────────────────────

let modelSeq = 0;

async function loadModel() {
  const label = $("model-version");
  const seq = ++modelSeq;
  try {
    const m = await requestJson("/v1/model");
    if (seq !== modelSeq) return; // the key changed meanwhile
    label.classList.remove("bad");
    const t = m.threshold || {};
    label.textContent = `model ${m.version} · τ ${num(t.value)}`;
    label.title = `facever ${m.facever_version || "?"} · ${m.embedding_dim}-d embeddings · `
      + `FAR ${pct(t.far)} / FRR ${pct(t.frr)} at τ`;
    say($("global-error"), "");
  } catch (err) {
    if (seq !== modelSeq) return;
    label.textContent = "model: unknown";
    label.title = "";
    label.classList.add("bad");
    say($("global-error"), err.message);
  }
}

function showKeyState() {
  $("key-state").textContent = getKey() ? "key set for this tab" : "no key";
}

function initKey() {
  const input = $("api-key");
  input.value = getKey();
  showKeyState();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setKey(input.value.trim());
    showKeyState();
    onKeyChanged();
  });
  $("key-clear").addEventListener("click", () => {
    input.value = "";
    setKey("");
    showKeyState();
    onKeyChanged();
  });
}

function onKeyChanged() {
  loadModel();
  if (!document.getElementById("panel-people").hidden) showPeople();
  if (!document.getElementById("panel-live").hidden) showLive();
}

// ───────────────────────── tabs ─────────────────────────

const TABS = ["verify", "live", "identify", "people"];
let currentTab = "";

function selectTab(name, { focus = false } = {}) {
  if (!TABS.includes(name)) name = "verify";
  if (name !== currentTab) stopCamera(); // no preview left running on a hidden tab
  currentTab = name;
  for (const t of TABS) {
    const tab = document.getElementById(`tab-${t}`);
    const on = t === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    document.getElementById(`panel-${t}`).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "people") showPeople();
  if (name === "live") showLive();
}

function initTabs() {
  for (const t of TABS) {
    const tab = document.getElementById(`tab-${t}`);
    tab.addEventListener("click", () => selectTab(t));
    tab.addEventListener("keydown", (e) => {
      const i = TABS.indexOf(t);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      selectTab(TABS[(next + TABS.length) % TABS.length], { focus: true });
    });
  }
  window.addEventListener("hashchange", () => selectTab(location.hash.slice(1)));
  selectTab(location.hash.slice(1) || "verify");
}

// ───────────────────────── Verify ─────────────────────────

function initVerify() {
  const error = $("verify-error");
  const result = $("verify-result");
  const submit = $("verify-submit");
  const onChange = () => {
    submit.disabled = !(slots[0].file && slots[1].file);
    result.hidden = true;
    say(error, "");
    slots.forEach((s) => s.setBoxes([]));
  };
  const onError = (msg) => say(error, msg);
  const slots = [1, 2].map((i) => new PhotoSlot($(`verify-slot-${i}`), {
    id: `verify-${i}`, title: i === 1 ? "First photo" : "Second photo", onChange, onError,
  }));
  submit.addEventListener("click", async () => {
    const form = new FormData();
    form.append("image1", slots[0].file, slots[0].fileName);
    form.append("image2", slots[1].file, slots[1].fileName);
    submit.disabled = true;
    say(error, "");
    result.hidden = true;
    $("verify-status").textContent = "Comparing…";
    try {
      const r = await requestJson("/v1/verify", { method: "POST", body: form, scope: "verify" });
      showVerify(r, slots);
    } catch (err) {
      say(error, err.message);
    } finally {
      $("verify-status").textContent = "";
      submit.disabled = !(slots[0].file && slots[1].file);
    }
  });
}

function showVerify(r, slots) {
  const verdict = $("verify-verdict");
  verdict.textContent = r.same ? "Same person" : "Different people";
  verdict.className = `verdict ${r.same ? "same" : "different"}`;
  verdict.dataset.same = String(!!r.same);
  const max = Math.min(2, Math.max(1, 1.5 * r.threshold, 1.1 * r.distance));
  const meter = $("verify-meter");
  meter.querySelector(".meter-fill").style.width = `${(100 * Math.min(r.distance, max)) / max}%`;
  meter.querySelector(".meter-tau").style.left = `${(100 * r.threshold) / max}%`;
  meter.classList.toggle("same", !!r.same);
  meter.setAttribute("aria-label", `distance ${num(r.distance)} against threshold ${num(r.threshold)}`);
  document.querySelector(".meter-max").textContent = `${num(max, 2)}`;
  $("verify-explain").textContent = `distance ${num(r.distance)} ${r.same ? "≤" : ">"} τ ${num(r.threshold)}: `
    + "the smaller the distance, the more alike the faces";
  $("verify-distance").textContent = num(r.distance);
  $("verify-threshold").textContent = num(r.threshold);
  $("verify-far").textContent = pct(r.far);
  $("verify-frr").textContent = pct(r.frr);
  const prob = $("verify-probability");
  prob.hidden = r.probability === null || r.probability === undefined;
  const p = r.probability;
  prob.querySelector("dd").textContent = prob.hidden ? "" : p > 0.9999 ? "> 99.99%" : p < 0.0001 ? "< 0.01%" : pct(p);
  const color = r.same ? "#22c55e" : "#f97316";
  (r.faces || []).forEach((face, i) => {
    if (face && face.box && slots[i]) slots[i].setBoxes([{ box: face.box, label: `face ${i + 1}`, color }]);
  });
  $("verify-result").hidden = false;
}

// ───────────────────────── Identify ─────────────────────────

function initIdentify() {
  const error = $("identify-error");
  const submit = $("identify-submit");
  const slot = new PhotoSlot($("identify-slot"), {
    id: "identify", title: "Photo",
    onChange: () => {
      submit.disabled = !slot.file;
      $("identify-result").hidden = true;
      say(error, "");
    },
    onError: (msg) => say(error, msg),
  });
  submit.addEventListener("click", async () => {
    const form = new FormData();
    form.append("image", slot.file, slot.fileName);
    submit.disabled = true;
    say(error, "");
    $("identify-result").hidden = true;
    $("identify-status").textContent = "Identifying…";
    try {
      const r = await requestJson("/v1/identify?faces=all", { method: "POST", body: form, scope: "identify" });
      showIdentify(r, slot);
    } catch (err) {
      say(error, err.message);
    } finally {
      $("identify-status").textContent = "";
      submit.disabled = !slot.file;
    }
  });
}

const faceName = (f) => (f.person === null || f.person === undefined ? "unknown" : f.person);

function showIdentify(r, slot) {
  const faces = r.faces || [];
  const gallery = r.gallery || {};
  const policy = r.threshold_policy || (faces[0] && faces[0].threshold_policy) || "?";
  const fpir = r.expected_fpir ?? (faces[0] && faces[0].expected_fpir);
  const thr = r.threshold ?? (faces[0] && faces[0].threshold);
  const summary = $("identify-summary");
  summary.textContent = `${faces.length} face(s) · threshold ${num(thr)} (${policy}) · expected FPIR `
    + `${fpir === null || fpir === undefined ? "n/a" : pct(fpir)} · gallery: ${gallery.people ?? "?"} `
    + `${gallery.people === 1 ? "person" : "people"}, ${gallery.faces ?? "?"} face${gallery.faces === 1 ? "" : "s"}`;
  summary.title = "expected FPIR: the chance that someone who is not enrolled is given a name at this threshold";
  say($("identify-note"), typeof r.note === "string" ? r.note : "");
  const list = $("identify-faces");
  list.replaceChildren();
  const boxes = [];
  faces.forEach((f, i) => {
    const name = faceName(f);
    const known = f.person !== null && f.person !== undefined;
    const label = f.distance === null || f.distance === undefined ? `${i + 1}. ${name} (nobody enrolled)`
      : `${i + 1}. ${name} · ${num(f.distance)} ${known ? "≤" : ">"} ${num(f.threshold)}`;
    if (f.face && f.face.box) boxes.push({ box: f.face.box, label, color: known ? "#22c55e" : "#fbbf24" });
    list.appendChild(faceItem(f, i, name, known));
  });
  slot.setBoxes(boxes);
  $("identify-result").hidden = false;
}

function faceItem(f, i, name, known) {
  const li = document.createElement("li");
  li.dataset.testid = "identify-face";
  li.className = known ? "known" : "unknown";
  const head = document.createElement("p");
  const who = document.createElement("strong");
  who.dataset.testid = "identify-face-name";
  who.textContent = name;
  const score = f.distance === null || f.distance === undefined ? ` · nobody enrolled to compare with`
    : ` · distance ${num(f.distance)} ${known ? "≤" : ">"} threshold ${num(f.threshold)}`;
  head.append(`Face ${i + 1}: `, who, score);
  li.appendChild(head);
  const cands = f.candidates || [];
  if (cands.length) {
    const table = document.createElement("table");
    table.className = "candidates";
    const cap = table.createCaption();
    cap.textContent = "Nearest enrolled people";
    for (const c of cands) {
      const row = table.insertRow();
      row.insertCell().textContent = c.person;
      row.insertCell().textContent = num(c.distance);
    }
    li.appendChild(table);
  }
  return li;
}

// ───────────────────────── start ─────────────────────────

window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

initKey();
initVerify();
initIdentify();
initLive();
initPeople();
initTabs();
loadModel();
