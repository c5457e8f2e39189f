// A job's live stream (job events unnamed, agent_status frames, end), and what is done when it
// fails: back off, read what is stored meanwhile, open it again; or finish the page.

import { api, backoff, setConn, showRetry, token } from './api.js';
import { API, TERMINAL } from './config.js';
import { enc, toast } from './dom.js';

export function streamPart(job) {
  const jobPath = job.jobPath;
  let ended = false;
  let stream = null;
  let streamFailures = 0;

  async function openStream() {
    let url = `${API}${jobPath}/stream?agents=true&after=${job.lastSeq}`;
    if (token) { // EventSource sends no header: a ticket opens this job's stream (and nothing else)
      try {
        const granted = await api(`${jobPath}/stream-ticket`, { method: 'POST' });
        if (granted?.ticket) url += `&ticket=${enc(granted.ticket)}`;
      } catch (err) {
        streamFailures += 1;
        const wait = backoff(streamFailures);
        showRetry(wait, err.message);
        setTimeout(recoverStream, wait);
        return;
      }
    }
    if (ended || stream) return;
    const es = new EventSource(url);
    stream = es;
    window.__mnStream = es;
    let opened = false;
    es.onopen = () => { opened = true; streamFailures = 0; setConn('live', 'live'); };
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      job.onEvent(ev);
    };
    es.addEventListener('agent_status', (m) => {
      try { job.applyStatuses(JSON.parse(m.data).agents ?? []); } catch { /* a malformed frame: skip it */ }
    });
    es.addEventListener('end', (m) => {
      es.close();
      let final = null;
      try { final = JSON.parse(m.data).status; } catch { final = null; }
      finish(final);
    });
    es.addEventListener('stream_error', (m) => { // the server's own error frame; then it closes
      try { toast(`stream: ${JSON.parse(m.data).error}`, 'error'); } catch { /* ignore */ }
      es.close(); // not the browser's 1 s reconnect for ever: back off, find out why
      if (stream === es) stream = null;
      streamFailures += 1;
      recoverStream();
    });
    es.addEventListener('error', () => {
      if (ended || stream !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        stream = null;
        if (!opened) streamFailures += 1;
        recoverStream();
      } else {
        setConn('retrying', 'disconnected — reconnecting…');
      }
    });
  }

  // The browser gave up (an HTTP error, or 204 past the end): find out why, catch up, go on.
  async function recoverStream() {
    if (ended) return;
    try {
      if (streamFailures >= 2) await catchUp(); // the stream keeps failing: show what is stored meanwhile
      const rec = await api(jobPath);
      job.applyRecord(rec);
      if (TERMINAL.has(rec.status)) {
        await catchUp();
        finish(rec.status);
        return;
      }
      if (streamFailures) {
        const wait = backoff(streamFailures);
        showRetry(wait, 'the event stream failed');
        setTimeout(() => { if (!ended && !stream) openStream(); }, wait);
      } else {
        openStream();
      }
    } catch (err) {
      streamFailures += 1;
      const wait = backoff(streamFailures);
      showRetry(wait, err.message);
      setTimeout(recoverStream, wait);
    }
  }

  // Stored events after the last one seen, and the agents' stored state (only while no stream is live).
  async function catchUp() {
    for (let guard = 0; guard < 50; guard += 1) {
      const page = await api(`${jobPath}/events?after=${job.lastSeq}&limit=5000`);
      for (const ev of page?.data ?? []) job.onEvent(ev);
      if (page?.next === null || page?.next === undefined) break;
    }
    let after = null;
    for (let guard = 0; guard < 100; guard += 1) {
      const page = await api(`${jobPath}/agents?limit=1000${after ? `&after=${enc(after)}` : ''}`);
      job.applyStatuses(page?.data ?? []);
      after = page?.next;
      if (!after) break;
    }
  }

  async function finish(final) {
    if (ended) return;
    ended = true;
    if (stream) { stream.close(); stream = null; }
    if (final) job.setStatus(final, true);
    setConn('ended', `ended · ${final ?? job.status}`);
    try {
      job.applyRecord(await api(jobPath));
    } catch { /* the final status is shown already */ }
    setConn('ended', `ended · ${job.status}`);
    job.loadLetters();
  }

  return { openStream };
}
