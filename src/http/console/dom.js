// Building the page from data without ever parsing data as HTML: every
// value from the API becomes a text node. (The page's Content-Security-Policy
// enforces it too: with Trusted Types, assigning a string as HTML throws.)

/**
 * Creates an element. `props`: attributes (`class`, `href`, `aria-*`,
 * `data-*`, ...), `on<event>` listeners, and `hidden`/`disabled` booleans.
 * Children: nodes, strings (as text), arrays of either; null and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `element` with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** The element with this id (the page's own, from index.html). */
export function byId(id) {
  return document.getElementById(id);
}
