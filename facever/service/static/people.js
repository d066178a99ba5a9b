// People tab: the paged, searchable list (thumbnails, add photos, rename, remove) and the Enrol form.
// Names can be hostile: they reach the DOM only through textContent / dataset and the URL only
// through encodeURIComponent (personPath).

import { ApiError, personPath, request, requestJson } from "./api.js";
import { captureFrame, openCamera, stopCamera } from "./photo.js";
import { $, el, say } from "./ui.js";

const PAGE = 50;
const state = { q: "", items: [], total: 0, seq: 0, noCrops: false, urls: [], thumbQueue: [], thumbsBusy: 0 };
const snapshots = []; // webcam snapshots waiting in the Enrol form: {blob, name, url}

// ───────────────────────── list ─────────────────────────

/** Reload the list from the first page (tab shown, key changed, after a change). */
export function showPeople() {
  state.noCrops = false;
  loadPage(false);
}

async function loadPage(append) {
  const seq = ++state.seq;
  const offset = append ? state.items.length : 0;
  const params = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
  if (state.q) params.set("q", state.q);
  say($("people-error"), "");
  try {
    const r = await requestJson(`/v1/people?${params}`, { scope: "identify" });
    if (seq !== state.seq) return; // a newer search answered first
    if (!append) clearList();
    state.total = r.total ?? 0;
    for (const p of r.people || []) {
      state.items.push(p);
      $("people-list").appendChild(personRow(p));
    }
  } catch (err) {
    if (seq !== state.seq) return;
    if (!append) clearList();
    say($("people-error"), err.message);
  }
  const n = state.items.length;
  const shown = n < state.total ? `showing ${n} of ${state.total}` : `${state.total}`;
  const noun = state.total === 1 ? "person" : "people";
  $("people-total").textContent = state.q ? `${shown} matching “${state.q}”` : `${shown} ${noun}`;
  $("people-more").hidden = n >= state.total;
  $("people-empty").hidden = !(n === 0 && state.total === 0 && !state.q && $("people-error").hidden);
}

function clearList() {
  state.urls.forEach((u) => URL.revokeObjectURL(u));
  state.urls = [];
  state.items = [];
  state.thumbQueue = [];
  $("people-list").replaceChildren();
}

function personRow(p) {
  const li = el("li", { cls: "person", testid: "people-row" });
  li.dataset.person = p.name;
  const thumb = el("div", { cls: "thumb placeholder-thumb", testid: "people-thumb" });
  thumb.textContent = initials(p.name);
  thumb.setAttribute("aria-hidden", "true");
  const info = el("div", { cls: "info" });
  info.append(el("span", { cls: "name", text: p.name, testid: "people-name" }),
    el("span", { cls: "muted", text: `${p.faces} face${p.faces === 1 ? "" : "s"}`, testid: "people-count" }));
  const actions = el("div", { cls: "row-actions" });
  const add = el("label", { cls: "button small", text: "Add photos" });
  const addInput = el("input", { cls: "visually-hidden", testid: "people-add-files" });
  Object.assign(addInput, { type: "file", accept: "image/*", multiple: true });
  addInput.setAttribute("aria-label", `Add photos of ${p.name}`);
  add.prepend(addInput);
  addInput.addEventListener("change", () => {
    const files = [...addInput.files];
    addInput.value = "";
    if (files.length) enrol(p.name, files.map((f) => ({ blob: f, name: f.name })), { refreshForm: false });
  });
  const rename = el("button", { cls: "small", text: "Rename", testid: "people-rename" });
  rename.type = "button";
  rename.addEventListener("click", () => renameForm(li, p));
  const remove = el("button", { cls: "small danger-outline", text: "Remove", testid: "people-remove" });
  remove.type = "button";
  remove.addEventListener("click", () => removePerson(p));
  actions.append(add, rename, remove);
  li.append(thumb, info, actions);
  queueThumb(p.name, thumb);
  return li;
}

function initials(name) {
  const parts = String(name).trim().split(/\s+/).filter(Boolean);
  return (parts.slice(0, 2).map((w) => [...w][0] || "").join("") || "?").toUpperCase();
}

