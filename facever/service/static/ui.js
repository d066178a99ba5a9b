// Small DOM and number-format helpers shared by the page's modules.

/** The element with this data-testid (inside `root`). */
export const $ = (testid, root = document) => root.querySelector(`[data-testid="${testid}"]`);

/** Show `text` in the element (unhide it), or hide it when text is empty. Text only, never HTML. */
export function say(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

/** A rate in [0, 1] as a percentage ("n/a" when missing). */
export const pct = (x) => (x === null || x === undefined ? "n/a" : `${(100 * x).toFixed(x < 0.001 ? 3 : 2)}%`);

/** A number with `d` decimals ("n/a" when missing). */
export const num = (x, d = 3) => (x === null || x === undefined ? "n/a" : Number(x).toFixed(d));

/** An element with a class and text. */
export function el(tag, { cls = "", text = "", testid = "" } = {}) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text) node.textContent = text;
  if (testid) node.dataset.testid = testid;
  return node;
}
