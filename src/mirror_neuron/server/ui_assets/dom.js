// DOM helpers: text goes in as text, always. Agent ids, event payloads, logs and errors come
// from untrusted bundles: they only ever reach the page as text nodes (textContent,
// createElement, createElementNS) or attribute values, never as markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(node, props, kids) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (typeof value === 'function') node.addEventListener(key.replace(/^on/, ''), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    node.append(kid instanceof Node ? kid : String(kid));
  }
  return node;
}
export const el = (tag, props, ...kids) => build(document.createElement(tag), props, kids);
export const svg = (tag, props, ...kids) => build(document.createElementNS(SVG_NS, tag), props, kids);
export const $ = (selector, root = document) => root.querySelector(selector);
export const enc = encodeURIComponent;

export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

export function clip(text, max) {
  const value = String(text ?? '');
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

export function json(value, indent) {
  try {
    return JSON.stringify(value, null, indent);
  } catch {
    return String(value);
  }
}

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}

export function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${pad(m)}m ${pad(s % 60)}s` : `${m}m ${pad(s % 60)}s`;
}

export function age(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '–';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function toast(text, kind = 'info') {
  const item = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', text });
  $('#toasts').append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

export function badge(status, extra = {}) {
  return el('span', { class: 'badge', 'data-state': status || 'unknown', text: status || 'unknown', ...extra });
}