// Thumbnails: GET the person (face ids), then the first face's crop (admin scope) with the key,
// as a blob URL. Without the admin scope the placeholder stays, quietly; three at a time.
function queueThumb(name, node) {
  state.thumbQueue.push({ name, node, seq: state.seq });
  pumpThumbs();
}

function pumpThumbs() {
  while (state.thumbsBusy < 3 && state.thumbQueue.length) {
    const job = state.thumbQueue.shift();
    state.thumbsBusy += 1;
    loadThumb(job).finally(() => { state.thumbsBusy -= 1; pumpThumbs(); });
  }
}

async function loadThumb({ name, node, seq }) {
  if (state.noCrops || seq !== state.seq) return;
  try {
    const person = await requestJson(personPath(name), { scope: "identify" });
    const face = (person.faces || [])[0];
    if (!face || state.noCrops) return;
    const res = await request(`${personPath(name)}/faces/${encodeURIComponent(face.id)}/crop`, { scope: "admin" });
    const url = URL.createObjectURL(await res.blob());
    if (seq !== state.seq) { URL.revokeObjectURL(url); return; }
    state.urls.push(url);
    const img = el("img", { testid: "people-thumb-img" });
    img.alt = "";
    img.src = url;
    node.replaceChildren(img);
    node.classList.remove("placeholder-thumb");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.status === 401)) state.noCrops = true;
  }
}

// ───────────────────────── rename / remove ─────────────────────────

function renameForm(li, p) {
  if (li.querySelector("form")) return;
  const form = el("form", { cls: "rename", testid: "people-rename-form" });
  const input = el("input", { testid: "people-rename-input" });
  Object.assign(input, { type: "text", value: p.name, required: true, maxLength: 200 });
  input.setAttribute("aria-label", `New name for ${p.name}`);
  const save = el("button", { cls: "small primary", text: "Save", testid: "people-rename-save" });
  const cancel = el("button", { cls: "small ghost", text: "Cancel", testid: "people-rename-cancel" });
  cancel.type = "button";
  cancel.addEventListener("click", () => form.remove());
  form.append(input, save, cancel);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (!name || name === p.name) { form.remove(); return; }
    save.disabled = true;
    try {
      await requestJson(personPath(p.name), { method: "PATCH", json: { name }, scope: "admin" });
      message(`Renamed “${p.name}” to “${name}”.`);
      showPeople();
    } catch (err) {
      say($("people-error"), err.message);
      save.disabled = false;
    }
  });
  li.appendChild(form);
  input.focus();
  input.select();
}

function confirmDialog(text) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function removePerson(p) {
  const ok = await confirmDialog(
    `Remove “${p.name}” and erase their ${p.faces} stored face(s)? This cannot be undone.`);
  if (!ok) return;
  try {
    const r = await requestJson(personPath(p.name), { method: "DELETE", scope: "admin" });
    message(`Removed “${r.person ?? p.name}” (${r.faces_removed ?? p.faces} face(s) erased).`);
    showPeople();
  } catch (err) {
    say($("people-error"), err.message);
  }
}

function message(text) {
  say($("people-error"), "");
  say($("people-message"), text);
}

// ───────────────────────── enrol ─────────────────────────

/** POST images to /v1/people/{name}/faces and show the per-image report. */
async function enrol(name, images, { refreshForm }) {
  const form = new FormData();
  for (const img of images) form.append("images", img.blob, img.name);
  const q = new URLSearchParams({
    allow_duplicate: String($("enrol-allow-duplicate").checked), force: String($("enrol-force").checked),
  });
  say($("enrol-error"), "");
  $("enrol-result").hidden = true;
  $("enrol-status").textContent = `Enrolling ${images.length} photo(s)…`;
  $("enrol-submit").disabled = true;
  try {
    const report = await requestJson(`${personPath(name)}/faces?${q}`, { method: "POST", body: form, scope: "enroll" });
    showReport(report);
    if (refreshForm) resetForm();
  } catch (err) {
    say($("enrol-error"), err.message);
    const report = err instanceof ApiError && err.problem && err.problem.report;
    if (report && typeof report === "object") showReport(report);
  } finally {
    $("enrol-status").textContent = "";
    $("enrol-submit").disabled = false;
    showPeople();
  }
}

