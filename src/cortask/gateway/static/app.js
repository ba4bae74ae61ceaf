// Cortask WhatsApp — the channel settings page.
//
// Plain ES module, no build step. Talks to the gateway's JSON API under /api and follows its
// Server-Sent Events stream at /api/events. All state lives in `S`; render functions update the
// static DOM in index.html in place (no full re-renders), so focus and half-typed input survive
// live updates.

// The gateway trades the printed address's ?token= for an HttpOnly cookie (a redirect), so the
// token never reaches this script. Should one still be in the address, drop it from the bar and history.
if (new URLSearchParams(location.search).has('token')) {
  const clean = new URL(location.href);
  clean.searchParams.delete('token');
  history.replaceState(null, '', clean.pathname + clean.search + clean.hash);
}
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// Time. Timestamps from the gateway are epoch seconds on the server's clock; we estimate the
// offset from the HTTP Date header so that countdowns stay right on a machine with a wrong clock.

let clockSkewMs = 0;

function noteServerClock(res) {
  const date = res.headers.get('Date');
  if (!date) return;
  const server = Date.parse(date);
  if (Number.isNaN(server)) return;
  const skew = server - Date.now();
  // The Date header has one-second resolution: ignore differences that small.
  clockSkewMs = Math.abs(skew) > 2500 ? skew : 0;
}

const nowSec = () => (Date.now() + clockSkewMs) / 1000;

const clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** Local Date for a server epoch (seconds). */
const toDate = (epoch) => new Date(epoch * 1000 - clockSkewMs);

function clockTime(epoch) {
  const d = toDate(epoch);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? clockFmt.format(d) : `${dayFmt.format(d)}, ${clockFmt.format(d)}`;
}

function relative(epoch) {
  const diff = epoch - nowSec();
  const abs = Math.abs(diff);
  if (abs < 10) return 'just now';
  if (abs < 60) return relFmt.format(Math.round(diff), 'second');
  if (abs < 3600) return relFmt.format(Math.round(diff / 60), 'minute');
  if (abs < 86400) return relFmt.format(Math.round(diff / 3600), 'hour');
  return relFmt.format(Math.round(diff / 86400), 'day');
}

function secondsText(s) {
  s = Math.max(0, Math.ceil(s));
  if (s < 100) return `${s} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(s % 60).padStart(2, '0')} s`;
}

