// A job's agents table, and the agents' states (agent_status frames, stored pages) applied to
// the model: the changed agents are marked dirty and drawn in the next frame (job.schedule).

import { clip, el, setText } from './dom.js';
import { agentMeta } from './graph.js';

export function agentsPart(job) {
  const agentFilter = el('input', { type: 'search', id: 'agent-filter', placeholder: 'filter agents', 'aria-label': 'filter agents' });
  const failuresOnly = el('input', { type: 'checkbox', id: 'failures-only' });
  // A table of rows with role=row (not <tr>): rows out of view skip layout and paint
  // (content-visibility), so thousands of agents updating cost little.
  const agentBody = el('div', { role: 'rowgroup', class: 'tbody' });
  const agentTable = el('div', { role: 'table', class: 'agents', id: 'agents', 'aria-label': 'agents' },
    el('div', { role: 'rowgroup', class: 'thead' }, el('div', { role: 'row', class: 'tr' },
      ['agent', 'type', 'state', 'mailbox', 'processed', 'last error'].map((h) => el('div', { role: 'columnheader', text: h })))),
    agentBody);
  const agentsPanel = el('section', { class: 'panel agents-panel' },
    el('div', { class: 'toolbar' }, el('h2', { text: 'Agents' }), el('span', { class: 'spacer' }), agentFilter,
      el('label', { class: 'toggle' }, failuresOnly, ' failures only')),
    el('div', { class: 'scroll' }, agentTable));

  function count(state, delta) {
    job.stateCounts.set(state, (job.stateCounts.get(state) ?? 0) + delta);
  }

  function ensureAgent(id) {
    let a = job.model.agents.get(id);
    if (!a) { // an agent the graph does not show (no graph stored): a table row only
      a = { id, agent_type: '', kind: '', type: '', status: 'unknown', mailbox: 0, processed: 0, last_error: null, node: null, row: null, group: null };
      job.model.agents.set(id, a);
      count('unknown', 1);
      agentBody.append(agentRow(a));
    }
    return a;
  }

  function applyStatuses(list) {
    if (!job.model) return;
    for (const s of list) {
      if (!s || typeof s.agent_id !== 'string') continue;
      const a = ensureAgent(s.agent_id);
      const next = String(s.status ?? 'unknown');
      if (next !== a.status) {
        count(a.status, -1);
        count(next, 1);
        if (a.group) {
          a.group.counts.set(a.status, a.group.counts.get(a.status) - 1);
          a.group.counts.set(next, (a.group.counts.get(next) ?? 0) + 1);
        }
        a.status = next;
      }
      a.mailbox = Number(s.mailbox_depth ?? 0);
      a.processed = Number(s.processed ?? s.processed_messages ?? 0);
      a.last_error = s.last_error ?? null;
      job.dirty.add(a);
    }
    job.schedule();
  }

  let rowPrototype = null;
  function agentRow(a) { // cloned from one prototype: thousands of rows stay cheap
    const cell = (props, ...kids) => el('div', { role: 'cell', ...props }, ...kids);
    rowPrototype ??= el('div', { role: 'row', class: 'tr', tabindex: 0 }, cell({ class: 'mono' }), cell({ class: 'small' }),
      cell({}, el('span', { class: 'badge' })), cell({ class: 'num' }), cell({ class: 'num' }), cell({ class: 'error small' }));
    const row = rowPrototype.cloneNode(true);
    const cells = row.children;
    row.dataset.agentId = a.id;
    row.dataset.state = a.status;
    cells[0].textContent = a.id;
    cells[0].title = a.id;
    cells[1].textContent = [a.agent_type, a.type && a.type !== 'generic' ? a.type : ''].filter(Boolean).join(' · ');
    cells[2].firstChild.dataset.state = a.status;
    cells[2].firstChild.textContent = a.status;
    cells[3].textContent = a.mailbox;
    cells[4].textContent = a.processed;
    a.row = row;
    return row;
  }

  function drawAgent(a) {
    if (a.node) {
      a.node.dataset.state = a.status;
      setText(a.meta, agentMeta(a));
    }
    if (a.row) {
      const cells = a.row.children;
      a.row.dataset.state = a.status;
      if (a.status === 'failed' || a.last_error) a.row.dataset.failed = ''; else delete a.row.dataset.failed;
      const b = cells[2].firstChild;
      b.dataset.state = a.status;
      setText(b, a.status);
      setText(cells[3], a.mailbox);
      setText(cells[4], a.processed);
      setText(cells[5], clip(a.last_error ?? '', 160));
      cells[5].title = a.last_error ?? '';
    }
  }

  const pickRow = (ev) => {
    const row = ev.target.closest('[data-agent-id]');
    if (row) job.select({ agent: row.dataset.agentId });
  };
  agentBody.addEventListener('click', pickRow);
  agentBody.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') pickRow(ev); });
  failuresOnly.addEventListener('change', () => agentTable.classList.toggle('failures-only', failuresOnly.checked));
  let agentTimer = null;
  agentFilter.addEventListener('input', () => {
    clearTimeout(agentTimer);
    agentTimer = setTimeout(() => {
      const q = agentFilter.value.trim().toLowerCase();
      for (const a of job.model?.agents.values() ?? []) if (a.row) a.row.hidden = Boolean(q) && !a.id.toLowerCase().includes(q);
    }, 120);
  });

  function fill() {
    const fragment = document.createDocumentFragment();
    for (const a of job.model.agents.values()) fragment.append(agentRow(a));
    agentBody.replaceChildren(fragment);
  }

  return { el: agentsPanel, body: agentBody, count, applyStatuses, drawAgent, fill };
}
