// celeriac dashboard: vanilla JS, no network beyond this server.
'use strict';
const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v === undefined || v === null ? '' : v)
  .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmtTime = (t) => (t ? new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 23) : '');
const show = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
const COLORS = { received: '#175cd3', succeeded: '#1b7a36', failed: '#b42318', retried: '#b54708' };

let live = { workers: {}, series: null, runtime: {}, events: 0, malformed: 0 };
window.chartPoints = 0;  // drawn points with a non-zero value (read by the browser test)

async function api(path, opts) {
  const res = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts || {}));
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch (e) { body = text; }
  if (!res.ok) throw new Error((body && body.error) || res.statusText);
  return body;
}

async function post(path, params) {
  const q = params ? '?' + new URLSearchParams(params).toString() : '';
  try {
    const r = await api(path + q, { method: 'POST' });
    alert(r.message || 'done');
  } catch (e) { alert('failed: ' + e.message); }
  route();
}

function workerRows(workers) {
  return Object.entries(workers).map(([host, w]) => {
    const ev = w.events || w;
    const stats = w.stats || {};
    const pool = stats.pool || {};
    return `<tr data-worker="${esc(host)}"><td>${esc(host)}</td><td>${esc(w.language || ev.language)}</td>
      <td>${(w.status === undefined ? ev.status : w.status) ? 'online' : 'offline'}</td>
      <td>${esc(pool.implementation || '')}</td><td>${esc(pool['max-concurrency'] || '')}</td>
      <td>${esc((ev.loadavg || []).join(' '))}</td><td>${esc(ev.processed)}</td><td>${esc(ev.active)}</td></tr>`;
  }).join('');
}

function drawChart() {
  const c = $('#rates');
  if (!c || !live.series) return;
  const g = c.getContext('2d');
  const s = live.series, n = s.t.length;
  g.clearRect(0, 0, c.width, c.height);
  let max = 1;
  for (const k of Object.keys(COLORS)) for (const v of s[k]) max = Math.max(max, v);
  let drawn = 0;
  g.strokeStyle = '#e3e6ea';
  g.strokeRect(40, 10, c.width - 50, c.height - 30);
  g.fillStyle = '#8a93a0';
  g.font = '11px sans-serif';
  g.fillText(String(max) + '/s', 2, 16);
  g.fillText('-15 min', 40, c.height - 6);
  g.fillText('now', c.width - 30, c.height - 6);
  for (const [k, color] of Object.entries(COLORS)) {
    g.strokeStyle = color;
    g.beginPath();
    s[k].forEach((v, i) => {
      const x = 40 + (i / (n - 1)) * (c.width - 50);
      const y = c.height - 20 - (v / max) * (c.height - 30);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      if (v > 0) drawn++;
    });
    g.stroke();
  }
  window.chartPoints = drawn;
  c.dataset.points = String(drawn);
}

function overview() {
  const rt = live.runtime || {};
  const f = (v) => (v === undefined ? '–' : (v * 1000).toFixed(1) + ' ms');
  $('#main').innerHTML = `<h2>Overview</h2>
    <div class="cards">
      <div class="card">events<b id="ev-count">${live.events}</b></div>
      <div class="card">malformed<b>${live.malformed}</b></div>
      <div class="card">runtime p50<b id="p50">${f(rt.p50)}</b></div>
      <div class="card">p90<b id="p90">${f(rt.p90)}</b></div><div class="card">p99<b id="p99">${f(rt.p99)}</b></div>
    </div>
    <h2>Tasks per second (last 15 minutes)</h2>
    <div class="legend">${Object.entries(COLORS).map(([k, c]) => `<span style="color:${c}">■ ${k}</span>`).join('')}</div>
    <canvas id="rates" width="900" height="220"></canvas>
    <h2>Workers</h2>
    <table id="workers"><tr><th>Worker</th><th>Language</th><th>Status</th><th>Pool</th><th>Concurrency</th>
      <th>Load</th><th>Processed</th><th>Active</th></tr>${workerRows(live.workers)}</table>
    <h2>Queues</h2><table id="queues"><tr><th>Queue</th><th>Messages</th></tr></table>`;
  drawChart();
  api('/api/summary').then((d) => { if (current === 'overview') { live = d; refreshOverview(d); } }).catch(() => {});
  api('/api/queues/length').then((q) => {
    $('#queues').innerHTML += q.active_queues.map((x) => `<tr><td>${esc(x.name)}</td><td>${x.messages}</td></tr>`).join('');
  }).catch(() => {});
}