function showReport(r) {
  const n = (x) => (typeof x === "number" ? x : 0);
  $("enrol-summary").textContent = `${r.person}: ${n(r.enrolled)} enrolled, ${n(r.skipped)} skipped, `
    + `${n(r.rejected)} rejected${r.error ? ` (${r.error})` : ""}`;
  const body = $("enrol-report").tBodies[0];
  body.replaceChildren();
  for (const img of r.images || []) {
    const row = body.insertRow();
    row.dataset.testid = "enrol-report-row";
    row.insertCell().textContent = img.source || "";
    const status = row.insertCell();
    status.textContent = img.status || "";
    status.className = `status-${img.status}`;
    status.dataset.testid = "enrol-report-status";
    row.insertCell().textContent = img.reason || "";
  }
  showLookAlikes(r);
  $("enrol-result").hidden = false;
}

/** A warning line per other enrolled person the new faces are within the identification threshold of. */
function showLookAlikes(r) {
  const list = $("enrol-lookalikes");
  list.replaceChildren();
  for (const a of Array.isArray(r.look_alikes) ? r.look_alikes : []) {
    const d = Number(a.distance).toFixed(3);
    const t = Number(a.threshold).toFixed(3);
    list.append(el("li", {
      testid: "enrol-lookalike",
      text: `Warning: ${a.source || "a photo"} looks like ${a.name}, who is already enrolled (distance ${d}, `
        + `identification threshold ${t}). Identify may name ${a.name} for ${r.person}; `
        + "if they are one person, enrol the photos under one name.",
    }));
  }
  list.hidden = !list.children.length;
}

function resetForm() {
  $("enrol-files").value = "";
  snapshots.splice(0).forEach((s) => URL.revokeObjectURL(s.url));
  renderSnapshots();
}

function renderSnapshots() {
  const list = $("enrol-snapshots");
  list.replaceChildren();
  snapshots.forEach((s, i) => {
    const li = el("li", { testid: "enrol-snapshot" });
    const img = el("img");
    img.src = s.url;
    img.alt = `Snapshot ${i + 1}`;
    const drop = el("button", { cls: "small ghost", text: "×" });
    drop.type = "button";
    drop.setAttribute("aria-label", `Discard snapshot ${i + 1}`);
    drop.addEventListener("click", () => {
      URL.revokeObjectURL(s.url);
      snapshots.splice(i, 1);
      renderSnapshots();
    });
    li.append(img, drop);
    list.appendChild(li);
  });
}

function initEnrolCamera() {
  const video = $("enrol-video");
  const [open, capture, close] = ["enrol-camera", "enrol-capture", "enrol-camera-stop"].map((t) => $(t));
  const ui = (live) => { open.hidden = live; capture.hidden = !live; close.hidden = !live; };
  open.addEventListener("click", async () => {
    try {
      ui(true);
      await openCamera(video, () => ui(false));
    } catch (err) {
      ui(false);
      say($("enrol-error"), err.message);
    }
  });
  capture.addEventListener("click", async () => {
    try {
      const blob = await captureFrame(video);
      snapshots.push({ blob, name: `camera-${snapshots.length + 1}.jpg`, url: URL.createObjectURL(blob) });
      renderSnapshots();
    } catch (err) {
      say($("enrol-error"), err.message);
    }
  });
  close.addEventListener("click", () => stopCamera());
}

/** Wire the People tab (list, search, more, enrol form). */
export function initPeople() {
  let timer = 0;
  $("people-search").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = e.target.value.trim(); loadPage(false); }, 250);
  });
  $("people-more").addEventListener("click", () => loadPage(true));
  initEnrolCamera();
  $("enrol-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("enrol-name").value.trim();
    const files = [...$("enrol-files").files].map((f) => ({ blob: f, name: f.name }));
    const images = files.concat(snapshots.map((s) => ({ blob: s.blob, name: s.name })));
    if (!name) { say($("enrol-error"), "Type the person's name."); return; }
    if (!images.length) { say($("enrol-error"), "Choose photos or take snapshots with the camera."); return; }
    if (images.length > 20) { say($("enrol-error"), "At most 20 photos at a time."); return; }
    enrol(name, images, { refreshForm: true });
  });
}