function timeEl(epoch, { withRelative = false } = {}) {
  const t = document.createElement('time');
  t.dateTime = toDate(epoch).toISOString();
  t.title = fullFmt.format(toDate(epoch));
  t.dataset.epoch = String(epoch);
  t.textContent = clockTime(epoch);
  if (withRelative) {
    t.dataset.relative = 'true';
    t.textContent = `${clockTime(epoch)} · ${relative(epoch)}`;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(message, status = 0, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  if (typeof AbortSignal.timeout === 'function') init.signal = AbortSignal.timeout(30000);
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (err && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
      throw new ApiError('The gateway did not answer within 30 seconds. Check that Cortask is still running, then try again.');
    }
    throw new ApiError('Could not reach the Cortask gateway. Check that it is running, then try again.');
  }
  noteServerClock(res);
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    let message = data && typeof data.error === 'string' && data.error.trim()
      ? data.error
      : `The gateway answered “${res.status} ${res.statusText}”. Try again; if it keeps happening, check the gateway's log.`;
    if (res.status === 401) {
      message = 'This page needs the gateway\'s token: open the address with “?token=…” that Cortask printed when it started.';
    }
    throw new ApiError(message, res.status, data);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// State

const S = {
  wa: null,              // the GET /api/whatsapp snapshot, kept current by events
  activity: [],          // GET /api/activity, newest last
  loads: 0,              // snapshots on their way
  arrivedWhileLoading: [], // live activity entries received meanwhile (kept when the snapshot lands)
  linkFlow: false,       // a code was generated (or streamed) while this page was open
  qrDead: false,         // the server ended the linking session before the code's expiry
  editing: null,         // { phone, name, permission, error, busy } for the contact being edited
  allowedDirty: false,   // the person has typed in the legacy textarea since the last save/load
  busy: new Set(),       // ids of buttons whose request is in flight
  validateSeq: 0,
  legacyOpened: false,   // details sections are opened automatically once, then left to the person
  optionsOpened: false,
};

// The server describes each status: its label, its tone and the actions allowed now (with the
// button's words and why not). The page only shows what it is given.
const status = () => (S.wa && S.wa.status) || { state: 'unlinked', label: '', tone: 'idle', sentence: '', action: null, actions: [] };

const offer = (st, action) => (st.actions || []).find((a) => a.action === action);

/** Not linked (or the link is dead): the one case where the server offers a QR code. */
function needsLink(st = status()) {
  const qr = offer(st, 'qr');
  return qr ? qr.allowed : true;
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers

function show(el, visible) {
  if (typeof el === 'string') el = $(el);
  if (el) el.hidden = !visible;
}

function setText(el, text) {
  if (typeof el === 'string') el = $(el);
  if (el && el.textContent !== text) el.textContent = text;
}

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'for') el.setAttribute(k, v === true ? '' : String(v));
    else el[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function digits(s) {
  return String(s || '').replace(/\D/g, '');
}

/** Run `fn` with button `id` marked busy (disabled, aria-busy) until it settles. */
async function withBusy(id, fn) {
  if (S.busy.has(id)) return undefined;
  S.busy.add(id);
  renderBusy();
  try {
    return await fn();
  } finally {
    S.busy.delete(id);
    renderBusy();
    renderStatus();
  }
}

function renderBusy() {
  for (const el of document.querySelectorAll('button[id]')) {
    const busy = S.busy.has(el.id);
    if (busy) {
      el.setAttribute('aria-busy', 'true');
      if (!el.disabled) { el.disabled = true; el.dataset.busyDisabled = '1'; }
    } else {
      el.removeAttribute('aria-busy');
      if (el.dataset.busyDisabled) { el.disabled = false; delete el.dataset.busyDisabled; }
    }
  }
}

function flash(id, text = 'Saved') {
  const el = $(id);
  if (!el) return;
  el.textContent = text;
  el.classList.remove('fade');
  void el.offsetWidth;
  el.classList.add('fade');
  clearTimeout(el._t);
  el._t = setTimeout(() => { el.textContent = ''; el.classList.remove('fade'); }, 2600);
}

let noticeFromRefresh = false;

function showNotice(message, { fromRefresh = false } = {}) {
  noticeFromRefresh = fromRefresh;
  const n = $('notice');
  n.querySelector('.notice-text').textContent = message;
  n.hidden = false;
}

function hideNotice() {
  $('notice').hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Confirmation dialog

const dialog = $('confirm');

function confirmAction({ title, text, ok }) {
  if (typeof dialog.showModal !== 'function') {
    return Promise.resolve(window.confirm(`${title}\n\n${text}`));
  }
  const opener = document.activeElement;
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      if (opener && typeof opener.focus === 'function' && document.contains(opener) && !opener.disabled && !opener.closest('[hidden]')) {
        opener.focus();
      }
    }, { once: true });
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

// Click on the backdrop cancels.
dialog.addEventListener('click', (e) => {
  if (e.target === dialog) dialog.close('cancel');
});

// ---------------------------------------------------------------------------------------------
// Rendering: page shell

function render() {
  const wa = S.wa;
  show('loading', !wa);
  if (!wa) return;
  show('load-error', false);
  show('empty-state', !wa.enabled);
  show('channel', Boolean(wa.enabled));
  show('sandbox-badge', Boolean(wa.status && wa.status.sandbox));
  document.title = wa.enabled ? `${status().label || status().state} · WhatsApp · Cortask` : 'WhatsApp · Cortask';
  if (!wa.enabled) return;
  renderStatus();
  renderQr();
  renderAccess();
  renderContacts();
  renderLegacy();
  renderOptions();
  renderActivity();
}

// ---------------------------------------------------------------------------------------------
// Rendering: connection card

/** Troubles beside the connection's state (a failing database, replies that could not be sent),
 *  as the server words them. */
function renderStatusNotes(st) {
  const ul = $('status-notes');
  const notes = st.notes || [];
  ul.hidden = notes.length === 0;
  const key = JSON.stringify(notes);
  if (ul.dataset.key === key) return;
  ul.dataset.key = key;
  ul.replaceChildren(...notes.map((n) => h('li', { text: n.sentence, 'data-kind': n.kind })));
}

function renderStatus() {
  if (!S.wa) return;
  const st = status();
  // The state in words (the code stays in data-state for scripts and styles).
  setText('status-state', st.label || st.state);
  $('status-state').dataset.state = st.state;
  $('status-state').dataset.tone = st.tone || 'idle';
  $('status-state').title = `Connection state: ${st.label || st.state}`;
  $('status-dot').dataset.tone = st.tone || 'idle';
  setText('status-sentence', st.sentence || '');
  setText('status-action', st.action || '');
  // While a code is on screen, the QR panel's own instructions are the action.
  show('status-action', Boolean(st.action) && qrMode() !== 'qr');
  show('sandbox-badge', Boolean(st.sandbox));

  // An account left in the snapshot after the link is gone is not "linked" any more.
  const acct = needsLink() ? null : S.wa.account;
  show('fact-account', Boolean(acct));
  if (acct) {
    // The server writes our own number for people (+1 555-000-1111); digits are the fallback.
    const num = S.wa.account_number || digits(String(acct.id || '').split(/[:@]/)[0]);
    const el = $('status-account');
    const key = JSON.stringify([acct.name, acct.id]);
    if (el.dataset.key !== key) {
      el.dataset.key = key;
      el.replaceChildren(...[acct.name, num ? (num.startsWith('+') ? num : `+${num}`) : acct.id].filter(Boolean)
        .flatMap((t, i) => [i ? h('br') : null, h('span', { class: 'nowrap', text: t })]).filter(Boolean));
    }
  }
  renderRetry();
  renderLastTimes();
  renderPhoneLink();
  renderStorage();
  renderStatusNotes(st);

  // Buttons: as the server offers them
  for (const id of ['start', 'pause', 'stop', 'logout']) {
    const o = offer(st, id) || { allowed: false, why_not: '' };
    const b = $(id);
    b.disabled = !o.allowed || S.busy.has(id);
    if (!S.busy.has(id)) delete b.dataset.busyDisabled;
    b.title = o.allowed ? '' : (o.why_not || '');
    if (o.label && b.lastChild && b.lastChild.textContent !== o.label) b.lastChild.textContent = o.label;
  }
  renderBusy();
  if (!$('server-gone').hidden) setOffline(true); // a late render must not bring stale buttons back
}

// The demo's simulated phone, when the server names one (sandbox mode only).
function renderPhoneLink() {
  const url = S.wa && S.wa.phone_url;
  const a = $('phone-link');
  show('phone-link', Boolean(url));
  if (url && a.getAttribute('href') !== url) a.setAttribute('href', url);
}

function renderRetry() {
  const st = status();
  const el = $('status-retry');
  const show_ = st.state === 'reconnecting' || (st.attempt > 0 && ['connecting', 'gave_up'].includes(st.state));
  el.hidden = !show_;
  if (!show_) return;
  let text = st.max_attempts ? `Attempt ${st.attempt} of ${st.max_attempts}` : `Attempt ${st.attempt}`;
  if (st.state !== 'gave_up' && st.next_retry_at) {
    const left = st.next_retry_at - nowSec();
    text += left > 0.5
      ? ` · next try at ${clockTime(st.next_retry_at)} (in ${secondsText(left)})`
      : ' · trying now…';
  }
  setText(el, text);
}

function renderLastTimes() {
  const st = status();
  for (const [id, epoch] of [['status-last-inbound', st.last_inbound_at], ['status-last-outbound', st.last_outbound_at]]) {
    const el = $(id);
    if (!epoch) { setText(el, 'None yet'); delete el.dataset.epoch; continue; }
    if (el.dataset.epoch !== String(epoch)) {
      el.replaceChildren(timeEl(epoch, { withRelative: true }));
      el.dataset.epoch = String(epoch);
    }
  }
}

// The database's size and its oldest record (the server's sentence says the rest, on hover).
function renderStorage() {
  const sto = status().storage;
  show('fact-storage', Boolean(sto));
  if (!sto) return;
  const el = $('status-storage');
  el.title = sto.sentence;
  const size = sto.database_bytes < 1024 * 1024
    ? `${Math.max(1, Math.round(sto.database_bytes / 1024))} KB`
    : `${(sto.database_bytes / (1024 * 1024)).toFixed(1)} MB`;
  const key = `${size} ${sto.oldest_record_at}`;
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  const since = sto.oldest_record_at ? [h('br'), h('span', { class: 'nowrap', text: 'since ' }), timeEl(sto.oldest_record_at)] : [];
  el.replaceChildren(h('span', { class: 'nowrap', text: size }), ...since);
}

// ---------------------------------------------------------------------------------------------
// Rendering: QR panel

const QR_LIFETIME = 60;

function qrRemaining() {
  const qr = S.wa && S.wa.qr;
  if (!qr || !qr.expires_at) return 0;
  return qr.expires_at - nowSec();
}

function qrMode() {
  const st = status().state;
  const qr = S.wa.qr;
  if (S.linkFlow && st === 'connecting') return 'scanned';
  if (!needsLink()) return 'linked';
  if (qr) {
    return (S.qrDead || qrRemaining() <= 0) ? 'expired' : 'qr';
  }
  if (st === 'linking') return 'waiting';
  return 'intro';
}

let lastQrMode = null;

function renderQr() {
  if (!S.wa) return;
  const mode = qrMode();
  const qr = S.wa.qr;
  lastQrMode = mode;
  $('qr-panel').dataset.mode = mode;

  show('qr-intro', mode === 'intro');
  show('qr-waiting', mode === 'waiting');
  show('qr-figure', mode === 'qr');
  show('qr-expired', mode === 'expired');
  show('qr-scanned', mode === 'scanned');
  show('qr-linked', mode === 'linked');
  show('qr-instructions', ['intro', 'qr', 'waiting', 'expired'].includes(mode));
  setText('qr-title', mode === 'linked' ? 'Your phone' : 'Link your phone');

  const img = $('qr-image');
  if (mode === 'qr' && qr) {
    if (img.getAttribute('src') !== qr.png) img.src = qr.png;
    img.dataset.qr = qr.qr || '';
    img.dataset.expiresAt = String(qr.expires_at || '');
  }

  const gen = $('generate-qr');
  gen.hidden = !['intro', 'expired', 'waiting'].includes(mode);
  setText(gen, mode === 'expired' ? 'Generate a new code' : 'Generate QR code');
  show('qr-copy', mode === 'qr' && Boolean(qr && qr.qr));

  if (mode === 'linked') {
    const st = status();
    const acct = S.wa.account;
    const whose = acct && acct.name ? `${acct.name}'s WhatsApp` : 'Your WhatsApp account';
    setText('qr-linked-text', st.state === 'open'
      ? `${whose} is linked and running.`
      : `${whose} is still linked to this workspace; no new scan is needed.`);
  }
  if (mode !== 'intro' && mode !== 'expired') setText('qr-error', '');
  renderCountdown();
  renderCode();
}

function renderCountdown() {
  if (lastQrMode !== 'qr') return;
  const left = qrRemaining();
  const el = $('qr-countdown');
  const secs = Math.max(0, Math.min(QR_LIFETIME, Math.ceil(left)));  // never "61 s" for a 60 s code
  if (el.dataset.seconds !== String(secs)) {
    el.dataset.seconds = String(secs);
    el.textContent = `This code expires in ${secondsText(secs)}`;
    el.classList.toggle('urgent', secs <= 10);
  }
  const frac = Math.max(0, Math.min(1, left / QR_LIFETIME));
  $('qr-countdown-fill').style.transform = `scaleX(${frac})`;
  $('qr-countdown-fill').classList.toggle('urgent', secs <= 10);
}

function setQr(qr) {
  S.wa.qr = qr;
  S.qrDead = false;
  S.linkFlow = true;
}

// ---------------------------------------------------------------------------------------------
// Rendering: link with phone number instead (a code typed on the phone, no camera)

function codeRemaining() {
  const code = S.wa && S.wa.code;
  return code && code.expires_at ? code.expires_at - nowSec() : 0;
}

function renderCode() {
  if (!S.wa) return;
  const linking = needsLink() && !(S.linkFlow && status().state === 'connecting');
  const on = Boolean(S.codeMode) && linking;
  const code = S.wa.code;
  const live = on && Boolean(code) && status().state === 'linking' && codeRemaining() > 0;
  show('code-link', linking);
  show('code-toggle', linking && !on);
  show('code-form', on && !live);
  show('code-shown', live);
  show('code-back', on);
  if (on) {
    // The QR and its instructions make way for the code.
    for (const id of ['qr-intro', 'qr-waiting', 'qr-figure', 'qr-expired', 'qr-instructions', 'generate-qr', 'qr-copy']) show(id, false);
  }
  setText('code-value', live ? code.grouped : '');
  const st = status();
  if (on && S.codeAsked && !live && st.state === 'unlinked') {
    // The session ended: a wrong code or no time left; the server's sentence says what to do.
    setText('code-error', [st.sentence, st.action].filter(Boolean).join(' '));
  }
  renderCodeCountdown();
}

function renderCodeCountdown() {
  const el = $('code-countdown');
  if (!el || $('code-shown').hidden) return;
  const left = codeRemaining();
  const secs = Math.max(0, Math.ceil(left));
  if (el.dataset.seconds !== String(secs)) {
    el.dataset.seconds = String(secs);
    el.textContent = `This code expires in ${secondsText(secs)}`;
    el.classList.toggle('urgent', secs <= 10);
  }
  $('code-countdown-fill').style.transform = `scaleX(${Math.max(0, Math.min(1, left / QR_LIFETIME))})`;
}

async function requestCode() {
  setText('code-error', '');
  const phone = $('code-phone').value.trim();
  if (!phone) { setText('code-error', 'Type the number of your phone, with its country code, e.g. +49 151 23456789.'); return; }
  // The code shown before (refused, or being replaced) is spent: forget it now, or the new linking
  // session's status would show it as live until the new code arrives.
  S.wa.code = null;
  render();
  try {
    const code = await api('POST', '/api/whatsapp/code', { phone });
    S.wa.code = code;
    S.codeAsked = true;
    S.linkFlow = true;
  } catch (err) {
    setText('code-error', err.message);
  }
  render();
}

$('code-toggle').addEventListener('click', () => {
  S.codeMode = true;
  setText('code-error', '');
  render();
  $('code-phone').focus();
});
$('code-form').addEventListener('submit', (e) => { e.preventDefault(); withBusy('code-request', requestCode); });
$('code-new').addEventListener('click', () => withBusy('code-new', requestCode));
$('code-back').addEventListener('click', () => withBusy('code-back', async () => {
  S.codeMode = false;
  S.codeAsked = false;
  S.wa.code = null;
  setText('code-error', '');
  if (status().state === 'linking') {
    try { const qr = await api('POST', '/api/whatsapp/qr'); if (qr && qr.png) setQr(qr); } catch (err) { setText('qr-error', err.message); }
  }
  render();
}));

// ---------------------------------------------------------------------------------------------
// Rendering: access, contacts, legacy list, options

function renderAccess() {
  const access = S.wa.access || { sentence: '', problems: [] };
  setText('access-sentence', access.sentence || '');
  const ul = $('access-problems');
  const problems = access.problems || [];
  ul.hidden = problems.length === 0;
  const key = JSON.stringify(problems);
  if (ul.dataset.key !== key) {
    ul.dataset.key = key;
    ul.replaceChildren(...problems.map((p) => h('li', { text: p })));
  }
}

function contactSig(c, editing) {
  return editing ? 'edit' : JSON.stringify([c.phone, c.name, c.permission, c.written, c.whatsapp, c.note]);
}

// The number as the person wrote it, its E.164 form when that reads differently, and what
// WhatsApp said about it (the server words the note).
function contactPhoneCell(c) {
  const written = c.written || c.phone;
  const td = h('td', { class: 'phone', 'data-testid': 'contact-row-phone' }, h('span', { 'data-testid': 'contact-row-written', text: written }));
  if (written !== c.phone) {
    td.append(h('span', { class: 'phone-e164 muted', 'data-testid': 'contact-row-e164', text: c.phone }));
  }
  if (c.note) {
    const tone = c.whatsapp === 'not_on_whatsapp' ? 'warn' : 'info';
    td.append(h('span', { class: `contact-note contact-note-${tone}`, 'data-testid': 'contact-row-note', text: c.note }));
  }
  return td;
}

function permSelect(value, attrs) {
  const sel = h('select', attrs);
  for (const p of ['read', 'write', 'admin']) sel.append(h('option', { value: p, text: p, selected: p === value }));
  return sel;
}

function contactRow(c) {
  const editing = S.editing && S.editing.phone === c.phone ? S.editing : null;
  const tr = h('tr', { 'data-phone': c.phone, 'data-testid': 'contact-row' });
  tr.dataset.sig = contactSig(c, editing);
  const who = c.name ? `${c.name} (${c.phone})` : c.phone;
  tr.append(contactPhoneCell(c));
  if (!editing) {
    tr.append(
      h('td', { 'data-testid': 'contact-row-name' }, c.name ? c.name : h('span', { class: 'muted', text: 'No name' })),
      h('td', {}, h('span', { class: `perm perm-${c.permission}`, 'data-testid': 'contact-row-permission', text: c.permission })),
      h('td', { class: 'row-actions' },
        h('button', { type: 'button', class: 'button small subtle', 'data-action': 'edit', 'data-testid': 'contact-edit', 'aria-label': `Edit ${who}`, text: 'Edit' }),
        h('button', { type: 'button', class: 'button small subtle danger-text', 'data-action': 'remove', 'data-testid': 'contact-remove', 'aria-label': `Remove ${who}`, text: 'Remove' })),
    );
  } else {
    const uid = digits(c.phone);
    const err = h('p', { class: 'field-error', id: `edit-error-${uid}`, 'data-testid': 'contact-edit-error', role: 'alert', text: editing.error || '' });
    tr.dataset.editing = 'true';
    tr.append(
      h('td', {},
        h('label', { class: 'visually-hidden', for: `edit-name-${uid}`, text: `Name for ${c.phone}` }),
        h('input', { type: 'text', id: `edit-name-${uid}`, value: editing.name, 'data-testid': 'contact-edit-name', 'data-field': 'name', autocomplete: 'off', placeholder: 'Name (optional)', 'aria-describedby': `edit-error-${uid}` }),
        err),
      h('td', {},
        h('label', { class: 'visually-hidden', for: `edit-perm-${uid}`, text: `Permission for ${c.phone}` }),
        permSelect(editing.permission, { id: `edit-perm-${uid}`, 'data-testid': 'contact-edit-permission', 'data-field': 'permission' })),
      h('td', { class: 'row-actions' },
        h('button', { type: 'button', class: 'button small primary', 'data-action': 'save', 'data-testid': 'contact-save', disabled: Boolean(editing.busy), 'aria-busy': editing.busy ? 'true' : null, text: 'Save' }),
        h('button', { type: 'button', class: 'button small subtle', 'data-action': 'cancel', 'data-testid': 'contact-cancel', text: 'Cancel' })),
    );
  }
  return tr;
}

function renderContacts() {
  const contacts = S.wa.contacts || [];
  if (S.editing && !contacts.some((c) => c.phone === S.editing.phone)) S.editing = null;
  const body = $('contacts-body');
  const existing = new Map([...body.children].map((tr) => [tr.dataset.phone, tr]));
  const wanted = contacts.map((c) => {
    const tr = existing.get(c.phone);
    const editing = S.editing && S.editing.phone === c.phone;
    if (tr && tr.dataset.sig === contactSig(c, editing)) return tr;
    return contactRow(c);
  });
  // Reconcile without moving rows that are already in place (moving a focused node blurs it).
  wanted.forEach((tr, i) => {
    const at = body.children[i];
    if (at !== tr) {
      if (at && existing.get(at.dataset.phone) && tr.dataset.phone === at.dataset.phone) at.replaceWith(tr);
      else body.insertBefore(tr, at || null);
    }
  });
  while (body.children.length > wanted.length) body.lastElementChild.remove();
  show('contacts-empty', contacts.length === 0);
  $('contacts-table').classList.toggle('is-empty', contacts.length === 0);
}

function renderLegacy() {
  const list = S.wa.allowed_users || [];
  const ta = $('allowed-users');
  if (!S.allowedDirty && document.activeElement !== ta) {
    const text = list.join('\n');
    if (ta.value !== text) ta.value = text;
  }
  const hasContacts = (S.wa.contacts || []).length > 0;
  show('legacy-inactive', hasContacts && list.length > 0);
  setText('legacy-state', list.length === 0 ? 'empty' : hasContacts ? `${list.length} · not in use` : `${list.length} · in use`);
  if (!S.legacyOpened && !hasContacts && list.length > 0) { S.legacyOpened = true; $('legacy').open = true; }
}

function renderOptions() {
  const s = S.wa.settings || {};
  $('setting-answer-groups').checked = Boolean(s.answer_groups);
  $('setting-open-to-everyone').checked = Boolean(s.open_to_everyone);
  $('setting-self-chat').checked = Boolean(s.self_chat);
  $('setting-approvals').checked = Boolean(s.approvals);
  $('setting-group-mode').value = s.group_mode === 'always' ? 'always' : 'mention';
  const groups = $('setting-groups-allowed');
  if (document.activeElement !== groups && !groups.dataset.dirty) groups.value = (s.groups_allowed || []).join('\n');
  $('setting-answers-paused').checked = Boolean(s.answers_paused);
  const prefix = $('setting-self-chat-prefix');
  if (document.activeElement !== prefix && !prefix.dataset.dirty) prefix.value = s.self_chat_prefix || '';
  const region = $('setting-default-region');
  if (document.activeElement !== region && !region.dataset.dirty) region.value = s.default_region || '';
  if (!S.optionsOpened && s.open_to_everyone) { S.optionsOpened = true; $('options').open = true; }
  $('contact-phone').placeholder = s.default_region ? `+49 151 23456789 or a ${s.default_region} number` : '+49 151 23456789';
}

// ---------------------------------------------------------------------------------------------
// Rendering: activity, grouped per chat

// Each entry comes described by the server: its label, its sentence, its tone, and whether it
// is routine noise (quiet).

function describeChat(jid) {
  // Entries of the service itself (a failing database, a restarted sidecar) belong to no chat.
  if (!jid || jid === '?') return { title: 'Cortask', sub: 'the service itself, not a chat' };
  const s = String(jid || '');
  const [user, server = ''] = s.split('@');
  const num = digits(user.split(':')[0]);
  const contact = (S.wa.contacts || []).find((c) => digits(c.phone) === num || digits(c.whatsapp_address || '') === num);
  if (s === 'status@broadcast') return { title: 'Status updates', sub: s };
  if (server === 'g.us') return { title: 'Group chat', sub: user };
  if (server === 'lid') return { title: contact ? contact.name || contact.phone : 'Hidden number', sub: `LID ${user}` };
  if (server === 's.whatsapp.net' || server === 'c.us') {
    if (contact) return { title: contact.name || contact.phone, sub: contact.name ? contact.phone : '' };
    return { title: `+${num}`, sub: 'not a trusted contact' };
  }
  return { title: s || 'Unknown chat', sub: '' };
}

const ACTIVITY_PER_CHAT = 8;
const ACTIVITY_CHATS = 30;

function renderActivity() {
  const list = $('activity-list');
  const groups = new Map();
  for (const e of S.activity) {
    const key = e.chat || '?';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(e);
  }
  const ordered = [...groups.entries()]
    .map(([chat, entries]) => ({ chat, entries, last: entries[entries.length - 1].at || 0 }))
    .sort((a, b) => b.last - a.last)
    .slice(0, ACTIVITY_CHATS);

  const nodes = ordered.map(({ chat, entries, last }) => {
    // The server names a chat it knows for certain (the owner's own); the rest is named here.
    const named = entries.find((e) => e.chat_title);
    const who = named ? { title: named.chat_title, sub: named.chat_sub || '' } : describeChat(chat);
    const recent = entries.slice(-ACTIVITY_PER_CHAT).reverse();
    const older = entries.length - recent.length;
    return h('article', { class: 'activity-chat', 'data-chat': chat, 'data-testid': 'activity-chat' },
      h('header', {},
        h('span', { class: 'avatar', 'aria-hidden': 'true', text: /^\p{L}/u.test(who.title) ? who.title[0].toUpperCase() : '#' }),
        h('div', { class: 'chat-name' }, h('strong', { text: who.title }), who.sub ? h('span', { class: 'muted small', text: who.sub }) : null),
        h('span', { class: 'muted small chat-time' }, timeEl(last, { withRelative: true }))),
      h('ol', { class: 'entries' },
        recent.map((e) => h('li', {
          'data-testid': 'activity-entry', 'data-kind': e.kind, 'data-message-id': e.message_id || null,
          'data-reason': e.reason || null, 'data-verdict': e.verdict || null,
          'data-tone': e.tone || null,
          class: e.quiet ? 'entry quiet' : 'entry',
          title: [e.verdict, e.reason].filter(Boolean).join(' · ') || null,
        },
        timeEl(e.at),
        h('span', { class: `kind kind-${e.kind}`, text: e.label || e.kind }),
        h('span', { class: 'entry-detail', text: e.sentence || '' })))),
      older > 0 ? h('p', { class: 'muted small older', text: `and ${older} earlier` }) : null);
  });
  list.replaceChildren(...nodes);
  show('activity-empty', nodes.length === 0);
}

function activityKey(e) {
  return `${e.at}|${e.kind}|${e.chat}|${e.message_id || ''}`;
}

// ---------------------------------------------------------------------------------------------
// Ticker: countdowns and relative times

function tick() {
  if (!S.wa || !S.wa.enabled) return;
  if (lastQrMode === 'qr' && qrRemaining() <= 0) renderQr();
  else renderCountdown();
  renderCodeCountdown();
  renderRetry();
}

function tickSlow() {
  for (const t of document.querySelectorAll('time[data-relative]')) {
    const epoch = Number(t.dataset.epoch);
    const text = `${clockTime(epoch)} · ${relative(epoch)}`;
    if (t.textContent !== text) t.textContent = text;
  }
}

setInterval(tick, 250);
setInterval(tickSlow, 15000);

// ---------------------------------------------------------------------------------------------
// Loading and refreshing

async function loadAll() {
  // Live entries that arrive while the snapshot is on its way may be missing from it.
  S.loads += 1;
  let wa, activity, arrived;
  try {
    [wa, activity] = await Promise.all([
      api('GET', '/api/whatsapp'),
      api('GET', '/api/activity').catch(() => null),
    ]);
  } finally {
    arrived = S.arrivedWhileLoading;
    S.loads -= 1;
    if (S.loads === 0) S.arrivedWhileLoading = [];
  }
  const prev = S.wa;
  if (!prev && wa.qr && wa.status && wa.status.state === 'linking') S.linkFlow = true;
  // Reopened while a code is waiting to be typed: show the code, not the QR.
  if (!prev && wa.code && wa.status && wa.status.state === 'linking') {
    S.codeMode = true;
    S.codeAsked = true;
    if (!$('code-phone').value) $('code-phone').value = wa.code.phone; // for "Get a new code" later
  }
  // Keep a code we are showing when the snapshot has none, so that "expired" stays on screen
  // instead of the code silently vanishing.
  if (!wa.qr && prev && prev.qr && S.linkFlow && wa.enabled && wa.status && needsLink(wa.status)) {
    wa.qr = prev.qr;
    if (wa.status.state !== 'linking') S.qrDead = true;
  }
  S.wa = wa;
  if (Array.isArray(activity)) {
    const seen = new Set(activity.map(activityKey));
    const live = arrived.filter((e) => !seen.has(activityKey(e)));
    S.activity = [...activity, ...live].sort((a, b) => (a.at || 0) - (b.at || 0)).slice(-500);
  }
  render();
  loadApprovals();
}

// ---------------------------------------------------------------------------------------------
// Strangers waiting for approval (issue #14): the buttons do what /approve and /reject do.

async function loadApprovals() {
  try {
    renderApprovals(await api('GET', '/api/whatsapp/approvals'));
  } catch (err) {
    setText('approvals-error', err.message);
  }
}

function renderApprovals(list) {
  const items = Array.isArray(list) ? list : [];
  show('approvals-card', items.length > 0);
  const ul = $('approvals-list');
  ul.replaceChildren(...items.map((a) => {
    const li = document.createElement('li');
    li.dataset.code = a.code;
    li.dataset.testid = 'approval';
    const who = document.createElement('strong');
    who.textContent = a.name ? `${a.name} (${a.phone})` : a.phone;
    const line = document.createElement('span');
    line.className = 'muted';
    line.textContent = ` “${a.first_line}” · code ${a.code}`;
    const buttons = [['write', 'Approve'], ['read', 'Approve read-only']].map(([permission, label]) => {
      const b = document.createElement('button');
      b.className = 'button';
      b.textContent = label;
      b.dataset.testid = permission === 'write' ? 'approval-approve' : 'approval-approve-read';
      b.addEventListener('click', () => decide(a.code, 'approve', { permission }));
      return b;
    });
    const reject = document.createElement('button');
    reject.className = 'button danger';
    reject.textContent = 'Reject';
    reject.dataset.testid = 'approval-reject';
    reject.addEventListener('click', () => decide(a.code, 'reject'));
    li.append(who, line, ' ', ...buttons, reject);
    return li;
  }));
}

async function decide(code, verb, body) {
  setText('approvals-error', '');
  try {
    await api('POST', `/api/whatsapp/approvals/${encodeURIComponent(code)}/${verb}`, body || {});
  } catch (err) {
    setText('approvals-error', err.message);
  }
  await loadApprovals();
}

let refreshTimer = null;
let refreshing = null;

/** Re-read the snapshot soon (coalesces bursts of events into one request). */
function scheduleRefresh(delay = 250) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    if (refreshing) { scheduleRefresh(delay); return; }
    refreshing = loadAll()
      .then(() => { if (noticeFromRefresh) hideNotice(); })
      .catch((err) => showNotice(`The page could not refresh: ${err.message}`, { fromRefresh: true }))
      .finally(() => { refreshing = null; });
  }, delay);
}

