// A job's graph: its model (agents, same-shaped groups), its layout (dagre, or a plain
// layered one for big graphs), its drawing (SVG), and the panel it is shown in (zoom, fit).

import { DAGRE_URL, STATE_ORDER } from './config.js';
import { $, clip, el, setText, svg } from './dom.js';

const COLLAPSE_AT = 200; // more agents than this: same-shaped siblings are drawn as one group
const DAGRE_MAX_NODES = 1500; // more drawn nodes than this: a plain layered layout instead
const EDGE_LABEL_ROOM_MAX = 400; // edges with room reserved for their label by dagre

export function loadDagre() {
  return new Promise((resolve, reject) => {
    if (window.dagre) return resolve();
    const script = el('script', { src: DAGRE_URL });
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`cannot load ${DAGRE_URL}`));
    document.head.append(script);
  });
}

// The panel: a toolbar (zoom out, zoom, zoom in, fit) over the box the drawing goes in.
// `size` is the laid-out graph's (set once it is laid out); zooming needs it.
export function graphPanel() {
  const zoomLabel = el('span', { class: 'muted small', id: 'zoom' });
  const info = el('span', { class: 'muted small', id: 'graph-info' });
  const wrap = el('div', { class: 'graph-wrap', id: 'graph' }, el('p', { class: 'muted', text: 'loading the graph…' }));
  let zoom = 1;
  const view = { el: null, wrap, info, size: null, fit };
  function setZoom(value) {
    zoom = Math.min(2.5, Math.max(0.1, value));
    const svgEl = $('#graph-svg');
    if (!svgEl || !view.size) return;
    svgEl.setAttribute('width', Math.ceil(view.size.width * zoom));
    svgEl.setAttribute('height', Math.ceil(view.size.height * zoom));
    setText(zoomLabel, `${Math.round(zoom * 100)}%`);
  }
  // The whole width in view, unless that makes the boxes unreadable (then scroll).
  function fit(floor = 0.1) {
    if (!view.size) return;
    const w = wrap.clientWidth - 8;
    setZoom(Math.min(1.25, Math.max(floor, w / view.size.width)));
  }
  wrap.addEventListener('wheel', (ev) => {
    if (!ev.ctrlKey) return;
    ev.preventDefault();
    setZoom(zoom * (ev.deltaY < 0 ? 1.1 : 1 / 1.1));
  }, { passive: false });
  view.el = el('section', { class: 'panel graph-panel' },
    el('div', { class: 'toolbar' }, el('h2', { text: 'Graph' }), info, el('span', { class: 'spacer' }),
      el('button', { type: 'button', class: 'small', text: '−', title: 'zoom out', onclick: () => setZoom(zoom / 1.25) }),
      zoomLabel,
      el('button', { type: 'button', class: 'small', text: '+', title: 'zoom in', onclick: () => setZoom(zoom * 1.25) }),
      el('button', { type: 'button', class: 'small', text: 'fit', onclick: () => fit() })),
    wrap);
  return view;
}

