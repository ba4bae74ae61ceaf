// The Cortask WhatsApp sidecar: one Baileys socket, driven by Python over stdin/stdout, one JSON
// object per line. It holds no policy and no state of its own: it connects when told, reports
// what Baileys reports, sends when told, and keeps the auth state in Python's store (every key
// read and write is a request to Python, answered only once the write is durable).
// It never reconnects by itself. Logs go to stderr, never stdout.
// The protocol in words: docs/sidecar-protocol.md. Every message's fields: protocol.mjs (checked
// against Python's channels/whatsapp/wire.py by a test).
//
// Python -> sidecar, commands {"id":N,"cmd":...} (id 0: nobody waits for the answer):
//   connect {sandbox?, qrTimeoutMs?, keepAliveMs?, connectTimeoutMs?}   -> {generation}
//   send_text {jid, text, messageId?, quoted?}                         -> {id, remoteJid, timestamp}
//   presence {type, jid?}   read {keys}   ack {seq}   logout   close    -> {}
//   lid_for_phone {jid} -> {lid}   phone_for_lid {jid} -> {jid}   ping -> {connected}
//   check_numbers {numbers} -> {numbers: [{number, exists, jid, lid}]}   which account each number is
//   exit (close the socket keeping the link, spill, leave)            -> {}
//   pairing_code {phone, code?} (link by phone number, on a linking socket) -> {code}
// sidecar -> Python, answers: {"re":N,"ok":true,"result":{...}} or {"re":N,"ok":false,"error":"..."}
// sidecar -> Python, events {"event":...}:
//   hello {protocol, baileys, node}         first line, once
//   qr {qr, ms}                             a code to show for linking
//   connection {connection, isNewLogin, statusCode, reason, data, ms}
//   messages {seq, type, messages}          acknowledged by Python with ack {seq} once journaled
//   creds {registered, me}                  credentials saved (registered: a phone scanned)
//   receipts {receipts: [{id, remoteJid, status, error}]}
//   lid {mapping}                           Baileys learned a LID <-> phone number pair
//   fatal {code, message}                   a durable write failed: the sidecar exits (code 3)
//   protocol_error {message}                a line from Python it could not use (protocol.mjs)
//   code_refused {message}                  the phone refused our pairing code (typed wrong)
// sidecar -> Python, auth store requests {"req":N,"op":...}, answered {"re":N,"ok",...}:
//   keys.get {type, ids} -> {values}   keys.set {items: [[type, id, value|null]]} -> {}
//   creds.get -> {creds}   creds.set {creds} -> {}   sent.get {id, jid} -> {text}
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  makeWASocket, initAuthCreds, BufferJSON, proto, WA_CERT_DETAILS, Browsers, USyncQuery, USyncUser,
} from 'baileys';
import pino from 'pino';
import { format } from 'node:util';
import { checked, classify, lineSplitter } from './protocol.mjs';
import { serializedSignalRepository } from './signal-sessions.mjs';

// stdout is the JSON-lines protocol: libsignal logs with console.info ("Closing session…"), so
// every console method goes to stderr instead.
for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
  console[m] = (...args) => process.stderr.write(format(...args) + '\n');
}

export const PROTOCOL = 1;
const require = createRequire(import.meta.url);
const BAILEYS_VERSION = require('baileys/package.json').version;
// The WhatsApp Web version Baileys was compiled with; never fetched over the network.
// Logs go through process.stderr, not pino.destination(2): on exit pino flushes its destination
// synchronously and, once Python is gone (EPIPE), sonic-boom retries that write forever, so a
// sidecar whose parent was killed hung instead of leaving, holding its socket and swallowing
// messages meant for its successor.
const logger = pino({ level: process.env.CORTASK_SIDECAR_LOG_LEVEL || 'info' }, process.stderr);
// Python gone: nobody reads us any more. Writing on is pointless; leaving is handled by stdin's end.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