async function firstLoad() {
  show('load-error', false);
  show('loading', true);
  try {
    await loadAll();
  } catch (err) {
    show('loading', false);
    show('load-error', true);
    $('load-error').querySelector('.load-error-title').textContent = err.status === 401 || err.status === 403
      ? 'This page needs the gateway\'s token'
      : 'The page could not load the channel';
    $('load-error').querySelector('.load-error-text').textContent = err.message;
    return;
  }
}

// ---------------------------------------------------------------------------------------------
// Live events (SSE), reconnecting when the stream drops

let source = null;
let sourceRetry = 0;
let sourceTimer = null;
let sourceWatchdog = null;

// While the gateway does not answer, say so plainly and switch the buttons off (they could not work);
// they come back as the status describes them once the stream is live again.
function setOffline(offline) {
  show('server-gone', offline);
  for (const b of document.querySelectorAll('main button, main input, main select')) {
    if (b.id === 'retry-load') continue;
    if (offline && !b.disabled) { b.disabled = true; b.dataset.offline = '1'; }
    if (!offline && b.dataset.offline) { b.disabled = false; delete b.dataset.offline; }
  }
  if (offline) {
    // What the card last heard may no longer be true: do not show it as the state.
    setText('status-state', 'Not answering');
    $('status-state').dataset.tone = 'error';
  } else if (S.wa) {
    renderStatus();
  }
}