async function tasks(params) {
  const p = new URLSearchParams(params);
  if (!p.has('limit')) p.set('limit', '200');
  const list = await api('/api/tasks?' + p.toString());
  const val = (k) => esc(p.get(k) || '');
  $('#main').innerHTML = `<h2>Tasks</h2>
    <form class="filters" id="filters">
      <input name="taskname" placeholder="task name" value="${val('taskname')}">
      <select name="state"><option value="">any state</option>${['PENDING', 'RECEIVED', 'STARTED', 'SUCCESS', 'FAILURE', 'RETRY', 'REVOKED', 'REJECTED']
        .map((s) => `<option ${p.get('state') === s ? 'selected' : ''}>${s}</option>`).join('')}</select>
      <input name="workername" placeholder="worker" value="${val('workername')}">
      <input name="id" placeholder="id prefix" value="${val('id')}">
      <input name="search" placeholder="text in args/result" value="${val('search')}">
      <button>Filter</button></form>
    <table id="tasks"><tr><th>Name</th><th>UUID</th><th>State</th><th>Args</th><th>Kwargs</th><th>Result</th>
      <th>Received</th><th>Runtime</th><th>Worker</th></tr>
    ${Object.values(list).map((t) => `<tr><td>${esc(t.name)}</td><td><a href="#/task/${esc(t.uuid)}">${esc(t.uuid)}</a></td>
      <td class="state-${esc(t.state)}">${esc(t.state)}</td><td>${esc(show(t.args))}</td><td>${esc(show(t.kwargs))}</td>
      <td>${esc(show(t.result !== undefined ? t.result : t.exception))}</td><td>${fmtTime(t.received)}</td>
      <td>${t.runtime !== undefined ? Number(t.runtime).toFixed(4) + ' s' : ''}</td><td>${esc(t.worker)}</td></tr>`).join('')}</table>`;
  $('#filters').onsubmit = (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(e.target)) if (v) q.set(k, v);
    location.hash = '#/tasks?' + q.toString();
  };
}

async function taskDetail(id) {
  const t = await api('/api/task/info/' + encodeURIComponent(id));
  const link = (x) => (x ? `<a href="#/task/${esc(x)}">${esc(x)}</a>` : '');
  const rows = [['Name', esc(t.name)], ['UUID', esc(t.uuid)], ['State', `<span class="state-${esc(t.state)}">${esc(t.state)}</span>`],
    ['Args', esc(show(t.args))], ['Kwargs', esc(show(t.kwargs))], ['Result', esc(show(t.result))],
    ['Exception', esc(t.exception)], ['Worker', esc(t.worker)], ['Retries', esc(t.retries)],
    ['Sent', fmtTime(t.sent)], ['Received', fmtTime(t.received)], ['Started', fmtTime(t.started)],
    ['Succeeded', fmtTime(t.succeeded)], ['Failed', fmtTime(t.failed)],
    ['Runtime', t.runtime !== undefined ? Number(t.runtime).toFixed(4) + ' s' : ''],
    ['Parent', link(t.parent_id)], ['Root', link(t.root_id)],
    ['Children', (t.children || []).map(link).join(' ')]];
  $('#main').innerHTML = `<h2>Task ${esc(t.name)}</h2>
    <table id="task-detail">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>
    ${t.traceback ? `<h2>Traceback</h2><pre id="traceback">${esc(t.traceback)}</pre>` : ''}
    <button id="revoke">Revoke</button>`;
  $('#revoke').onclick = () => post('/api/task/revoke/' + encodeURIComponent(t.uuid));
}