const write = (obj) => process.stdout.write(JSON.stringify(obj, BufferJSON.replacer) + '\n');
// An event line, its fields checked against protocol.mjs's table.
const emitEvent = (name, body) => write({ event: name, ...checked('events', name, body) });
let stopping = false;
const fatal = (code, message) => {
  if (stopping) return; // the writes after a failed one fail too: one reason is enough
  stopping = true;
  emitEvent('fatal', { code, message });
  // Give stdout a moment to flush, then stop: a failed durable write must never be ignored.
  setTimeout(() => process.exit(3), 20);
};

// ---- requests to Python ---------------------------------------------------------------------
let nextReq = 0;
const pending = new Map();
function ask(op, args = {}) {
  const req = ++nextReq;
  return new Promise((resolve, reject) => {
    pending.set(req, { resolve, reject });
    write({ req, op, ...checked('requests', op, args) });
  });
}
const revive = (text) => (text == null ? null : JSON.parse(text, BufferJSON.reviver));

// ---- auth state kept by Python --------------------------------------------------------------
// Keys this process has read or written, as stored text (revived afresh on every read, so Baileys
// never shares an object with the cache). Safe because this process is the only writer of its
// auth directory (Python holds the owner lock). A write is learnt when it is sent to Python, so
// the next Signal transaction reads it while Python is still flushing it (Python runs requests in
// order, so a read it answers sees it too); were the write to fail, this process stops (fatal)
// and the cache is gone with it. It saves a pipe round trip on most of the ~10 key reads a message.
const KEY_CACHE_ENTRIES = 5000;
function keyCache() {
  const entries = new Map(); // "type/id" -> stored text, or null when absent; oldest first
  return {
    lookup(type, id) { return entries.get(`${type}/${id}`); },
    learn(type, id, text) {
      const name = `${type}/${id}`;
      entries.delete(name);
      entries.set(name, text);
      if (entries.size > KEY_CACHE_ENTRIES) entries.delete(entries.keys().next().value);
    },
  };
}

async function loadAuthState() {
  const stored = await ask('creds.get');
  let creds = stored.creds ? revive(stored.creds) : initAuthCreds();
  // A pairing code that never linked leaves `me` set without a signed account identity: such
  // credentials would try to log in as a device that does not exist. Start linking afresh.
  if (creds.me && !creds.account && creds.pairingCode) creds = initAuthCreds();
  const cache = keyCache();
  const keys = {
    async get(type, ids) {
      const missing = ids.filter((id) => cache.lookup(type, id) === undefined);
      if (missing.length) {
        const { values } = await ask('keys.get', { type, ids: missing });
        for (const id of missing) cache.learn(type, id, values[id] ?? null);
      }
      const out = {};
      for (const id of ids) {
        let value = revive(cache.lookup(type, id) ?? null);
        if (value && type === 'app-state-sync-key') value = proto.Message.AppStateSyncKeyData.fromObject(value);
        out[id] = value ?? undefined;
      }
      return out;
    },
    async set(data) {
      const items = [];
      for (const type of Object.keys(data)) {
        for (const id of Object.keys(data[type])) {
          const value = data[type][id];
          items.push([type, id, value == null ? null : JSON.stringify(value, BufferJSON.replacer)]);
        }
      }
      const saved = ask('keys.set', { items }); // sent now, in order; on disk when it resolves
      for (const [type, id, text] of items) cache.learn(type, id, text);
      try {
        await saved;
      } catch (e) {
        fatal('store_write_failed', `could not save Signal keys: ${e.message}`);
        throw e;
      }
    },
  };
  const saveCreds = async () => {
    try {
      await ask('creds.set', { creds: JSON.stringify(creds, BufferJSON.replacer) });
    } catch (e) {
      fatal('store_write_failed', `could not save credentials: ${e.message}`);
      throw e;
    }
  };
  return { state: { creds, keys }, saveCreds };
}