function setLive(state) {
  setOffline(state === 'down');
  const el = $('live-indicator');
  el.dataset.live = state;
  setText(el.querySelector('.live-text'), { live: 'Live', connecting: 'Connecting…', down: 'Reconnecting…' }[state]);
  el.title = state === 'live'
    ? 'Receiving live updates from the gateway.'
    : 'The live connection to the gateway dropped; retrying. The page may be out of date until it is back.';
}

function parse(e) {
  try { return JSON.parse(e.data); } catch { return null; }
}

function connectEvents() {
  clearTimeout(sourceTimer);
  clearTimeout(sourceWatchdog);
  if (source) source.close();
  const es = new EventSource('/api/events');
  source = es;
  setLive(sourceRetry === 0 ? 'connecting' : 'down');
  // If the browser's own retry does not get through in a while, start over ourselves.
  sourceWatchdog = setTimeout(() => { if (es.readyState !== EventSource.OPEN) reconnectLater(); }, 15000);

  es.addEventListener('open', () => {
    if (source !== es) return;
    clearTimeout(sourceWatchdog);
    sourceRetry = 0;
    setLive('live');
    // Anything may have happened while we were not listening: read the snapshot again.
    scheduleRefresh(0);
  });
  es.addEventListener('error', () => {
    if (source !== es) return;
    setLive('down');
    // CLOSED means the browser gave up (e.g. an HTTP error); CONNECTING means it retries itself.
    if (es.readyState === EventSource.CLOSED) reconnectLater();
  });
  es.addEventListener('status', (e) => { const d = parse(e); if (d) onStatus(d); });
  es.addEventListener('qr', (e) => { const d = parse(e); if (d) onQr(d); });
  es.addEventListener('code', (e) => { const d = parse(e); if (d && S.wa) { S.wa.code = d; render(); } });
  es.addEventListener('activity', (e) => { const d = parse(e); if (d) onActivity(d); });
  es.addEventListener('contacts', (e) => { const d = parse(e); if (Array.isArray(d)) onContacts(d); });
  es.addEventListener('approvals', (e) => { const d = parse(e); if (Array.isArray(d)) renderApprovals(d); });
}

