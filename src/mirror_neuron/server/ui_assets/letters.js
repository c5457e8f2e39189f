// A job's dead letters: the list, and a button per letter to redrive it.

import { api } from './api.js';
import { clip, el, enc, json, toast } from './dom.js';

export function lettersPart(job) {
  const jobPath = job.jobPath;
  const letters = el('div', { id: 'dead-letters' }, el('p', { class: 'muted', text: 'loading…' }));
  const lettersPanel = el('section', { class: 'panel letters-panel' }, el('h2', { text: 'Dead letters' }), letters);

  async function loadLetters() {
    try {
      const page = await api(`${jobPath}/dead-letters`);
      const list = page?.data ?? [];
      if (!list.length) { letters.replaceChildren(el('p', { class: 'muted small', text: 'none' })); return; }
      letters.replaceChildren(el('table', { class: 'grid' },
        el('thead', {}, el('tr', {}, ['#', 'agent', 'reason', 'message', ''].map((h) => el('th', { text: h })))),
        el('tbody', {}, list.map((d) => {
          const target = el('input', { type: 'text', placeholder: 'agent (default: the original)', 'aria-label': 'redrive to agent', class: 'small' });
          const go = el('button', { type: 'button', class: 'small', 'data-redrive': d.id, text: 'redrive' });
          go.addEventListener('click', async () => {
            go.disabled = true;
            const to = target.value.trim();
            try {
              const r = await api(`${jobPath}/dead-letters/${enc(d.id)}/redrive${to ? `?agent_id=${enc(to)}` : ''}`, { method: 'POST' });
              toast(`dead letter ${d.id} redriven to ${r.agent_id}: ${r.status}`);
            } catch (err) {
              toast(`redrive failed: ${err.message}`, 'error');
            } finally {
              go.disabled = false;
            }
          });
          return el('tr', { 'data-letter': d.id },
            el('td', { class: 'num', text: d.id }), el('td', { class: 'mono', text: d.agent_id ?? '' }),
            el('td', { class: 'small', text: clip(typeof d.reason === 'string' ? d.reason : json(d.reason), 200) }),
            el('td', { class: 'small mono', text: clip(json(d.message), 200), title: clip(json(d.message, 2), 4000) }),
            el('td', {}, target, go));
        }))));
    } catch (err) {
      letters.replaceChildren(el('p', { class: 'error small', text: err.message }));
    }
  }

  return { el: lettersPanel, loadLetters };
}
