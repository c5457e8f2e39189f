// A job's events: the newest ones listed (filtered by type and text, batched per frame), and
// what they tell about the job (its status, a failure, a stall, new dead letters).

import { $, clip, clock, el, json, setText } from './dom.js';

export const KEEP_EVENTS = 5000; // events kept for filtering
const SHOW_EVENTS = 300; // events drawn
// A Map, not an object: an event type is text from a job's scripts (`constructor` is one).
const EVENT_STATUS = new Map(Object.entries({
  job_pending: 'pending', job_running: 'running', job_resumed: 'running', job_paused: 'paused',
  job_suspended: 'suspended', job_completed: 'completed', job_failed: 'failed', job_cancelled: 'cancelled',
}));
const EVENT_META = new Set(['seq', 'type', 'job_id', 'timestamp', 'agent_id']);

export function eventsPart(job) {
  const pendingEvents = [];
  const events = [];
  const eventTypes = new Set();
  const typeFilter = el('select', { id: 'event-type', 'aria-label': 'event type' }, el('option', { value: '', text: 'all types' }));
  const eventSearch = el('input', { type: 'search', id: 'event-search', placeholder: 'search events', 'aria-label': 'search events' });
  const eventList = el('ol', { class: 'events', id: 'events', reversed: true });
  const eventCount = el('span', { class: 'muted small', id: 'event-count' });
  const eventsPanel = el('section', { class: 'panel events-panel' },
    el('div', { class: 'toolbar' }, el('h2', { text: 'Events' }), eventCount, el('span', { class: 'spacer' }), typeFilter, eventSearch),
    el('div', { class: 'scroll' }, eventList));

  function eventDetail(ev) {
    const rest = Object.create(null); // keys are a script's text: `__proto__` stays a plain key
    for (const [k, v] of Object.entries(ev)) if (!EVENT_META.has(k)) rest[k] = v;
    return Object.keys(rest).length ? json(rest) : '';
  }

  function matches(ev) {
    if (typeFilter.value && ev.type !== typeFilter.value) return false;
    const q = eventSearch.value.trim().toLowerCase();
    if (!q) return true;
    return `${ev.type} ${ev.agent_id ?? ''} ${eventDetail(ev)}`.toLowerCase().includes(q);
  }

  function eventItem(ev) {
    const detailText = eventDetail(ev);
    const item = el('li', { class: 'event', 'data-seq': ev.seq, 'data-type': ev.type },
      el('time', { datetime: ev.timestamp ?? '', text: clock(ev.timestamp) }),
      el('span', { class: 'seq', text: `#${ev.seq}` }),
      el('span', { class: 'etype', 'data-family': String(ev.type).split('_')[0], text: ev.type }),
      ev.agent_id ? el('button', { type: 'button', class: 'link mono agent-link', text: ev.agent_id,
        onclick: (e) => { e.stopPropagation(); job.select({ agent: ev.agent_id }); } }) : null,
      el('span', { class: 'edetail', text: clip(detailText, 220) }));
    item.addEventListener('click', () => {
      const open = $('pre', item);
      if (open) open.remove(); else item.append(el('pre', { text: json(ev, 2) }));
    });
    return item;
  }

  let redrawNeeded = false;
  function flushEvents() {
    if (redrawNeeded) {
      redrawNeeded = false;
      redrawEvents();
    } else if (pendingEvents.length) {
      const fresh = pendingEvents.splice(0).filter(matches).slice(-SHOW_EVENTS).reverse();
      if (fresh.length) {
        const fragment = document.createDocumentFragment();
        for (const ev of fresh) fragment.append(eventItem(ev));
        eventList.prepend(fragment);
        while (eventList.childElementCount > SHOW_EVENTS) eventList.lastElementChild.remove();
      }
    } else {
      return;
    }
    setText(eventCount, `${job.lastSeq} event${job.lastSeq === 1 ? '' : 's'}`);
  }

  function redrawEvents() {
    const shown = [];
    for (let i = events.length - 1; i >= 0 && shown.length < SHOW_EVENTS; i -= 1) if (matches(events[i])) shown.push(events[i]);
    eventList.replaceChildren(...shown.map(eventItem));
    pendingEvents.length = 0;
  }

  let letterTimer = null;
  function onEvent(ev) {
    if (!ev || typeof ev.seq !== 'number' || ev.seq <= job.lastSeq) return; // a reconnect never duplicates
    job.lastSeq = ev.seq;
    events.push(ev);
    if (events.length > KEEP_EVENTS * 1.2) events.splice(0, events.length - KEEP_EVENTS);
    pendingEvents.push(ev);
    if (pendingEvents.length > KEEP_EVENTS) { // no frame for a while (a hidden tab): redraw instead
      pendingEvents.length = 0;
      redrawNeeded = true;
    }
    if (!eventTypes.has(ev.type)) {
      eventTypes.add(ev.type);
      const options = [...eventTypes].sort().map((t) => el('option', { value: t, text: t }));
      const current = typeFilter.value;
      typeFilter.replaceChildren(el('option', { value: '', text: 'all types' }), ...options);
      typeFilter.value = current;
    }
    if (ev.type === 'job_failed') job.failureEvent = ev;
    const wasStalled = job.stalled;
    const moved = EVENT_STATUS.get(ev.type);
    if (ev.type === 'job_stalled') job.stalled = { reason: ev.reason, waiting: ev.waiting };
    else if (job.stalled && (ev.type === 'agent_message_received' || moved)) job.stalled = null;
    if (moved) job.setStatus(moved);
    else if (job.stalled !== wasStalled) job.drawBanners();
    if (ev.type === 'dead_letter' && !letterTimer) letterTimer = setTimeout(() => { letterTimer = null; job.loadLetters(); }, 500);
    job.schedule();
  }

  typeFilter.addEventListener('change', redrawEvents);
  let searchTimer = null;
  eventSearch.addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(redrawEvents, 150); });

  return { el: eventsPanel, onEvent, flush: flushEvents };
}