async function workers() {
  const ws = await api('/api/workers');
  $('#main').innerHTML = '<h2>Workers</h2>' + Object.entries(ws).map(([host, w]) => {
    const h = encodeURIComponent(host);
    const list = (x) => esc((x || []).map((r) => (r.name ? `${r.name}[${r.id}]` : show(r))).join(', ') || '–');
    return `<section class="worker" data-worker="${esc(host)}"><h2>${esc(host)} <span class="muted">${esc(w.language || '')}</span></h2>
      <div>
        <button onclick="post('/api/worker/shutdown/${h}')">Shut down</button>
        <button onclick="post('/api/worker/pool/grow/${h}', {n: 1})">Pool +1</button>
        <button onclick="post('/api/worker/pool/shrink/${h}', {n: 1})">Pool −1</button>
        <button onclick="const t = prompt('task name'); const r = t && prompt('rate, e.g. 10/m'); if (r) post('/api/task/rate-limit/' + encodeURIComponent(t), {workername: '${esc(host)}', ratelimit: r})">Rate limit…</button>
        <button onclick="const q = prompt('queue'); if (q) post('/api/worker/queue/add-consumer/${h}', {queue: q})">Add consumer…</button>
        <button onclick="const q = prompt('queue'); if (q) post('/api/worker/queue/cancel-consumer/${h}', {queue: q})">Cancel consumer…</button>
      </div>
      <table><tr><th>Registered</th><td>${esc((w.registered || []).join(', '))}</td></tr>
        <tr><th>Active</th><td>${list(w.active)}</td></tr><tr><th>Reserved</th><td>${list(w.reserved)}</td></tr>
        <tr><th>Scheduled</th><td>${list(w.scheduled)}</td></tr><tr><th>Revoked</th><td>${esc((w.revoked || []).join(', ') || '–')}</td></tr>
        <tr><th>Queues</th><td>${esc((w.active_queues || []).map((q) => q.name).join(', '))}</td></tr></table>
      <pre>${esc(JSON.stringify(w.stats || {}, null, 2))}</pre></section>`;
  }).join('');
}

async function queues() {
  const q = await api('/api/queues/length');
  $('#main').innerHTML = `<h2>Queues</h2><table id="queues"><tr><th>Queue</th><th>Messages</th><th></th></tr>
    ${q.active_queues.map((x) => `<tr><td>${esc(x.name)}</td><td>${x.messages}</td>
      <td><button onclick="confirm('purge ${esc(x.name)}?') && post('/api/queues/purge/${encodeURIComponent(x.name)}')">Purge</button></td></tr>`).join('')}</table>`;
}

async function dead() {
  const d = await api('/api/dead-letters');
  $('#main').innerHTML = `<h2>Dead letters</h2><table id="dead"><tr><th>Time</th><th>Queue</th><th>Task</th><th>Reason</th><th>Message</th></tr>
    ${d.map((x) => `<tr><td>${fmtTime(x.time)}</td><td>${esc(x.queue)}</td><td>${esc(x.name)} ${esc(x.id)}</td>
      <td>${esc(x.reason)}</td><td><pre>${esc(x.message)}</pre></td></tr>`).join('')}</table>`;
}

let current = '';
async function route() {
  const h = location.hash || '#/overview';
  const [path, query] = h.slice(2).split('?');
  const [page, arg] = path.split('/');
  current = page;
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === page || (page === 'task' && a.dataset.page === 'tasks')));
  try {
    if (page === 'tasks') await tasks(query || '');
    else if (page === 'task') await taskDetail(decodeURIComponent(arg));
    else if (page === 'workers') await workers();
    else if (page === 'queues') await queues();
    else if (page === 'dead') await dead();
    else overview();
  } catch (e) {
    $('#main').innerHTML = `<h2>Error</h2><p id="error">${esc(e.message)}</p>`;
  }
}

function refreshOverview(d) {
  drawChart();
  const w = $('#workers');
  if (w) w.innerHTML = w.rows[0].outerHTML + workerRows(d.workers);
  const ev = $('#ev-count');
  if (ev) ev.textContent = d.events;
  for (const k of ['p50', 'p90', 'p99']) {
    const el = $('#' + k);
    const v = (d.runtime || {})[k];
    if (el && v !== undefined) el.textContent = (v * 1000).toFixed(1) + ' ms';
  }
}

function connect() {
  // ?nolive: a snapshot without the stream (headless browsers wait for open connections)
  if (new URLSearchParams(location.search).has('nolive')) {
    $('#live').textContent = 'snapshot';
    return;
  }
  const es = new EventSource('/api/stream');
  es.onopen = () => { $('#live').textContent = 'live'; };
  es.onerror = () => { $('#live').textContent = 'reconnecting…'; };
  es.onmessage = (m) => {
    const d = JSON.parse(m.data);
    live = d;
    if (current === 'overview' || current === '') {
      refreshOverview(d);
    } else if (current === 'tasks' && d.tasks.length && !document.activeElement.closest('form')) {
      route();
    }
  };
}

window.addEventListener('hashchange', route);
route();
connect();
