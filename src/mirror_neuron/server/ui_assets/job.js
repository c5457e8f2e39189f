// A job's page (/ui/jobs/{id}): its header (status, elapsed, agent counts, controls, banners)
// and its parts (graph, agents, events, dead letters, detail pane, pools, stream), wired
// together through `job`: the state they share and the functions they call each other by.

import { agentsPart } from './agents.js';
import { api, repeat, setConn } from './api.js';
import { LIVE, STATE_ORDER, TERMINAL, UI } from './config.js';
import { detailPart } from './detail.js';
import { $, clip, duration, el, enc, setText, toast } from './dom.js';
import { eventsPart, KEEP_EVENTS } from './events.js';
import { buildModel, drawGraph, drawGroup, graphPanel, layoutGraph, loadDagre } from './graph.js';
import { lettersPart } from './letters.js';
import { poolsPanel } from './pools.js';
import { streamPart } from './stream.js';

const POOLS_EVERY_MS = 5000;

function failureOf(record, event) {
  const result = record?.result && typeof record.result === 'object' ? record.result : {};
  return {
    agent: result.agent_id ?? event?.agent_id ?? null,
    reason: result.error ?? result.reason ?? event?.reason ?? record?.error ?? record?.reason ?? 'no reason was recorded',
    details: result.details ?? null,
  };
}