function reconnectLater() {
  clearTimeout(sourceTimer);
  clearTimeout(sourceWatchdog);
  if (source) { source.close(); source = null; }
  setLive('down');
  const delay = Math.min(30000, 1000 * 2 ** sourceRetry) * (0.75 + Math.random() * 0.5);
  sourceRetry += 1;
  sourceTimer = setTimeout(connectEvents, delay);
}

window.addEventListener('online', () => { if (!source || source.readyState !== EventSource.OPEN) { sourceRetry = 0; connectEvents(); } });
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible') return;
  if (!source || source.readyState === EventSource.CLOSED) { sourceRetry = 0; connectEvents(); }
  else if (S.wa) scheduleRefresh(0);
});

function onStatus(st) {
  if (!S.wa) return;
  const prev = status().state;
  S.wa.status = st;
  if (st.state !== prev) {
    if (st.state === 'unlinked') {
      if (prev === 'linking' && S.wa.qr) S.qrDead = true; // the linking session ended: the code is dead
    } else if (st.state !== 'linking') {
      S.wa.qr = null;
      // The link is gone: do not keep showing the old account until the snapshot arrives.
      if (st.needs_relink || ['logged_out', 'stopped'].includes(st.state)) S.wa.account = null;
      S.qrDead = false;
      if (st.state !== 'connecting') S.linkFlow = false; // open, paused, logged out, …
    }
    // The account, access summary and QR come with the snapshot, not with the status event.
    scheduleRefresh();
  }
  render();
}

