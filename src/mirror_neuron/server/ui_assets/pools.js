// Executor pools (GET /system/summary), on both pages.

import { el } from './dom.js';

export function poolsPanel() {
  const body = el('div', { class: 'pools', id: 'pools' }, el('p', { class: 'muted', text: 'loading…' }));
  const panel = el('section', { class: 'panel', id: 'pools-panel' }, el('h2', { text: 'Executor pools' }), body);
  let used = new Set();
  return {
    el: panel,
    highlight(names) {
      used = new Set(names);
    },
    update(pools) {
      const names = Object.keys(pools ?? {}).sort();
      body.replaceChildren();
      if (!names.length) {
        body.append(el('p', { class: 'muted', text: 'no executor pools' }));
        return;
      }
      for (const name of names) {
        const p = pools[name] ?? {};
        const capacity = Number(p.capacity ?? 0);
        const inUse = Number(p.in_use ?? 0);
        const meter = el('meter', { min: 0, max: Math.max(1, capacity), value: inUse });
        body.append(
          el('div', { class: `pool${used.has(name) ? ' used' : ''}`, 'data-pool': name },
            el('span', { class: 'pool-name', text: name }),
            meter,
            el('span', { class: 'pool-numbers', text: `${inUse}/${capacity} in use · ${p.available ?? 0} free · ${p.queued ?? 0} queued` }),
          ),
        );
      }
    },
    failed(err) {
      body.replaceChildren(el('p', { class: 'error', text: `pools unavailable: ${err.message}` }));
    },
  };
}