// ---- inbound messages, kept until Python has journaled them --------------------------------
// Each batch carries a sequence number; Python acknowledges it once the messages are recorded
// (docs/sidecar-protocol.md, "Acks, seq and spill").
// If Python dies first (stdin closes), the unacknowledged batches are written to a spill file in
// the auth directory, which the next start reads before connecting.
let nextSeq = 0;
const unacked = new Map();
// Ids of the replies Python sent through us: Baileys reports each of them back as a message of
// ours ('append'), which Python only drops; leaving them out spares a line per reply.
const SENT_IDS_KEPT = 1000;
const sentIds = new Set();
function sentByPython(id) {
  sentIds.add(id);
  if (sentIds.size > SENT_IDS_KEPT) sentIds.delete(sentIds.values().next().value);
}
function forwardMessages(type, all) {
  const messages = all.filter((m) => !(m.key?.fromMe && sentIds.has(m.key.id)));
  if (!messages.length) return;
  const batch = checked('events', 'messages', { seq: ++nextSeq, type, messages: messages.map(describeMessage) });
  unacked.set(batch.seq, batch);
  write({ event: 'messages', ...batch });
}
function acknowledge(seq) {
  for (const key of unacked.keys()) if (key <= seq) unacked.delete(key);
}
function spillUnacknowledged() {
  const dir = process.env.CORTASK_SIDECAR_SPILL_DIR;
  if (!dir || unacked.size === 0) return;
  const name = path.join(dir, `inbound-spill-${process.pid}-${Date.now()}.jsonl`);
  const body = [...unacked.values()]
    .map((b) => JSON.stringify(checked('spill', 'batch', { type: b.type, messages: b.messages }), BufferJSON.replacer))
    .join('\n') + '\n';
  const fd = fs.openSync(name + '.tmp', 'w', 0o600);
  fs.writeSync(fd, body);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(name + '.tmp', name);
  unacked.clear();
}

// Baileys handles every incoming message node at once, concurrently, and a chat's order rests on
// timing: a message that has to look a contact's LID up (or wait for its keys to be on disk)
// can be overtaken by the next one of the same chat. Baileys' own listener is kept, but a chat's
// nodes reach it one at a time, in the order they came; other chats go on meanwhile.
function oneAtATimePerChat(ws, event) {
  for (const listener of ws.listeners(event)) {
    ws.off(event, listener);
    const tails = new Map(); // chat -> the handling of its last node
    ws.on(event, (node) => {
      const chat = node?.attrs?.from ?? '';
      const handled = (tails.get(chat) ?? Promise.resolve())
        .then(() => listener(node))
        .catch((e) => logger.error({ err: e }, 'a message could not be handled'));
      tails.set(chat, handled);
      handled.then(() => { if (tails.get(chat) === handled) tails.delete(chat); });
    });
  }
}

// ---- the one socket -------------------------------------------------------------------------
let sock = null;
let generation = 0;
// Whether `sock` has finished its handshake and logged in (connection 'open'). Until then Baileys
// must not be asked to write a stanza: its noise handler frames nodes unencrypted before the
// handshake is done, and the server takes such a frame for a broken ClientFinish and closes the
// connection (issue #13: a read receipt or typing state reaching a freshly restarted sidecar).
let sockOpen = false;

function describeMessage(m) {
  return {
    key: m.key,
    message: m.message ?? null,
    pushName: m.pushName ?? null,
    messageTimestamp: Number(m.messageTimestamp ?? 0),
    messageStubType: m.messageStubType ?? null,
    messageStubParameters: m.messageStubParameters ?? null,
    broadcast: m.broadcast ?? false,
  };
}