function onQr(qr) {
  if (!S.wa) return;
  setQr(qr);
  renderQr();
}

function onActivity(entry) {
  if (!S.wa) return;
  const key = activityKey(entry);
  if (S.activity.some((e) => activityKey(e) === key)) return;
  if (S.loads > 0) S.arrivedWhileLoading.push(entry);
  S.activity.push(entry);
  S.activity.sort((a, b) => (a.at || 0) - (b.at || 0));
  if (S.activity.length > 500) S.activity.splice(0, S.activity.length - 500);
  if (S.wa.enabled) renderActivity();
}

function onContacts(contacts) {
  if (!S.wa) return;
  S.wa.contacts = contacts;
  if (S.wa.enabled) { renderContacts(); renderLegacy(); renderActivity(); }
  scheduleRefresh(); // the access sentence depends on the list
}

// ---------------------------------------------------------------------------------------------
// Channel actions

$('retry-load').addEventListener('click', firstLoad);
$('notice').querySelector('.notice-close').addEventListener('click', hideNotice);

$('add-channel').addEventListener('click', () => withBusy('add-channel', async () => {
  try {
    await api('POST', '/api/whatsapp');
    await loadAll();
    $('generate-qr').focus();
  } catch (err) {
    showNotice(err.message);
  }
}));

$('generate-qr').addEventListener('click', () => withBusy('generate-qr', async () => {
  setText('qr-error', '');
  try {
    const qr = await api('POST', '/api/whatsapp/qr');
    if (qr && qr.png) setQr(qr);
    render();
    if ($('generate-qr').hidden) $('qr-panel').focus({ preventScroll: true });
    $('qr-panel').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  } catch (err) {
    setText('qr-error', err.message);
  }
}));

$('qr-copy').addEventListener('click', async () => {
  const code = S.wa && S.wa.qr && S.wa.qr.qr;
  if (!code) return;
  try {
    await navigator.clipboard.writeText(code);
    const b = $('qr-copy');
    b.textContent = 'Copied';
    setTimeout(() => { b.textContent = 'Copy code'; }, 1500);
  } catch {
    setText('qr-error', 'The browser did not allow copying. Select the code from the image\'s data-qr attribute instead.');
  }
});

