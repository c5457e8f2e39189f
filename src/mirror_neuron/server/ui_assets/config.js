// Where the server is (from the page's meta tags) and the job and agent states both pages know.

export const ROOT = document.querySelector('meta[name="mn-root"]')?.content ?? '';
export const API = `${ROOT}/api/v1`;
export const UI = `${ROOT}/ui`;
export const DAGRE_URL = document.querySelector('meta[name="mn-dagre"]')?.content;

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
export const LIVE = new Set(['pending', 'running', 'paused', 'suspended']);
export const JOB_STATUSES = ['pending', 'running', 'paused', 'suspended', 'completed', 'failed', 'cancelled'];
export const STATE_ORDER = ['failed', 'running', 'stopping', 'paused', 'initializing', 'idle', 'completed',
  'stopped', 'cancelled', 'unknown'];
