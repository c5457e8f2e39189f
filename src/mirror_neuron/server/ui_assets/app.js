// MirrorNeuron web UI: the jobs page (/ui) and a job's page (/ui/jobs/{id}).
//
// Plain ES modules, no build step; everything the pages show comes from /api/v1. Agent ids,
// event payloads, logs and errors come from untrusted bundles: they only ever reach the
// page as text nodes (textContent, createElement, createElementNS) or attribute values,
// never as markup (dom.js). The page's Content-Security-Policy forbids inline script and style.
//
// The modules: config.js (where the server is, the states), dom.js (text-only DOM helpers),
// api.js (requests, token, connection indicator, polling), pools.js, jobs.js (the jobs page),
// graph.js (a job's graph), and the job page, job.js, made of agents.js, events.js,
// detail.js, letters.js and stream.js. This one picks the page.

import { forgetToken, keepToken, token } from './api.js';
import { ROOT } from './config.js';
import { $ } from './dom.js';
import { jobPage } from './job.js';
import { jobsPage } from './jobs.js';

window.__mnTimings = {};

function main() {
  const app = $('#app');
  if (token) keepToken(token);
  $('#forget-token').addEventListener('click', forgetToken);
  const path = location.pathname.slice(ROOT.length);
  const match = path.match(/^\/ui\/jobs\/([^/]+)\/?$/);
  if (match) {
    let id;
    try { id = decodeURIComponent(match[1]); } catch { id = match[1]; }
    jobPage(app, id);
  } else {
    jobsPage(app);
  }
}

main();
