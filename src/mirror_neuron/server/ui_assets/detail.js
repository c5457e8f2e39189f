// A job's detail pane: the selected agent (state, in-flight message, logs, a message to
// send) or group of same-shaped agents; `select` is how every other part picks one.

import { api } from './api.js';
import { $, age, badge, clip, clock, el, enc, json, setText, toast } from './dom.js';
import { groupCounts } from './graph.js';

export function detailPart(job, { graphWrap, agentBody }) {
  const jobPath = job.jobPath;
  const detail = el('aside', { class: 'panel detail', id: 'detail' });
  let detailToken = 0;
  let logsState = null; // { agent, runs, last, loading, timer }

  function emptyDetail() {
    detail.replaceChildren(el('h2', { text: 'Details' }),
      el('p', { class: 'muted', text: 'Click an agent in the graph or in the table: its state, in-flight message, last error and logs show here.' }));
  }

  function select(what) {
    job.selected = what;
    for (const n of graphWrap.querySelectorAll('.selected')) n.classList.remove('selected');
    for (const r of agentBody.querySelectorAll('.selected')) r.classList.remove('selected');
    detailToken += 1;
    logsState = null;
    if (what.agent) {
      const a = job.model?.agents.get(what.agent);
      if (!a) { toast(`no agent ${clip(what.agent, 80)} in this job`, 'error'); return; }
      a.node?.classList.add('selected');
      (a.node ?? a.group?.node)?.classList.add('selected');
      a.row?.classList.add('selected');
      drawAgentDetail(a);
    } else if (what.group) {
      const g = job.model.groups.find((x) => x.id === what.group);
      g?.node.classList.add('selected');
      drawGroupDetail(g);
    }
    detail.scrollIntoView({ block: 'nearest' });
  }

  function refreshDetail() {
    if (job.selected?.agent) {
      const a = job.model.agents.get(job.selected.agent);
      if (a) updateAgentDetail(a);
    } else if (job.selected?.group) {
      drawGroupDetail(job.model.groups.find((x) => x.id === job.selected.group));
    }
  }

  function kv(label, value, props = {}) {
    return [el('dt', { text: label }), el('dd', { text: value ?? '–', ...props })];
  }

  function drawAgentDetail(a) {
    const live = el('dl', { class: 'kv', id: 'detail-live' });
    const view = el('div', { id: 'detail-view' }, el('p', { class: 'muted small', text: 'loading…' }));
    const logs = el('div', { id: 'detail-logs' });
    const message = el('textarea', { id: 'message-body', rows: 5, spellcheck: 'false', 'aria-label': 'message JSON' });
    message.value = '{\n  "type": "manual",\n  "payload": {}\n}';
    const result = el('p', { class: 'small', id: 'message-result' });
    const form = el('form', { class: 'send', id: 'send-message' },
      el('label', { for: 'message-body', text: 'Send a message (JSON, flat or envelope form)' }), message,
      el('div', { class: 'buttons' }, el('button', { type: 'submit', class: 'primary', text: 'Send' }), result));
    form.addEventListener('submit', (ev) => { ev.preventDefault(); sendMessage(a, message.value, result); });
    detail.replaceChildren(
      el('div', { class: 'toolbar' }, el('h2', { class: 'mono', id: 'detail-title', text: a.id }), el('span', { class: 'spacer' }),
        el('button', { type: 'button', class: 'small', text: 'reload', onclick: () => select({ agent: a.id }) }),
        el('button', { type: 'button', class: 'small', text: '×', title: 'close', onclick: () => { job.selected = null; emptyDetail(); } })),
      live, el('h3', { text: 'In-flight message and state' }), view, el('h3', { text: 'Logs' }), logs, form);
    updateAgentDetail(a);
    loadAgentView(a, view);
    logsState = { agent: a.id, runs: [], last: 0, loading: false, timer: null, box: logs, token: detailToken };
    if (a.kind === 'executor' || !a.kind) loadLogs(); else logs.append(el('p', { class: 'muted small', text: `A ${a.kind} keeps no logs: only executors run commands.` }));
  }

  function updateAgentDetail(a) {
    const live = $('#detail-live', detail);
    if (!live) return;
    live.replaceChildren(
      el('dt', { text: 'state' }), el('dd', {}, badge(a.status, { id: 'detail-state' })),
      ...kv('type', [...new Set([a.agent_type, a.kind, a.type].filter(Boolean))].join(' · ')),
      ...(a.pool ? kv('pool', a.pool) : []),
      ...kv('processed', a.processed), ...kv('mailbox', a.mailbox),
      ...kv('last error', a.last_error ?? 'none', { class: a.last_error ? 'error pre' : 'muted', id: 'detail-error' }));
    if (logsState && logsState.agent === a.id && a.kind === 'executor') scheduleLogs();
  }

  async function loadAgentView(a, box) {
    const mine = detailToken;
    try {
      const view = await api(`${jobPath}/agents/${enc(a.id)}`);
      if (mine !== detailToken) return;
      if (!view) { box.replaceChildren(el('p', { class: 'muted small', text: 'no stored view of this agent yet' })); return; }
      const inflight = view.inflight_message;
      box.replaceChildren(
        inflight ? el('pre', { class: 'json', id: 'detail-inflight', text: clip(json(inflight, 2), 20000) })
          : el('p', { class: 'muted small', id: 'detail-inflight', text: 'no message in flight' }),
        el('details', {}, el('summary', { text: 'current state' }),
          el('pre', { class: 'json', text: clip(json(view.current_state ?? null, 2), 50000) })),
        el('p', { class: 'muted small', text: `restarts ${view.restarts ?? 0} · pending ${(view.pending_messages ?? []).length} · heartbeat ${view.last_heartbeat_at ? age(view.last_heartbeat_at) : '–'}` }));
    } catch (err) {
      if (mine === detailToken) box.replaceChildren(el('p', { class: 'error small', text: err.message }));
    }
  }

  function scheduleLogs() {
    const state = logsState;
    if (!state || state.timer) return;
    state.timer = setTimeout(() => { state.timer = null; loadLogs(); }, 1000);
  }

  async function loadLogs() {
    const state = logsState;
    if (!state || state.loading) return;
    state.loading = true;
    try {
      const page = await api(`${jobPath}/agents/${enc(state.agent)}/logs?after=${state.last}`);
      if (state !== logsState) return;
      for (const run of page?.data ?? []) {
        state.last = Math.max(state.last, Number(run.invocation) || 0);
        state.runs.push(run);
      }
      if (state.runs.length > 50) state.runs.splice(0, state.runs.length - 50); // the server keeps 50
      drawLogs(state);
    } catch (err) {
      if (state === logsState) state.box.replaceChildren(el('p', { class: 'error small', text: err.message }));
    } finally {
      state.loading = false;
    }
  }

  function drawLogs(state) {
    if (!state.runs.length) {
      state.box.replaceChildren(el('p', { class: 'muted small', id: 'no-logs', text: 'no runs yet' }));
      return;
    }
    const runs = state.runs.slice(-20).reverse();
    state.box.replaceChildren(...runs.map((run, i) => {
      const head = `run ${run.invocation} · ${run.ok ? 'ok' : 'failed'}${run.exit_code !== null && run.exit_code !== undefined ? ` · exit ${run.exit_code}` : ''}`
        + `${run.duration_ms !== undefined ? ` · ${Math.round(run.duration_ms)} ms` : ''}${run.finished_at ? ` · ${clock(run.finished_at)}` : ''}`;
      return el('details', { class: `run ${run.ok ? 'ok' : 'failed'}`, 'data-invocation': run.invocation, open: i === 0 },
        el('summary', { text: head }),
        run.error ? el('p', { class: 'error small', text: run.error }) : null,
        el('div', { class: 'stream-label', text: `stdout${run.stdout_truncated ? ' (end only)' : ''}` }),
        el('pre', { class: 'log stdout', text: run.stdout || '(empty)' }),
        el('div', { class: 'stream-label', text: `stderr${run.stderr_truncated ? ' (end only)' : ''}` }),
        el('pre', { class: 'log stderr', text: run.stderr || '(empty)' }));
    }));
  }

  async function sendMessage(a, text, result) {
    let body;
    try {
      body = JSON.parse(text);
    } catch (err) {
      result.className = 'small error';
      setText(result, `not JSON: ${err.message}`);
      return;
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      result.className = 'small error';
      setText(result, 'a message is a JSON object');
      return;
    }
    try {
      const r = await api(`${jobPath}/agents/${enc(a.id)}/messages`, { method: 'POST', body });
      result.className = 'small ok';
      setText(result, `${r.status}${r.mailbox_depth !== undefined ? ` · mailbox ${r.mailbox_depth}` : ''}`);
    } catch (err) {
      result.className = 'small error';
      setText(result, err.message);
    }
  }

  function drawGroupDetail(g) {
    if (!g) return;
    const counts = groupCounts(g);
    const members = g.members.slice(0, 300);
    detail.replaceChildren(
      el('div', { class: 'toolbar' }, el('h2', { text: `${g.label} ×${g.members.length}` }), el('span', { class: 'spacer' }),
        el('button', { type: 'button', class: 'small', text: '×', title: 'close', onclick: () => { job.selected = null; emptyDetail(); } })),
      el('p', { class: 'muted small', text: `${g.members.length} ${g.members[0].agent_type} agents with the same predecessors and successors, drawn as one node.` }),
      el('div', { class: 'counts' }, counts.map(([s, c]) => el('span', { class: 'chip', 'data-state': s }, el('span', { class: 'dot' }), `${s} ${c}`))),
      el('ul', { class: 'members' }, members.map((a) => el('li', {},
        el('button', { type: 'button', class: 'link mono', text: a.id, onclick: () => select({ agent: a.id }) }), ' ', badge(a.status),
        el('span', { class: 'muted small', text: ` ${a.processed} processed` })))),
      g.members.length > members.length ? el('p', { class: 'muted small', text: `and ${g.members.length - members.length} more: filter the agents table.` }) : null);
  }

  return { el: detail, select, refreshDetail, emptyDetail };
}