function statusAction(id, path, confirmText) {
  $(id).addEventListener('click', async () => {
    if (confirmText && !(await confirmAction(confirmText))) return;
    await withBusy(id, async () => {
      setText('action-error', '');
      try {
        const st = await api('POST', path);
        if (st && st.state) onStatus(st);
        else scheduleRefresh(0);
      } catch (err) {
        setText('action-error', err.message);
      }
    });
  });
}

statusAction('start', '/api/whatsapp/start');
statusAction('pause', '/api/whatsapp/pause');
statusAction('stop', '/api/whatsapp/stop', {
  title: 'Stop and unlink this device?',
  text: 'Stopping logs this device out of WhatsApp: it disappears from Linked Devices on your phone, and you will need to scan a new QR code to use the channel again. To disconnect for a while and keep the link, use Pause instead.',
  ok: 'Stop and unlink',
});
statusAction('logout', '/api/whatsapp/logout', {
  title: 'Forget the link on this computer?',
  text: 'This deletes the stored link from this computer without telling WhatsApp: your phone still lists the device under Linked Devices until you remove it there. To log the device out of WhatsApp too, use Stop and unlink instead.',
  ok: 'Forget link here',
});

$('remove-channel').addEventListener('click', async () => {
  const ok = await confirmAction({
    title: 'Remove the WhatsApp channel?',
    text: 'This logs the device out, unlinks your phone and removes the channel from this workspace. Adding it again will need a new QR scan.',
    ok: 'Remove channel',
  });
  if (!ok) return;
  await withBusy('remove-channel', async () => {
    setText('action-error', '');
    try {
      await api('DELETE', '/api/whatsapp');
      S.linkFlow = false;
      S.editing = null;
      await loadAll();
      if (!S.wa.enabled) $('add-channel').focus();
    } catch (err) {
      setText('action-error', err.message);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Trusted contacts: add, with inline validation of the phone number

const phoneInput = $('contact-phone');
let validateTimer = null;

function setFieldError(field, message) {
  const input = $(`contact-${field}`);
  setText(`contact-${field}-error`, message || '');
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

async function validatePhone() {
  clearTimeout(validateTimer);
  const raw = phoneInput.value.trim();
  const seq = ++S.validateSeq;
  if (!raw) {
    setFieldError('phone', '');
    setText('contact-phone-hint', '');
    return null;
  }
  let res;
  try {
    res = await api('POST', '/api/whatsapp/validate-phone', { phone: raw });
  } catch {
    return null; // inline checking is best effort; adding the contact reports errors for real
  }
  if (seq !== S.validateSeq || phoneInput.value.trim() !== raw) return null;
  if (res && res.ok) {
    const dup = (S.wa.contacts || []).find((c) => c.phone === res.e164);
    if (dup) {
      setFieldError('phone', `${res.e164} is already a trusted contact${dup.name ? ` (${dup.name})` : ''}.`);
      setText('contact-phone-hint', '');
    } else {
      setFieldError('phone', '');
      setText('contact-phone-hint', res.e164 !== raw ? `Will be saved as ${res.e164}` : '✓ Valid number');
    }
  } else {
    setFieldError('phone', (res && res.error) || 'This does not look like a phone number.');
    setText('contact-phone-hint', '');
  }
  return res;
}

phoneInput.addEventListener('input', () => {
  // Keep an error visible while typing only if it is being fixed; recheck shortly after typing stops.
  setText('contact-phone-hint', '');
  clearTimeout(validateTimer);
  validateTimer = setTimeout(validatePhone, 450);
});
phoneInput.addEventListener('blur', () => { if (phoneInput.value.trim()) validatePhone(); });
$('contact-name').addEventListener('input', () => setFieldError('name', ''));
$('contact-permission').addEventListener('change', () => setFieldError('permission', ''));

/** Guess which field an API error sentence is about (the error body has no field name). */
function errorField(message) {
  const m = message.toLowerCase();
  if (/\bname\b/.test(m) && !/number|phone/.test(m)) return 'name';
  if (/permission/.test(m)) return 'permission';
  return 'phone';
}

$('contact-form').addEventListener('submit', (e) => {
  e.preventDefault();
  withBusy('contact-add', async () => {
    const phone = phoneInput.value.trim();
    const name = $('contact-name').value.trim();
    const permission = $('contact-permission').value;
    setFieldError('phone', '');
    setFieldError('name', '');
    setFieldError('permission', '');
    if (!phone) {
      clearTimeout(validateTimer); // a pending inline check of an emptied field would wipe this error
      S.validateSeq += 1;
      setFieldError('phone', 'Enter the phone number with its country code, for example +49 151 23456789.');
      phoneInput.focus();
      return;
    }
    clearTimeout(validateTimer);
    S.validateSeq += 1; // a late inline check must not overwrite what the server says now
    try {
      const body = { phone, permission };
      if (name) body.name = name;
      const contact = await api('POST', '/api/whatsapp/contacts', body);
      if (contact && contact.phone) {
        const list = (S.wa.contacts || []).filter((c) => c.phone !== contact.phone);
        list.push(contact);
        S.wa.contacts = list;
      }
      phoneInput.value = '';
      $('contact-name').value = '';
      $('contact-permission').value = 'write';
      setFieldError('phone', '');
      const added = contact && contact.phone ? `Added ${contact.name || contact.phone}.` : 'Added.';
      setText('contact-phone-hint', added);
      setTimeout(() => { if ($('contact-phone-hint').textContent === added) setText('contact-phone-hint', ''); }, 4000);
      render();
      if (contact && contact.phone) {
        const row = $('contacts-body').querySelector(`tr[data-phone="${CSS.escape(contact.phone)}"]`);
        if (row) { row.classList.add('just-added'); setTimeout(() => row.classList.remove('just-added'), 2000); }
      }
      phoneInput.focus();
      scheduleRefresh();
    } catch (err) {
      const field = errorField(err.message);
      setFieldError(field, err.message);
      $(`contact-${field}`).focus();
    }
  });
});

// Trusted contacts: edit and remove (event delegation on the table body)

const contactsBody = $('contacts-body');

function contactByPhone(phone) {
  return (S.wa.contacts || []).find((c) => c.phone === phone);
}

function focusRow(phone, selector) {
  const row = contactsBody.querySelector(`tr[data-phone="${CSS.escape(phone)}"]`);
  const el = row && row.querySelector(selector);
  if (el) el.focus();
}

async function saveEdit() {
  const ed = S.editing;
  if (!ed || ed.busy) return;
  const original = contactByPhone(ed.phone);
  const body = {};
  const name = ed.name.trim();
  if (!original || (original.name || '') !== name) body.name = name || null;
  if (!original || original.permission !== ed.permission) body.permission = ed.permission;
  if (Object.keys(body).length === 0) { cancelEdit(); return; }
  ed.busy = true;
  ed.error = '';
  rerenderEditingRow();
  try {
    const updated = await api('PUT', `/api/whatsapp/contacts/${encodeURIComponent(ed.phone)}`, body);
    const phone = ed.phone;
    S.editing = null;
    S.wa.contacts = (S.wa.contacts || []).map((c) => (c.phone === phone ? { ...c, ...(updated && updated.phone ? updated : body) } : c));
    renderContacts();
    focusRow(phone, '[data-action="edit"]');
    scheduleRefresh();
  } catch (err) {
    if (S.editing === ed) {
      ed.busy = false;
      ed.error = err.message;
      rerenderEditingRow();
      focusRow(ed.phone, '[data-field="name"]');
    }
  }
}

function cancelEdit() {
  if (!S.editing) return;
  const phone = S.editing.phone;
  S.editing = null;
  renderContacts();
  focusRow(phone, '[data-action="edit"]');
}

function rerenderEditingRow() {
  const row = contactsBody.querySelector(`tr[data-phone="${CSS.escape(S.editing.phone)}"]`);
  const c = contactByPhone(S.editing.phone);
  if (row && c) row.replaceWith(contactRow(c));
}

contactsBody.addEventListener('click', async (e) => {
  const btn = e.target.closest('button[data-action]');
  if (!btn) return;
  const phone = btn.closest('tr').dataset.phone;
  const c = contactByPhone(phone);
  if (!c) return;
  const action = btn.dataset.action;
  if (action === 'edit') {
    S.editing = { phone, name: c.name || '', permission: c.permission, error: '', busy: false };
    renderContacts();
    focusRow(phone, '[data-field="name"]');
  } else if (action === 'cancel') {
    cancelEdit();
  } else if (action === 'save') {
    saveEdit();
  } else if (action === 'remove') {
    const who = c.name ? `${c.name} (${c.phone})` : c.phone;
    const ok = await confirmAction({
      title: `Remove ${who}?`,
      text: `${who} will no longer reach your agent; their messages will be ignored silently. You can add them again at any time.`,
      ok: 'Remove contact',
    });
    if (!ok) return;
    btn.disabled = true;
    try {
      await api('DELETE', `/api/whatsapp/contacts/${encodeURIComponent(phone)}`);
      const rows = [...contactsBody.children];
      const idx = rows.findIndex((r) => r.dataset.phone === phone);
      S.wa.contacts = (S.wa.contacts || []).filter((x) => x.phone !== phone);
      render();
      const next = contactsBody.children[Math.min(idx, contactsBody.children.length - 1)];
      (next ? next.querySelector('[data-action="edit"]') : phoneInput).focus();
      scheduleRefresh();
    } catch (err) {
      btn.disabled = false;
      showNotice(err.message);
    }
  }
});

contactsBody.addEventListener('input', (e) => {
  const field = e.target.dataset.field;
  if (!field || !S.editing) return;
  S.editing[field] = e.target.value;
});
contactsBody.addEventListener('change', (e) => {
  const field = e.target.dataset.field;
  if (!field || !S.editing) return;
  S.editing[field] = e.target.value;
});
contactsBody.addEventListener('keydown', (e) => {
  if (!S.editing || !e.target.closest('tr[data-editing]')) return;
  if (e.key === 'Enter' && e.target.tagName !== 'BUTTON') { e.preventDefault(); saveEdit(); }
  if (e.key === 'Escape') { e.preventDefault(); cancelEdit(); }
});

// ---------------------------------------------------------------------------------------------
// Legacy allowedUsers

$('allowed-users').addEventListener('input', () => {
  S.allowedDirty = true;
  setText('allowed-users-error', '');
});

$('allowed-form').addEventListener('submit', (e) => {
  e.preventDefault();
  withBusy('allowed-users-save', async () => {
    const entries = $('allowed-users').value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    setText('allowed-users-error', '');
    try {
      const res = await api('PUT', '/api/whatsapp/allowed-users', { entries });
      S.allowedDirty = false;
      if (Array.isArray(res)) S.wa.allowed_users = res;
      else if (res && Array.isArray(res.allowed_users)) S.wa.allowed_users = res.allowed_users;
      else if (res && Array.isArray(res.entries)) S.wa.allowed_users = res.entries;
      else S.wa.allowed_users = entries;
      renderLegacy();
      flash('allowed-users-saved');
      await loadAll();
    } catch (err) {
      setText('allowed-users-error', err.message);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Options (settings)

async function saveSettings(patch) {
  setText('settings-error', '');
  try {
    const res = await api('PUT', '/api/whatsapp/settings', patch);
    S.wa.settings = res && typeof res === 'object' && 'answer_groups' in res ? res : { ...S.wa.settings, ...patch };
    renderOptions();
    flash('settings-saved');
    scheduleRefresh();
    return true;
  } catch (err) {
    setText('settings-error', err.message);
    renderOptions(); // put the switches back to what the server has
    return false;
  }
}

$('setting-answer-groups').addEventListener('change', (e) => saveSettings({ answer_groups: e.target.checked }));
$('setting-group-mode').addEventListener('change', (e) => saveSettings({ group_mode: e.target.value }));
$('setting-groups-allowed').addEventListener('input', (e) => { e.target.dataset.dirty = '1'; });
$('groups-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('setting-groups-allowed');
  withBusy('groups-save', async () => {
    const ids = input.value.split(/[\s,]+/).filter(Boolean);
    if (await saveSettings({ groups_allowed: ids })) delete input.dataset.dirty;
  });
});
$('setting-approvals').addEventListener('change', (e) => saveSettings({ approvals: e.target.checked }));
$('setting-self-chat').addEventListener('change', (e) => saveSettings({ self_chat: e.target.checked }));
$('setting-answers-paused').addEventListener('change', (e) => saveSettings({ answers_paused: e.target.checked }));
$('setting-self-chat-prefix').addEventListener('input', (e) => { e.target.dataset.dirty = '1'; });
$('prefix-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('setting-self-chat-prefix');
  withBusy('prefix-save', async () => {
    if (await saveSettings({ self_chat_prefix: input.value })) delete input.dataset.dirty;
  });
});

$('setting-open-to-everyone').addEventListener('change', async (e) => {
  const box = e.target;
  if (box.checked) {
    const ok = await confirmAction({
      title: 'Open your agent to everyone?',
      text: 'Anyone who sends a message to this WhatsApp account will talk to your agent, including strangers. Trusted contacts and the allowed list no longer limit who gets in.',
      ok: 'Open to everyone',
    });
    if (!ok) { box.checked = false; return; }
  }
  saveSettings({ open_to_everyone: box.checked });
});

const regionInput = $('setting-default-region');
regionInput.addEventListener('input', () => {
  regionInput.dataset.dirty = '1';
  setText('setting-default-region-error', '');
});

$('region-form').addEventListener('submit', (e) => {
  e.preventDefault();
  withBusy('settings-save', async () => {
    const v = regionInput.value.trim().toUpperCase();
    if (v && !/^[A-Z]{2}$/.test(v)) {
      setText('setting-default-region-error', 'Use a two-letter country code such as DE, GB or US, or leave it empty.');
      regionInput.focus();
      return;
    }
    if (await saveSettings({ default_region: v || null })) delete regionInput.dataset.dirty;
  });
});

// ---------------------------------------------------------------------------------------------
// Start

firstLoad();
connectEvents();
