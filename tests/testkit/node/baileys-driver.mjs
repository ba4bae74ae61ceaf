// A plain Baileys client driven over stdin/stdout (one JSON object per line), for wasim's tests
// and benchmarks. It is deliberately NOT the product sidecar: it uses Baileys' own
// useMultiFileAuthState and has no policy. It never reconnects by itself; the test decides.
//
// Commands in:  {"cmd":"connect","auth":DIR,"url":WS_URL,"rootKey":HEX,"qrTimeoutMs":N,"keepAliveMs":N,
//                "serializeSessions":BOOL}
//               {"cmd":"logout"} {"cmd":"end"} {"cmd":"send","jid":J,"text":T,"id":N}
//               {"cmd":"presence","type":"composing","jid":J} {"cmd":"exit"}
//               {"cmd":"onWhatsApp","numbers":[...]} (Baileys' own onWhatsApp: the accounts found)
// Events out:   {"event":"qr","qr":S} {"event":"connection",...} {"event":"creds",...}
//               {"event":"upsert","type":T,"messages":[...]} {"event":"result","id":N,...}
import readline from 'node:readline';
import { makeWASocket, useMultiFileAuthState, WA_CERT_DETAILS, BufferJSON } from 'baileys';
import pino from 'pino';
import { format } from 'node:util';
import { serializedSignalRepository } from '../../../src/cortask/channels/whatsapp/sidecar/signal-sessions.mjs';

// stdout is the JSON-lines protocol: libsignal logs with console.info ("Closing session…"), so
// every console method goes to stderr instead.
for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
  console[m] = (...args) => process.stderr.write(format(...args) + '\n');
}

const out = (obj) => process.stdout.write(JSON.stringify(obj, BufferJSON.replacer) + '\n');
const logger = pino({ level: process.env.BAILEYS_LOG_LEVEL || 'warn' }, pino.destination(2));
let sock = null;
let saveCreds = null;
let authState = null;
let generation = 0;
let saving = Promise.resolve(); // creds writes in order; exit waits for them (Baileys' store
// writes creds.json in place, so exiting mid-write would leave it empty)
let echo = false;
let echoing = Promise.resolve(); // answer every incoming text with the same text (benchmarks' in-process echo bot) // events of a socket replaced by a newer one are not reported

async function connect(cmd) {
  const gen = ++generation;
  if (sock) sock.end(undefined);
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(cmd.rootKey, 'hex');
  const { state, saveCreds: save } = await useMultiFileAuthState(cmd.auth);
  authState = state;
  saveCreds = save;
  const started = Date.now();
  const s = makeWASocket({
    auth: state,
    waWebSocketUrl: cmd.url,
    logger,
    printQRInTerminal: false,
    markOnlineOnConnect: false,
    qrTimeout: cmd.qrTimeoutMs,
    keepAliveIntervalMs: cmd.keepAliveMs ?? 30000,
    connectTimeoutMs: cmd.connectTimeoutMs ?? 20000,
    version: [2, 3000, 1043857760],
    getMessage: async () => undefined,
    // Like the product sidecar, Signal session updates one at a time (see signal-sessions.mjs);
    // serializeSessions:false gives Baileys' own locking, whose lost updates burst_echo shows.
    ...(cmd.serializeSessions === false ? {} : { makeSignalRepository: serializedSignalRepository(state.keys) }),
  });
  sock = s;
  const current = () => gen === generation;
  s.ev.on('creds.update', async (update) => {
    saving = saving.then(save, save);
    await saving;
    if (current()) out({ event: 'creds', keys: Object.keys(update), me: state.creds.me ?? null });
  });
  s.ev.on('connection.update', (u) => {
    if (!current()) return;
    if (u.qr) out({ event: 'qr', qr: u.qr, ms: Date.now() - started });
    if (u.connection || u.isNewLogin || u.receivedPendingNotifications) {
      const err = u.lastDisconnect?.error;
      out({
        event: 'connection',
        connection: u.connection ?? null,
        isNewLogin: u.isNewLogin ?? false,
        receivedPendingNotifications: u.receivedPendingNotifications ?? false,
        statusCode: err?.output?.statusCode ?? null,
        message: err?.message ?? null,
        ms: Date.now() - started,
      });
    }
    if (u.connection === 'close') sock = null;
  });
  s.ev.on('messages.upsert', ({ messages, type }) => {
    if (!current()) return;
    out({ event: 'upsert', type, messages });
    if (!echo || type !== 'notify') return;
    for (const m of messages) {
      const text = m.message?.conversation ?? m.message?.extendedTextMessage?.text;
      if (m.key.fromMe || !text) continue;
      // One send at a time: concurrent sendMessage calls to one chat race on its Signal session
      // in Baileys rc14 (duplicate counters, bad MACs at the phone).
      echoing = echoing.then(() => s.sendMessage(m.key.remoteJid, { text })).catch((e) => logger.error(e));
    }
  });
  s.ev.on('messages.update', (updates) => current() && out({ event: 'messages.update', updates }));
}

const toNode = (j) => ({
  tag: j.tag,
  attrs: j.attrs ?? {},
  content: j.content == null ? undefined
    : typeof j.content === 'string' ? j.content
      : Array.isArray(j.content) ? j.content.map(toNode) : Buffer.from(j.content.b64, 'base64'),
});
const fromNode = (n) => ({
  tag: n.tag,
  attrs: n.attrs,
  content: n.content == null ? null
    : typeof n.content === 'string' ? n.content
      : Array.isArray(n.content) ? n.content.map(fromNode) : { b64: Buffer.from(n.content).toString('base64') },
});

const handlers = {
  connect,
  async logout() { await sock?.logout(); },
  async end() { generation++; sock?.end(undefined); sock = null; },
  async send(cmd) {
    const msg = await sock.sendMessage(cmd.jid, { text: cmd.text });
    return { key: msg.key };
  },
  async presence(cmd) { await sock.sendPresenceUpdate(cmd.type, cmd.jid); },
  async onWhatsApp(cmd) { return { found: (await sock.onWhatsApp(...cmd.numbers)) ?? [] }; },
  // Raw stanzas through Baileys' own socket, for bad-input tests: {tag, attrs, content} where
  // content is a string, a list of nodes, or {"b64": "..."} for bytes.
  async query(cmd) {
    const result = await sock.query(toNode(cmd.node), cmd.timeoutMs ?? 10000);
    return { node: result ? fromNode(result) : null };
  },
  async sendNode(cmd) { await sock.sendNode(toNode(cmd.node)); },
  async echo(cmd) { echo = Boolean(cmd.enabled); },
  // Link by phone number instead of a QR: the code the phone must type.
  async pairingCode(cmd) { return { code: await sock.requestPairingCode(cmd.phone, cmd.code ?? undefined) }; },
  async creds() { return { creds: authState?.creds ?? null }; },
  async exit() {
    sock?.end(undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await saving;
    setTimeout(() => process.exit(0), 10);
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (!line.trim()) return;
  let cmd;
  try { cmd = JSON.parse(line); } catch (e) { out({ event: 'error', error: `bad json: ${e}` }); return; }
  try {
    const result = await handlers[cmd.cmd](cmd);
    out({ event: 'result', id: cmd.id ?? null, cmd: cmd.cmd, ok: true, ...(result ?? {}) });
  } catch (e) {
    out({ event: 'result', id: cmd.id ?? null, cmd: cmd.cmd, ok: false, error: String(e?.stack ?? e) });
  }
});
rl.on('close', () => { sock?.end(undefined); process.exit(0); });
out({ event: 'ready', pid: process.pid });