async function connect(cmd) {
  if (sock) { sock.end(undefined); sock = null; }
  sockOpen = false;
  const gen = ++generation;
  if (cmd.sandbox) {
    // The two test seams, only when Python explicitly configured a sandbox.
    WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(cmd.sandbox.rootKey, 'hex');
  }
  const { state, saveCreds } = await loadAuthState();
  const started = Date.now();
  const s = makeWASocket({
    auth: state,
    logger,
    browser: Browsers.macOS('Cortask'),
    markOnlineOnConnect: false,
    printQRInTerminal: false,
    qrTimeout: cmd.qrTimeoutMs,
    keepAliveIntervalMs: cmd.keepAliveMs ?? 30_000,
    connectTimeoutMs: cmd.connectTimeoutMs ?? 20_000,
    ...(cmd.sandbox ? { waWebSocketUrl: cmd.sandbox.url } : {}),
    // Session updates one at a time: Baileys' own locking lets a reply and an incoming message
    // of the same contact overwrite each other (signal-sessions.mjs).
    makeSignalRepository: serializedSignalRepository(state.keys),
    getMessage: async (key) => {
      const { text } = await ask('sent.get', { id: key.id, jid: key.remoteJid });
      return text == null ? undefined : proto.Message.fromObject({ conversation: text });
    },
  });
  sock = s;
  oneAtATimePerChat(s.ws, 'CB:message');
  const current = () => gen === generation;
  s.ev.on('creds.update', async () => {
    await saveCreds();
    // Registered once the phone paired (pair-success sets the signed `account`); a pairing code
    // request alone sets `me` already, before anyone typed the code.
    const registered = Boolean(state.creds.me && (state.creds.account || !state.creds.pairingCode));
    if (current()) emitEvent('creds', { registered, me: registered ? state.creds.me : null });
  });
  s.ev.on('connection.update', (u) => {
    if (!current()) return;
    if (u.qr) emitEvent('qr', { qr: u.qr, ms: Date.now() - started });
    if (u.connection || u.isNewLogin) {
      const err = u.lastDisconnect?.error;
      emitEvent('connection', {
        connection: u.connection ?? null,
        isNewLogin: Boolean(u.isNewLogin),
        statusCode: err?.output?.statusCode ?? null,
        reason: err?.message ?? null,
        data: err?.data?.attrs ?? err?.data?.reason ?? null,
        ms: Date.now() - started,
      });
    }
    if (u.connection === 'open') sockOpen = true;
    if (u.connection === 'close') { sock = null; sockOpen = false; }
  });
  // Baileys has already sent the delivery receipt when it emits a message, and then holds the
  // event in its buffer (at least 100 ms, up to 20 s while the first sync runs) before listeners
  // see it: a crash in that time would lose the message for good. So messages are taken from
  // emit() itself, before the buffer, and passed on at once. What is left is the short stretch
  // between Baileys writing the receipt to its socket and calling emit(); closing that would take
  // changing Baileys (it sends the receipt first).
  const emit = s.ev.emit;
  s.ev.emit = (event, data) => {
    if (event === 'messages.upsert' && current()) forwardMessages(data.type, data.messages);
    return emit(event, data);
  };
  s.ev.on('messages.update', (updates) => {
    if (!current()) return;
    // A receipt for a message in the owner's own chat comes without a chat (Baileys leaves
    // remoteJid out there); nothing waits for those, and one must not spoil the others' line.
    const receipts = updates
      .filter((u) => u.update?.status != null && typeof u.key?.remoteJid === 'string')
      .map((u) => ({
        id: u.key.id, remoteJid: u.key.remoteJid, status: u.update.status,
        error: u.update.status === 0 ? (u.update.messageStubParameters?.[0] ?? null) : null,
      }));
    if (receipts.length) emitEvent('receipts', { receipts });
  });
  // WhatsApp tells a companion its code was refused on the phone with a link_code_companion_reg
  // notification at stage refresh_code (Baileys itself ignores the stage): the code is spent.
  s.ws.on('CB:notification,type:link_code_companion_reg', (node) => {
    const reg = Array.isArray(node.content) ? node.content.find((c) => c.tag === 'link_code_companion_reg') : null;
    if (current() && reg?.attrs?.stage === 'refresh_code') {
      emitEvent('code_refused', { message: 'the code was refused on the phone: it was not typed as shown' });
    }
  });
  s.ev.on('lid-mapping.update', (mapping) => {
    if (current()) emitEvent('lid', { mapping });
  });
  return { generation: gen };
}

