// The jobs page (/ui): every job, its status and counts, refreshed every few seconds.

import { api, repeat } from './api.js';
import { JOB_STATUSES, LIVE, UI } from './config.js';
import { $, age, badge, el, enc, setText } from './dom.js';
import { poolsPanel } from './pools.js';

const JOBS_EVERY_MS = 2000;
const COUNT_PROCESSED_UP_TO = 1000; // agents: the jobs page sums processed messages of smaller jobs

export function jobsPage(main) {
  document.title = 'Jobs · MirrorNeuron';
  $('#crumbs').replaceChildren(el('span', { text: 'Jobs' }));
  const filter = el('select', { id: 'status-filter', 'aria-label': 'Status' },
    el('option', { value: '', text: 'all statuses' }),
    JOB_STATUSES.map((s) => el('option', { value: s, text: s })));
  const totals = el('span', { class: 'muted', id: 'job-totals' });
  const tbody = el('tbody');
  const table = el('table', { class: 'grid', id: 'jobs' },
    el('thead', {}, el('tr', {}, ['job', 'status', 'name / graph', 'agents', 'processed', 'node', 'submitted', 'updated']
      .map((h) => el('th', { text: h })))),
    tbody);
  const empty = el('p', { class: 'muted empty', id: 'no-jobs', hidden: true,
    text: 'No jobs yet. Submit one with `mn run --server …` or POST /api/v1/jobs.' });
  const more = el('button', { type: 'button', id: 'more-jobs', hidden: true, text: 'show more' });
  const pools = poolsPanel();
  main.replaceChildren(
    el('section', { class: 'panel' },
      el('div', { class: 'toolbar' }, el('h1', { text: 'Jobs' }), totals, el('span', { class: 'spacer' }),
        el('label', {}, 'status ', filter)),
      table, empty, more),
    pools.el,
  );

  const rows = new Map();
  const processed = new Map(); // job id → { value, at, final }
  let counting = 0;
  let limit = 50;

  function row(job) {
    let r = rows.get(job.job_id);
    if (!r) {
      const link = el('a', { href: `${UI}/jobs/${enc(job.job_id)}`, text: job.job_id });
      r = {
        tr: el('tr', { 'data-job-id': job.job_id }),
        status: badge(job.status),
        name: el('span'),
        graph: el('span', { class: 'muted small' }),
        agents: el('td', { class: 'num' }),
        processed: el('td', { class: 'num' }),
        node: el('td', { class: 'small' }),
        submitted: el('td', { class: 'small' }),
        updated: el('td', { class: 'small' }),
      };
      r.tr.append(el('td', { class: 'mono' }, link), el('td', {}, r.status), el('td', {}, r.name, el('br'), r.graph),
        r.agents, r.processed, r.node, r.submitted, r.updated);
      rows.set(job.job_id, r);
    }
    r.job = job;
    r.tr.dataset.status = job.status ?? 'unknown';
    r.status.dataset.state = job.status ?? 'unknown';
    setText(r.status, job.status ?? 'unknown');
    setText(r.name, job.job_name ?? '');
    setText(r.graph, job.graph_id && job.graph_id !== job.job_name ? job.graph_id : '');
    setText(r.agents, job.agent_count ?? '–');
    const p = processed.get(job.job_id);
    setText(r.processed, p ? (p.value ?? '–') : '…');
    r.processed.title = p && p.value === null ? 'too many agents to count here: open the job' : '';
    setText(r.node, job.node ?? '');
    setText(r.submitted, job.submitted_at ? new Date(job.submitted_at).toLocaleString() : '');
    setText(r.updated, age(job.updated_at));
    r.updated.title = job.updated_at ?? '';
    return r;
  }

  function countProcessed(jobs) {
    for (const job of jobs) {
      if (counting >= 3) return;
      const known = processed.get(job.job_id);
      const live = LIVE.has(job.status);
      if (known && (known.final || (live && Date.now() - known.at < 5000))) continue;
      if ((job.agent_count ?? 0) > COUNT_PROCESSED_UP_TO) {
        processed.set(job.job_id, { value: null, at: Date.now(), final: true });
        continue;
      }
      counting += 1;
      processed.set(job.job_id, { value: known?.value, at: Date.now(), final: !live });
      api(`/jobs/${enc(job.job_id)}/agents?limit=${COUNT_PROCESSED_UP_TO}`)
        .then((page) => {
          const sum = (page?.data ?? []).reduce((n, a) => n + Number(a.processed_messages ?? 0), 0);
          processed.set(job.job_id, { value: sum, at: Date.now(), final: !live });
          const r = rows.get(job.job_id);
          if (r) setText(r.processed, sum);
        })
        .catch(() => processed.delete(job.job_id))
        .finally(() => { counting -= 1; });
    }
  }

  async function refresh() {
    const query = new URLSearchParams({ limit: String(limit) });
    if (filter.value) query.set('status', filter.value);
    const [list, summary] = await Promise.all([api(`/jobs?${query}`), api('/system/summary')]);
    const seen = new Set();
    const ordered = list.data.map((job) => { seen.add(job.job_id); return row(job).tr; });
    for (const [id, r] of rows) if (!seen.has(id)) { r.tr.remove(); rows.delete(id); }
    tbody.append(...ordered); // moves rows into the list's order
    empty.hidden = list.data.length > 0;
    more.hidden = !list.next_cursor;
    const byStatus = Object.entries(summary.jobs ?? {}).sort().map(([s, n]) => `${n} ${s}`);
    setText(totals, byStatus.length ? byStatus.join(' · ') : '');
    pools.update(summary.executor_pools);
    countProcessed(list.data);
  }

  const poll = repeat(refresh, JOBS_EVERY_MS, { indicator: true });
  filter.addEventListener('change', () => { limit = 50; poll.now(); });
  more.addEventListener('click', () => { limit = Math.min(500, limit + 50); poll.now(); });
  setInterval(() => {
    for (const r of rows.values()) setText(r.updated, age(r.job.updated_at));
  }, 1000);
}