function groupName(members) {
  let prefix = members[0].id;
  for (const a of members) {
    let i = 0;
    while (i < prefix.length && i < a.id.length && prefix[i] === a.id[i]) i += 1;
    prefix = prefix.slice(0, i);
    if (!prefix) break;
  }
  prefix = prefix.replace(/[\d_\-.:#\s]+$/, '');
  return prefix.length >= 2 ? prefix : members[0].agent_type;
}

export function buildModel(graph) {
  const agents = new Map();
  for (const n of graph.nodes) {
    agents.set(n.id, {
      id: n.id, agent_type: n.agent_type, kind: n.kind, type: n.type, role: n.role, pool: n.pool,
      status: 'unknown', mailbox: 0, processed: 0, last_error: null, node: null, row: null, group: null,
    });
  }
  const edges = graph.edges.filter((e) => agents.has(e.from) && agents.has(e.to));
  const groups = [];
  if (agents.size > COLLAPSE_AT) {
    const preds = new Map();
    const succs = new Map();
    for (const id of agents.keys()) { preds.set(id, new Set()); succs.set(id, new Set()); }
    for (const e of edges) { succs.get(e.from).add(e.to); preds.get(e.to).add(e.from); }
    const bySignature = new Map();
    for (const a of agents.values()) {
      const sig = [a.agent_type, a.kind, a.type, [...preds.get(a.id)].sort().join('\u0001'),
        [...succs.get(a.id)].sort().join('\u0001')].join('\u0002');
      const members = bySignature.get(sig);
      if (members) members.push(a); else bySignature.set(sig, [a]);
    }
    for (const members of bySignature.values()) {
      if (members.length < 2) continue;
      const group = { id: `g${groups.length}`, members, counts: new Map([['unknown', members.length]]), label: groupName(members), node: null };
      for (const a of members) a.group = group;
      groups.push(group);
    }
  }
  // Drawn nodes: one per agent outside groups, one per group; edges between drawn nodes.
  const key = (a) => (a.group ? `g:${a.group.id}` : `a:${a.id}`);
  const drawn = new Map();
  for (const a of agents.values()) if (!a.group) drawn.set(key(a), { key: key(a), agent: a });
  for (const g of groups) drawn.set(`g:${g.id}`, { key: `g:${g.id}`, group: g });
  const drawnEdges = [];
  const merged = new Map();
  for (const e of edges) {
    const from = agents.get(e.from);
    const to = agents.get(e.to);
    if (!from.group && !to.group) {
      drawnEdges.push({ from: key(from), to: key(to), types: [e.message_type], count: 1, edge: e });
      continue;
    }
    const k = `${key(from)}\u0000${key(to)}`;
    let m = merged.get(k);
    if (!m) {
      m = { from: key(from), to: key(to), types: [], count: 0, edge: null };
      merged.set(k, m);
      drawnEdges.push(m);
    }
    m.count += 1;
    if (!m.types.includes(e.message_type) && m.types.length < 4) m.types.push(e.message_type);
  }
  return { agents, groups, drawn, drawnEdges, edges };
}

const CHAR_W = 6.6; // average width of a character of the node's text (11–12.5 px)
const NAME_W = 7.6;

function nodeSize(d) {
  if (d.group) return { width: 230, height: 72 };
  const a = d.agent;
  const width = Math.max(a.id.length * NAME_W, `${a.kind} · 000000 processed`.length * CHAR_W) + 28;
  return { width: Math.min(260, Math.max(130, Math.round(width))), height: 46 };
}

function edgeLabel(e) {
  const text = e.types.join(', ') + (e.types.length >= 4 ? ', …' : '');
  return e.count > 1 ? `${text} ×${e.count}` : text;
}

export function layoutGraph(model) {
  const nodes = [...model.drawn.values()];
  for (const d of nodes) Object.assign(d, nodeSize(d));
  if (nodes.length <= DAGRE_MAX_NODES && window.dagre) {
    const g = new window.dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: 'LR', nodesep: 16, ranksep: 70, edgesep: 10, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const d of nodes) g.setNode(d.key, { width: d.width, height: d.height });
    const room = model.drawnEdges.length <= EDGE_LABEL_ROOM_MAX;
    model.drawnEdges.forEach((e, i) => {
      const label = edgeLabel(e);
      const size = room ? { width: Math.min(160, label.length * 6 + 8), height: 14, labelpos: 'c' } : {};
      g.setEdge(e.from, e.to, size, `e${i}`);
    });
    window.dagre.layout(g);
    for (const d of nodes) { const p = g.node(d.key); d.x = p.x; d.y = p.y; }
    model.drawnEdges.forEach((e, i) => {
      const p = g.edge({ v: e.from, w: e.to, name: `e${i}` });
      e.points = p.points;
      e.lx = p.x;
      e.ly = p.y;
    });
    const { width, height } = g.graph();
    return { width, height };
  }
  return layeredLayout(model, nodes);
}

// For graphs too big for dagre: ranks by longest path from the sources, one column each.
function layeredLayout(model, nodes) {
  const incoming = new Map(nodes.map((d) => [d.key, 0]));
  const out = new Map(nodes.map((d) => [d.key, []]));
  for (const e of model.drawnEdges) {
    if (e.from === e.to) continue;
    out.get(e.from).push(e.to);
    incoming.set(e.to, incoming.get(e.to) + 1);
  }
  const rank = new Map();
  const queue = nodes.filter((d) => incoming.get(d.key) === 0).map((d) => d.key);
  for (const k of queue) rank.set(k, 0);
  for (let i = 0; i < queue.length; i += 1) {
    const k = queue[i];
    for (const next of out.get(k)) {
      rank.set(next, Math.max(rank.get(next) ?? 0, rank.get(k) + 1));
      incoming.set(next, incoming.get(next) - 1);
      if (incoming.get(next) === 0) queue.push(next);
    }
  }
  const columns = [];
  for (const d of nodes) {
    const r = rank.get(d.key) ?? 0; // nodes on cycles go first
    (columns[r] ??= []).push(d);
  }
  let x = 20;
  let height = 0;
  for (const column of columns.filter(Boolean)) {
    const w = Math.max(...column.map((d) => d.width));
    let y = 20;
    for (const d of column) { d.x = x + w / 2; d.y = y + d.height / 2; y += d.height + 12; }
    height = Math.max(height, y);
    x += w + 90;
  }
  const byKey = model.drawn;
  for (const e of model.drawnEdges) {
    const a = byKey.get(e.from);
    const b = byKey.get(e.to);
    e.points = [{ x: a.x + a.width / 2, y: a.y }, { x: b.x - b.width / 2, y: b.y }];
  }
  return { width: x, height: height + 20 };
}

function pathOf(points) {
  if (!points?.length) return '';
  let d = `M${points[0].x.toFixed(1)},${points[0].y.toFixed(1)}`;
  if (points.length === 2) return `${d}L${points[1].x.toFixed(1)},${points[1].y.toFixed(1)}`;
  for (let i = 1; i < points.length - 1; i += 1) {
    const p = points[i];
    const q = points[i + 1];
    const mx = i === points.length - 2 ? q.x : (p.x + q.x) / 2;
    const my = i === points.length - 2 ? q.y : (p.y + q.y) / 2;
    d += `Q${p.x.toFixed(1)},${p.y.toFixed(1)} ${mx.toFixed(1)},${my.toFixed(1)}`;
  }
  return d;
}

export function agentMeta(a) {
  let text = `${a.kind} · ${a.processed} processed`;
  if (a.mailbox) text += ` · ${a.mailbox} queued`;
  return text;
}

export function groupCounts(group) {
  return STATE_ORDER.filter((s) => group.counts.get(s)).map((s) => [s, group.counts.get(s)]);
}

export function drawGraph(model, size, onSelect) {
  const root = svg('svg', { id: 'graph-svg', role: 'img', 'aria-label': 'job graph',
    viewBox: `0 0 ${Math.ceil(size.width)} ${Math.ceil(size.height)}` });
  root.append(svg('defs', {},
    svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));
  const edgeLayer = svg('g', { class: 'edges' });
  model.drawnEdges.forEach((e, i) => {
    const label = edgeLabel(e);
    const lx = e.lx ?? e.points[Math.floor(e.points.length / 2)].x;
    const ly = e.ly ?? e.points[Math.floor(e.points.length / 2)].y;
    const g = svg('g', {
      class: 'edge', 'data-edge': i, 'data-count': e.count,
      'data-edge-id': e.edge?.edge_id, 'data-from': e.edge?.from, 'data-to': e.edge?.to,
      'data-message-type': e.edge?.message_type,
    },
    svg('title', { text: label }),
    svg('path', { d: pathOf(e.points), 'marker-end': 'url(#arrow)' }),
    svg('text', { x: lx.toFixed(1), y: (ly + 4).toFixed(1), 'text-anchor': 'middle', class: 'edge-label', text: clip(label, 28) }));
    edgeLayer.append(g);
  });
  const nodeLayer = svg('g', { class: 'nodes' });
  for (const d of model.drawn.values()) {
    const x = (d.x - d.width / 2).toFixed(1);
    const y = (d.y - d.height / 2).toFixed(1);
    if (d.agent) {
      const a = d.agent;
      const chars = Math.floor((d.width - 24) / NAME_W);
      const meta = svg('text', { x: 14, y: 35, class: 'meta', text: agentMeta(a) });
      const g = svg('g', { class: 'node', 'data-agent-id': a.id, 'data-state': a.status, 'data-kind': a.kind,
        transform: `translate(${x},${y})`, tabindex: 0 },
      svg('title', { text: `${a.id}\n${a.agent_type} (${a.kind}, ${a.type})` }),
      svg('rect', { class: 'box', width: d.width, height: d.height, rx: 7 }),
      svg('rect', { class: 'stripe', width: 6, height: d.height, rx: 3 }),
      svg('text', { x: 14, y: 19, class: 'name', text: clip(a.id, chars) }),
      meta);
      a.node = g;
      a.meta = meta;
      nodeLayer.append(g);
    } else {
      const group = d.group;
      const n = group.members.length;
      const bar = svg('g', { class: 'bar', transform: 'translate(12,40)' });
      const meta = svg('text', { x: 12, y: 64, class: 'meta' });
      const kind = group.members[0].kind;
      const g = svg('g', { class: 'group', 'data-group': group.id, 'data-count': n, 'data-kind': kind,
        transform: `translate(${x},${y})`, tabindex: 0 },
      svg('title', { text: `${n} same-shaped ${group.members[0].agent_type} agents (${group.label}…)` }),
      svg('rect', { class: 'shadow', x: 5, y: 5, width: d.width, height: d.height, rx: 8 }),
      svg('rect', { class: 'box', width: d.width, height: d.height, rx: 8 }),
      svg('text', { x: 12, y: 20, class: 'name', text: `${clip(group.label, 22)} ×${n}` }),
      svg('text', { x: d.width - 12, y: 20, class: 'kind', 'text-anchor': 'end', text: kind }),
      bar, meta);
      group.processedText = svg('text', { x: d.width - 12, y: 64, class: 'meta', 'text-anchor': 'end' });
      g.append(group.processedText);
      group.node = g;
      group.bar = bar;
      group.meta = meta;
      group.barWidth = d.width - 24;
      nodeLayer.append(g);
      drawGroup(group);
    }
  }
  root.append(edgeLayer, nodeLayer);
  const pick = (ev) => {
    const target = ev.target.closest('[data-agent-id], [data-group]');
    if (!target) return;
    onSelect(target.dataset.group ? { group: target.dataset.group } : { agent: target.dataset.agentId });
  };
  root.addEventListener('click', pick);
  root.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') pick(ev); });
  return root;
}

export function drawGroup(group) {
  const counts = groupCounts(group);
  const n = group.members.length;
  let x = 0;
  const parts = [];
  for (const [state, count] of counts) {
    const w = (group.barWidth * count) / n;
    parts.push(svg('rect', { x: x.toFixed(2), y: 0, width: Math.max(0, w).toFixed(2), height: 8, 'data-state': state }));
    x += w;
  }
  group.bar.replaceChildren(svg('rect', { class: 'track', width: group.barWidth, height: 8, rx: 2 }), ...parts);
  setText(group.meta, clip(counts.map(([s, c]) => `${s} ${c}`).join(' · '), 28));
  const processed = group.members.reduce((sum, a) => sum + a.processed, 0);
  group.node.dataset.processed = processed;
  setText(group.processedText, `${processed} processed`);
}