export function jobPage(main, jobId) {
  document.title = `${jobId} · MirrorNeuron`;
  $('#crumbs').replaceChildren(el('a', { href: UI, text: 'Jobs' }), el('span', { class: 'sep', text: '/' }),
    el('span', { class: 'mono', text: jobId }));
  const jobPath = `/jobs/${enc(jobId)}`;

  // -- shared state (the parts' functions are added below)
  const job = {
    jobId,
    jobPath,
    model: null,
    status: 'unknown',
    lastSeq: 0,
    failureEvent: null,
    stalled: null,
    selected: null, // { agent } | { group }
    stateCounts: new Map(),
    dirty: new Set(),
  };
  let record = null;
  let started = null;
  let finishedAt = null;
  let frame = 0;

  // -- header
  const title = el('h1', { id: 'job-title', text: jobId });
  const subtitle = el('div', { class: 'muted small mono', id: 'job-subtitle' });
  const statusEl = el('span', { class: 'badge big', 'data-job-status': 'unknown', 'data-state': 'unknown', text: 'loading' });
  const elapsedEl = el('span', { class: 'elapsed', id: 'elapsed', title: 'elapsed' });
  const countsEl = el('div', { class: 'counts', id: 'state-counts' });
  const button = (action, text, kind = '') => el('button', { type: 'button', 'data-action': action, class: kind, text, disabled: true });
  const pauseBtn = button('pause', 'Pause');
  const resumeBtn = button('resume', 'Resume');
  const cancelBtn = button('cancel', 'Cancel', 'danger');
  const confirmBox = el('div', { class: 'confirm', id: 'cancel-confirm', hidden: true, role: 'alertdialog' },
    el('span', { text: 'Cancel this job? Its agents stop and queued messages are dropped.' }),
    el('button', { type: 'button', class: 'danger', 'data-confirm': 'cancel', text: 'Yes, cancel the job' }),
    el('button', { type: 'button', 'data-dismiss': 'cancel', text: 'No, keep it' }));
  const header = el('section', { class: 'panel jobhead' },
    el('div', { class: 'row' }, el('div', { class: 'titles' }, title, subtitle), el('span', { class: 'spacer' }),
      statusEl, elapsedEl),
    el('div', { class: 'row' }, countsEl, el('span', { class: 'spacer' }),
      el('div', { class: 'actions' }, pauseBtn, resumeBtn, cancelBtn)),
    confirmBox);
  const banners = el('div', { id: 'banners' });

  // -- the parts
  const graphView = graphPanel();
  const agents = agentsPart(job);
  const events = eventsPart(job);
  const letters = lettersPart(job);
  const detail = detailPart(job, { graphWrap: graphView.wrap, agentBody: agents.body });
  const pools = poolsPanel();
  const stream = streamPart(job);
  Object.assign(job, {
    setStatus, drawBanners, applyRecord, schedule,
    select: detail.select,
    onEvent: events.onEvent,
    applyStatuses: agents.applyStatuses,
    loadLetters: letters.loadLetters,
  });

  main.replaceChildren(header, banners,
    el('div', { class: 'job-grid' },
      el('div', { class: 'col-main' }, graphView.el, agents.el, events.el, letters.el),
      el('div', { class: 'col-side' }, detail.el, pools.el)));

  // -- status, elapsed, counts, banners

  function setStatus(next, authoritative = false) {
    if (!next || (TERMINAL.has(job.status) && !authoritative)) return;
    job.status = next;
    statusEl.dataset.jobStatus = next;
    statusEl.dataset.state = next;
    setText(statusEl, next);
    pauseBtn.disabled = next !== 'running';
    resumeBtn.disabled = next !== 'paused';
    cancelBtn.disabled = !LIVE.has(next);
    if (!LIVE.has(next)) confirmBox.hidden = true;
    if (TERMINAL.has(next) && !finishedAt) finishedAt = Date.parse(record?.updated_at) || Date.now();
    drawBanners();
    tickElapsed();
  }

  function tickElapsed() {
    if (!started) return;
    const end = TERMINAL.has(job.status) ? (finishedAt ?? Date.now()) : Date.now();
    setText(elapsedEl, duration(end - started));
  }

  function drawCounts() {
    const chips = STATE_ORDER.filter((s) => job.stateCounts.get(s)).map((s) =>
      el('span', { class: 'chip', 'data-state': s, 'data-count': job.stateCounts.get(s) },
        el('span', { class: 'dot' }), `${s} ${job.stateCounts.get(s)}`));
    const total = job.model ? job.model.agents.size : 0;
    countsEl.replaceChildren(el('span', { class: 'muted', text: `${total} agent${total === 1 ? '' : 's'}` }), ...chips);
  }

  function drawBanners() {
    banners.replaceChildren();
    if (job.status === 'failed') {
      const f = failureOf(record, job.failureEvent);
      const who = f.agent
        ? el('button', { type: 'button', class: 'link mono', text: f.agent, onclick: () => job.select({ agent: f.agent }) })
        : el('span', { text: 'the runtime' });
      const box = el('div', { class: 'banner failure', id: 'failure', role: 'alert' },
        el('strong', { text: 'Failed' }), ' at agent ', who, ': ', el('span', { class: 'reason', text: f.reason }));
      const tail = f.details && (f.details.stderr_tail || f.details.stdout_tail);
      if (tail) box.append(el('pre', { class: 'tail', text: clip(tail, 4000) }));
      banners.append(box);
    } else if (job.status === 'cancelled') {
      banners.append(el('div', { class: 'banner muted-banner', id: 'failure' }, el('strong', { text: 'Cancelled' }),
        `: ${failureOf(record, null).reason}`));
    } else if (LIVE.has(job.status) && record?.orphaned) {
      banners.append(el('div', { class: 'banner warn' }, el('strong', { text: 'Orphaned' }), `: ${record.orphaned}`));
    }
    if (LIVE.has(job.status) && job.stalled) {
      const waiting = (job.stalled.waiting ?? []).map((w) => `${w.agent_id}: ${w.waiting_for}`).join('; ');
      banners.append(el('div', { class: 'banner warn', id: 'stalled' }, el('strong', { text: 'Stalled' }),
        `: ${job.stalled.reason ?? ''}`, waiting && !String(job.stalled.reason).includes(waiting) ? ` (${waiting})` : ''));
    }
  }

  function applyRecord(rec) {
    record = rec;
    started = Date.parse(rec.submitted_at) || started;
    setText(title, rec.job_name || rec.graph_id || jobId);
    setText(subtitle, [jobId, rec.graph_id && `graph ${rec.graph_id}`, rec.node && `node ${rec.node}`].filter(Boolean).join(' · '));
    job.stalled = rec.stalled ?? null;
    if (TERMINAL.has(rec.status)) finishedAt = Date.parse(rec.updated_at) || finishedAt;
    setStatus(rec.status, true);
  }

  // -- batched drawing: the agents changed since the last frame, the events that came

  function schedule() {
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    const groups = new Set();
    for (const a of job.dirty) {
      agents.drawAgent(a);
      if (a.group) groups.add(a.group);
    }
    for (const g of groups) drawGroup(g);
    if (job.dirty.size) {
      window.__mnTimings.statesAt ??= performance.now();
      drawCounts();
      if (job.selected?.agent && job.dirty.has(job.model.agents.get(job.selected.agent))) detail.refreshDetail();
      if (job.selected?.group && [...groups].some((g) => g.id === job.selected.group)) detail.refreshDetail();
    }
    job.dirty.clear();
    events.flush();
  }

  // -- controls

  async function control(action) {
    confirmBox.hidden = true;
    for (const b of [pauseBtn, resumeBtn, cancelBtn]) b.disabled = true;
    try {
      const r = await api(`${jobPath}/${action}`, { method: 'POST' });
      setStatus(r?.status, TERMINAL.has(r?.status));
      toast(`${action}: the job is ${r?.status}`);
    } catch (err) {
      toast(`${action} failed: ${err.message}`, 'error');
      setStatus(job.status, true); // buttons back as they were
    }
  }
  pauseBtn.addEventListener('click', () => control('pause'));
  resumeBtn.addEventListener('click', () => control('resume'));
  cancelBtn.addEventListener('click', () => { confirmBox.hidden = false; $('[data-dismiss]', confirmBox).focus(); });
  $('[data-confirm]', confirmBox).addEventListener('click', () => control('cancel'));
  $('[data-dismiss]', confirmBox).addEventListener('click', () => { confirmBox.hidden = true; });

  // -- start

  async function start() {
    detail.emptyDetail();
    setConn('connecting', 'connecting…');
    const dagreReady = loadDagre().catch((err) => err);
    let graph;
    try {
      const rec = await api(jobPath);
      applyRecord(rec);
      // A long log: only its newest events come (agent states come with the first agent_status frame).
      job.lastSeq = Math.max(0, (rec.last_seq ?? 0) - KEEP_EVENTS);
    } catch (err) {
      main.replaceChildren(el('section', { class: 'panel' }, el('h1', { text: err.status === 404 ? 'No such job' : 'Cannot load the job' }),
        el('p', { class: 'error', id: 'load-error', text: err.message }), el('p', {}, el('a', { href: UI, text: '← all jobs' }))));
      setConn('error', err.status === 404 ? 'no such job' : 'error');
      return;
    }
    try {
      graph = await api(`${jobPath}/graph`);
    } catch (err) {
      graph = { nodes: [], edges: [], entrypoints: [] };
      graphView.wrap.replaceChildren(el('p', { class: 'muted', text: `no graph: ${err.message}` }));
    }
    const loaded = await dagreReady;
    if (loaded instanceof Error) toast(`${loaded.message}: a plain layout is used`, 'error');
    const t0 = performance.now();
    const model = buildModel(graph);
    job.model = model;
    agents.count('unknown', model.agents.size);
    const t1 = performance.now();
    graphView.size = layoutGraph(model);
    const t2 = performance.now();
    if (graph.nodes.length) {
      graphView.wrap.replaceChildren(drawGraph(model, graphView.size, detail.select));
      agents.fill();
    }
    const drawnCount = model.drawn.size;
    setText(graphView.info, model.groups.length
      ? `${model.agents.size} agents in ${drawnCount} boxes: ${model.groups.length} group${model.groups.length === 1 ? '' : 's'} of same-shaped agents`
      : `${model.agents.size} agents · ${model.edges.length} edges`);
    graphView.fit(0.5);
    drawCounts();
    const t3 = performance.now();
    graphView.wrap.dataset.ready = '1';
    Object.assign(window.__mnTimings, { modelMs: t1 - t0, layoutMs: t2 - t1, renderMs: t3 - t2, readyAt: t3, agents: model.agents.size, drawn: drawnCount });
    pools.highlight(graph.nodes.filter((n) => n.pool).map((n) => n.pool));
    stream.openStream();
    letters.loadLetters();
    repeat(async () => {
      try { pools.update((await api('/system/summary')).executor_pools); } catch (err) { pools.failed(err); throw err; }
    }, POOLS_EVERY_MS);
    setInterval(tickElapsed, 1000);
  }

  start();
}