function requireSocket() {
  if (!sock) throw new Error('not connected');
  return sock;
}

// For commands that make Baileys write to WhatsApp: only on a connection that is open.
function requireOpenSocket() {
  if (!sock || !sockOpen) throw new Error('not connected');
  return sock;
}

const commands = {
  connect,
  async send_text(cmd) {
    // Python chooses the id and records the text durably first, so a retry receipt that
    // arrives at once can always be answered (getMessage).
    const options = cmd.messageId ? { messageId: cmd.messageId } : {};
    if (cmd.messageId) sentByPython(cmd.messageId); // before sending: Baileys reports it back at once
    if (cmd.quoted) {
      // A reply in a group quotes the message it answers (Baileys builds the contextInfo from it).
      const { id, remoteJid, participant, text } = cmd.quoted;
      options.quoted = { key: { id, remoteJid, participant, fromMe: false }, message: { conversation: text ?? '' } };
    }
    const msg = await requireOpenSocket().sendMessage(cmd.jid, { text: cmd.text }, options);
    return { id: msg.key.id, remoteJid: msg.key.remoteJid, timestamp: Number(msg.messageTimestamp ?? 0) };
  },
  async presence(cmd) { await requireOpenSocket().sendPresenceUpdate(cmd.type, cmd.jid); return {}; },
  async read(cmd) { await requireOpenSocket().readMessages(cmd.keys); return {}; },
  async lid_for_phone(cmd) {
    const lid = await requireSocket().signalRepository.lidMapping.getLIDForPN(cmd.jid);
    return { lid: lid ?? null };
  },
  async phone_for_lid(cmd) {
    const pn = await requireSocket().signalRepository.lidMapping.getPNForLID(cmd.jid);
    return { jid: pn ?? null };
  },
  async check_numbers(cmd) {
    // The usync query Baileys' onWhatsApp sends (contact protocol), with the LID protocol too, one
    // number per query: onWhatsApp drops the numbers that are not on WhatsApp and its answers do
    // not say which number each account was found for, which is the whole point here.
    const s = requireSocket();
    const numbers = [];
    for (const number of cmd.numbers) {
      const query = new USyncQuery().withContactProtocol().withLIDProtocol().withUser(new USyncUser().withPhone(number));
      const found = (await s.executeUSyncQuery(query))?.list?.[0];
      const exists = found?.contact === true;
      numbers.push(checked('shapes', 'numberFound', {
        number, exists, jid: exists ? found.id : null, lid: exists ? (found.lid ?? null) : null,
      }));
    }
    return { numbers };
  },
  async logout() {
    const s = requireOpenSocket();
    await s.logout();
    return {};
  },
  async ping() { return { connected: Boolean(sock) }; },
  pairing_code: requestPairingCode,
  async ack(cmd) { acknowledge(Number(cmd.seq)); return {}; },
  async close() { if (sock) { sock.end(undefined); sock = null; } sockOpen = false; return {}; },
  async exit() { if (sock) sock.end(undefined); spillUnacknowledged(); setTimeout(() => process.exit(0), 20); return {}; },
};

// A send Python timed out on and asks for again (same reserved id) while the first is still under
// way here joins the first. Sending it twice doubles the work of a sidecar that is already behind
// (1,000 chats at once, bench/scale.py), so every retry made it fall further behind (issue #18).
const sendsInFlight = new Map(); // message id -> the send's promise
const sendTextOnce = commands.send_text;
commands.send_text = (cmd) => {
  if (!cmd.messageId) return sendTextOnce(cmd);
  const underWay = sendsInFlight.get(cmd.messageId);
  if (underWay) return underWay;
  // The caller gets the send's own promise (no extra step), so answers keep the order they had.
  const sending = sendTextOnce(cmd);
  sendsInFlight.set(cmd.messageId, sending);
  const forget = () => { if (sendsInFlight.get(cmd.messageId) === sending) sendsInFlight.delete(cmd.messageId); };
  sending.then(forget, forget);
  return sending;
};

