// Photo slots (file picker, drag and drop, webcam snapshot), the webcam helpers and the canvas
// overlay that draws face boxes given in the image's own pixel coordinates.

let stopActiveCamera = null;

/** Stop whichever camera preview is open on the page (one at a time). */
export function stopCamera() {
  if (stopActiveCamera) stopActiveCamera();
  stopActiveCamera = null;
}

/**
 * Open the webcam into `video` (shown while live). `onStop` runs when the preview closes.
 * @returns {Promise<void>} rejects with a readable Error when there is no camera or no permission.
 */
export async function openCamera(video, onStop) {
  stopCamera();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser gives no camera access here (it needs https or localhost).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 } }, audio: false });
  } catch (err) {
    const name = err && err.name;
    if (name === "NotAllowedError") throw new Error("Camera access was refused.");
    if (name === "NotFoundError" || name === "OverconstrainedError") throw new Error("No camera found.");
    throw new Error(`The camera could not start (${name || "error"}).`);
  }
  video.srcObject = stream;
  video.hidden = false;
  stopActiveCamera = () => {
    stream.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
    video.hidden = true;
    delete video.dataset.live;
    if (onStop) onStop();
  };
  await video.play().catch(() => {});
  if (!video.videoWidth) {
    await new Promise((resolve) => video.addEventListener("loadeddata", resolve, { once: true }));
  }
  video.dataset.live = "true"; // a frame is ready to capture
}

/** Grab the current frame of a live `video` as a JPEG blob (quality 0.92). */
export async function captureFrame(video) {
  if (!video.videoWidth) {
    await new Promise((resolve) => video.addEventListener("loadeddata", resolve, { once: true }));
  }
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  if (!blob) throw new Error("The camera frame could not be encoded.");
  return blob;
}

/**
 * Draw boxes over a displayed image. Boxes are [x1, y1, x2, y2] in the image's natural pixels and
 * are scaled to its displayed size. The canvas gets an aria-label listing the labels and
 * `data-faces` = the number of boxes.
 * @param {HTMLCanvasElement} canvas  absolutely positioned over `img`
 * @param {HTMLImageElement} img
 * @param {{box: number[], label?: string, color?: string}[]} boxes
 */
export function drawBoxes(canvas, img, boxes) {
  const w = img.clientWidth;
  const h = img.clientHeight;
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  canvas.width = Math.max(1, Math.round(w * dpr));
  canvas.height = Math.max(1, Math.round(h * dpr));
  canvas.dataset.faces = String(boxes.length);
  const labels = boxes.map((b) => b.label || "face");
  canvas.setAttribute("aria-label", boxes.length ? `${boxes.length} face(s): ${labels.join("; ")}` : "no face boxes");
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!img.naturalWidth || !boxes.length) return;
  const sx = w / img.naturalWidth;
  const sy = h / img.naturalHeight;
  ctx.font = "600 13px system-ui, sans-serif";
  ctx.textBaseline = "top";
  const placed = []; // label rectangles already drawn, to keep labels from covering each other
  for (const b of boxes) {
    const [x1, y1, x2, y2] = b.box;
    const left = x1 * sx, top = y1 * sy, bw = (x2 - x1) * sx, bh = (y2 - y1) * sy;
    const color = b.color || "#22c55e";
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(0,0,0,0.55)";
    ctx.strokeRect(left, top, bw, bh);
    ctx.lineWidth = 2;
    ctx.strokeStyle = color;
    ctx.strokeRect(left, top, bw, bh);
    if (b.label) placed.push(drawLabel(ctx, b.label, color, { left, top, bw, bh }, { w, h }, placed));
  }
}

const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/** A filled label above the box (else below it, else inside its top) that covers no earlier label. */
function drawLabel(ctx, text, color, { left, top, bw, bh }, { w, h }, placed) {
  const pad = 4, th = 18;
  const tw = Math.min(ctx.measureText(text).width + 2 * pad, w);
  const x = Math.max(0, Math.min(left, w - tw)); // inside the picture
  const clampY = (y) => Math.max(0, Math.min(y, h - th));
  const tries = [top - th, top + bh, top, top - 2 * th, top + bh + th].map((y) => ({ x, y: clampY(y), w: tw, h: th }));
  const rect = tries.find((r) => !placed.some((p) => overlaps(r, p))) || tries[0];
  ctx.fillStyle = color;
  ctx.fillRect(rect.x, rect.y, rect.w, rect.h);
  ctx.fillStyle = "#0b1220";
  ctx.fillText(text, rect.x + pad, rect.y + 2, tw - 2 * pad);
  return rect;
}

