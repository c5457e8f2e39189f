// Talking to /api/v1: the API token, requests, the connection indicator, and a poller that
// shows when it fails and backs off.
//
// The API token: asked for once (on the first 401), kept for this tab, sent as a header;
// the event stream, which cannot send headers, opens with a short-lived ticket for its job alone.

import { API } from './config.js';
import { $, clock, setText } from './dom.js';

const TOKEN_KEY = 'mn_token';
const MAX_BACKOFF_MS = 15000;

export let token = sessionStorage.getItem(TOKEN_KEY); // read-only elsewhere (a live binding)
let asking = null;

export function keepToken(value) {
  token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('#forget-token').hidden = false;
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

function askToken(refused) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dialog = $('#token-dialog');
    const form = $('#token-form');
    const input = $('#token-input');
    $('#token-error').hidden = !refused;
    input.value = '';
    dialog.hidden = false;
    window.__mnTokenPrompts = (window.__mnTokenPrompts ?? 0) + 1;
    setConn('auth', 'waiting for the API token');
    input.focus();
    form.onsubmit = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      keepToken(value);
      dialog.hidden = true;
      form.onsubmit = null;
      asking = null;
      setConn('connecting', 'connecting…');
      resolve();
    };
  });
  return asking;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  for (;;) {
    const used = token;
    const headers = { Accept: 'application/json' };
    if (used) headers.Authorization = `Bearer ${used}`;
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, { method, headers, body: payload, cache: 'no-store' });
    } catch (err) {
      throw new ApiError(0, `the server cannot be reached (${err.message})`);
    }
    if (response.status === 401) {
      if (token === used) await askToken(Boolean(used)); // else: a token came meanwhile
      continue;
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const why = data && typeof data.error === 'string' ? data.error : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, why);
    }
    return data;
  }
}

// ---------------------------------------------------------------------------------------
// The connection indicator, and a poller that shows when it fails and backs off.

let retryTimer = null;

export function setConn(kind, text) {
  const conn = $('#conn');
  clearInterval(retryTimer);
  retryTimer = null;
  conn.dataset.conn = kind;
  setText(conn, text);
}

export function showRetry(waitMs, why) {
  const until = Date.now() + waitMs;
  const tick = () => {
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    setText($('#conn'), `disconnected — retrying in ${left}s`);
  };
  setConn('retrying', '');
  $('#conn').title = why || '';
  tick();
  retryTimer = setInterval(tick, 1000);
}

export function backoff(failures) {
  return Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.max(0, failures - 1));
}

export function repeat(fn, every, { indicator = false } = {}) {
  let failures = 0;
  let timer = null;
  let running = false;
  let stopped = false;
  const tick = async () => {
    if (stopped || running) return;
    running = true;
    clearTimeout(timer);
    let wait = every;
    try {
      await fn();
      failures = 0;
      if (indicator) setConn('ok', `live · updated ${clock(new Date().toISOString()).slice(0, 8)}`);
    } catch (err) {
      failures += 1;
      wait = backoff(failures);
      if (indicator) showRetry(wait, err.message);
    } finally {
      running = false;
    }
    if (!stopped) timer = setTimeout(tick, wait);
  };
  tick();
  return {
    now: tick,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