// Baileys sends the code request without waiting for WhatsApp's answer; the answer says whether
// the number has a WhatsApp account (an iq result with a pairing ref, or an error), so we wait.
const CODE_ANSWER_MS = 20_000;
async function requestPairingCode(cmd) {
  const s = requireSocket();
  if (s.authState.creds.account) throw new Error('this device is already linked: log out first to link another phone');
  const answered = new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      s.ws.off('CB:iq,type:result,link_code_companion_reg', onResult);
      s.ws.off('CB:iq,type:error', onError);
    };
    const onResult = () => { done(); resolve(); };
    const onError = (node) => {
      done();
      const err = Array.isArray(node.content) ? node.content.find((c) => c.tag === 'error') : null;
      reject(new Error(`WhatsApp refused a code for +${cmd.phone} (${err?.attrs?.code ?? '?'} ${err?.attrs?.text ?? 'error'})`));
    };
    const timer = setTimeout(() => { done(); reject(new Error('WhatsApp did not answer the pairing code request')); }, CODE_ANSWER_MS);
    s.ws.on('CB:iq,type:result,link_code_companion_reg', onResult);
    s.ws.on('CB:iq,type:error', onError);
  });
  answered.catch(() => {}); // awaited below; never an unhandled rejection if the request throws first
  const code = await s.requestPairingCode(cmd.phone, cmd.code ? cmd.code.toUpperCase() : undefined);
  await answered;
  return { code };
}

async function onLine(line) {
  if (!line.trim()) return; // a blank line carries nothing to answer
  let msg;
  try { msg = JSON.parse(line); } catch (e) {
    protocolError(`not JSON: ${String(e.message).slice(0, 200)}`);
    return;
  }
  const what = classify(msg);
  if (what.bad) {
    if (what.re != null) write({ re: what.re, ok: false, error: what.bad }); else protocolError(what.bad);
    return;
  }
  if (what.reply) {
    const waiter = pending.get(msg.re);
    if (!waiter) { protocolError(`no request ${msg.re} is waiting for an answer`); return; }
    pending.delete(msg.re);
    if (msg.ok) waiter.resolve(msg.result ?? {}); else waiter.reject(new Error(msg.error || 'request failed'));
    return;
  }
  try {
    const result = checked('results', what.command, await commands[what.command](msg));
    // id 0: nobody waits (typing, read receipts, acks); only a failure is worth a line.
    if (what.id !== 0) write({ re: what.id, ok: true, result });
  } catch (e) {
    write({ re: what.id, ok: false, error: String(e?.message ?? e) });
  }
}
const protocolError = (message) => emitEvent('protocol_error', { message });
const feed = lineSplitter((line) => { onLine(line).catch((e) => protocolError(`could not handle a line: ${e?.message ?? e}`)); }, protocolError);
process.stdin.on('data', feed);
// Python went away: close the socket (keeping the link) and leave.
process.stdin.on('end', () => {
  if (sock) sock.end(undefined);
  try { spillUnacknowledged(); } catch (e) { logger.error({ err: e }, 'could not spill unjournaled messages'); }
  setTimeout(() => process.exit(0), 20);
});
process.on('unhandledRejection', (e) => logger.error({ err: e }, 'unhandled rejection'));
// Messages still arrive (and Baileys acknowledges them to the server) in the moments between
// Python going away and our exit, after the first spill: spill those too, on the way out.
process.on('exit', () => {
  try { spillUnacknowledged(); } catch (e) { process.stderr.write(`could not spill unjournaled messages: ${e}\n`); }
});

emitEvent('hello', { protocol: PROTOCOL, baileys: BAILEYS_VERSION, node: process.version });