/** One photo input: a drop zone with file picker, webcam snapshot, preview and box overlay. */
export class PhotoSlot {
  /**
   * @param {HTMLElement} host  empty element to fill from #slot-template
   * @param {{id: string, title: string, onChange?: () => void, onError?: (msg: string) => void}} opts
   *   id: prefix of the data-testid of the slot's controls (`${id}-file`, `${id}-camera`, ...)
   */
  constructor(host, { id, title, onChange = () => {}, onError = () => {} }) {
    const node = document.getElementById("slot-template").content.cloneNode(true);
    host.appendChild(node);
    this.host = host;
    this.onChange = onChange;
    this.onError = onError;
    this.file = null;
    this.fileName = "";
    this.boxes = [];
    this.url = "";
    const q = (sel) => host.querySelector(sel);
    this.zone = q(".dropzone");
    this.picture = q(".picture");
    this.placeholder = q(".placeholder");
    this.img = q(".picture img");
    this.canvas = q("canvas.overlay");
    this.video = q("video.live");
    this.nameLine = q(".filename");
    this.input = q('input[type="file"]');
    this.openBtn = q(".camera-open");
    this.captureBtn = q(".camera-capture");
    this.closeBtn = q(".camera-close");
    q(".slot-title").textContent = title;
    this.img.alt = title;
    const ids = { input: "file", openBtn: "camera", captureBtn: "capture", closeBtn: "camera-close",
      img: "image", canvas: "overlay", video: "video", nameLine: "filename", zone: "dropzone" };
    for (const [prop, suffix] of Object.entries(ids)) this[prop].dataset.testid = `${id}-${suffix}`;
    this.wire();
  }

  wire() {
    this.input.addEventListener("change", () => {
      if (this.input.files && this.input.files[0]) this.setFile(this.input.files[0], this.input.files[0].name);
      this.input.value = "";
    });
    const zone = this.zone;
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
    }
    for (const type of ["dragleave", "dragend"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (file) this.setFile(file, file.name);
    });
    this.openBtn.addEventListener("click", () => this.startCamera());
    this.captureBtn.addEventListener("click", () => this.capture());
    this.closeBtn.addEventListener("click", () => stopCamera());
    this.img.addEventListener("load", () => this.redraw());
    this.img.addEventListener("error", () => {
      this.picture.hidden = true;
      this.placeholder.hidden = false;
      this.nameLine.textContent = `${this.fileName} (no preview: the browser cannot show this file)`;
    });
    new ResizeObserver(() => this.redraw()).observe(this.img);
  }

  async startCamera() {
    try {
      this.setCameraUi(true);
      await openCamera(this.video, () => this.setCameraUi(false));
    } catch (err) {
      this.setCameraUi(false);
      this.onError(err.message);
    }
  }

  setCameraUi(live) {
    this.openBtn.hidden = live;
    this.captureBtn.hidden = !live;
    this.closeBtn.hidden = !live;
    this.video.hidden = !live;
    if (live) {
      this.picture.hidden = true;
      this.placeholder.hidden = true;
    } else {
      this.picture.hidden = !this.file;
      this.placeholder.hidden = !!this.file;
    }
  }

  async capture() {
    try {
      const blob = await captureFrame(this.video);
      stopCamera();
      const stamp = new Date().toISOString().slice(11, 19).replaceAll(":", "");
      this.setFile(blob, `camera-${stamp}.jpg`);
    } catch (err) {
      this.onError(err.message);
    }
  }

  /** Use `blob` as this slot's photo (clears boxes and tells the owner). */
  setFile(blob, name) {
    if (this.url) URL.revokeObjectURL(this.url);
    this.file = blob;
    this.fileName = name || "photo";
    this.boxes = [];
    this.url = URL.createObjectURL(blob);
    this.picture.hidden = false;
    this.placeholder.hidden = true;
    this.nameLine.textContent = this.fileName;
    this.img.src = this.url;
    this.redraw();
    this.onChange();
  }

  /** Boxes to draw: [{box, label, color}] in the image's pixels. */
  setBoxes(boxes) {
    this.boxes = boxes;
    this.redraw();
  }

  redraw() {
    if (this.picture.hidden) return;
    drawBoxes(this.canvas, this.img, this.boxes);
  }
}
