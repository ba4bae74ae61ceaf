// The sidecar's side of the line protocol, apart from Baileys: splitting stdin into lines with a
// size cap, checking each line before anything acts on it, and the table of every message's
// fields. Pure logic, no I/O. The protocol in words: docs/sidecar-protocol.md; Python's side of
// the same tables: channels/whatsapp/wire.py (a test compares the two through `describe()`).
//
// Every bad line gets an answer in protocol form, so a bug on the Python side shows up as a clear
// error in its log instead of a sidecar that hangs, crashes or quietly does something else.

// The largest line Python has a reason to send is an answer to keys.get: every device's session
// during a send to a large group, each session up to tens of KB with its archived states. That
// can reach MBs, so the cap is generous (the same as Python's for our lines); anything beyond it
// is a bug, and is dropped rather than held in memory while it grows.
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

// Splits a byte stream into lines. `onLine(text)` gets each complete line; `onError(message)` is
// called for a line that was dropped (too long, or not UTF-8). Never throws.
export function lineSplitter(onLine, onError, maxBytes = MAX_LINE_BYTES) {
  let parts = [];
  let size = 0;
  let discarding = false; // inside a line already reported as too long
  const finish = (chunk) => {
    if (discarding) { discarding = false; return; }
    const bytes = parts.length ? Buffer.concat([...parts, chunk]) : chunk;
    parts = []; size = 0;
    let text;
    try { text = utf8.decode(bytes); } catch {
      onError('a line was dropped because it is not valid UTF-8: send one JSON object per line, in UTF-8');
      return;
    }
    onLine(text.endsWith('\r') ? text.slice(0, -1) : text);
  };
  const tooLong = () => {
    parts = []; size = 0;
    if (!discarding) onError(`a line longer than ${maxBytes} bytes was dropped: no message of the protocol is that large`);
    discarding = true;
  };
  return (chunk) => {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      if (!discarding && size + (end - start) > maxBytes) tooLong();
      if (nl < 0) {
        if (!discarding && end > start) { parts.push(chunk.subarray(start)); size += end - start; }
        return;
      }
      finish(chunk.subarray(start, nl));
      start = nl + 1;
    }
  };
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);

const string = (v) => typeof v === 'string' && v.length > 0;
const positiveMs = (v) => Number.isSafeInteger(v) && v > 0;
const count = (v) => Number.isSafeInteger(v) && v >= 0;
const jid = (v) => string(v) && v.includes('@');
const hex = (v) => typeof v === 'string' && /^(?:[0-9a-f]{2})+$/i.test(v);
const presence = new Set(['available', 'unavailable', 'composing', 'recording', 'paused']);
const messageKey = (v) => isObject(v) && string(v.id) && jid(v.remoteJid);

// For each command: its fields, whether each is required, a check and what it should be.
const FIELDS = {
  connect: {
    sandbox: [false, (v) => isObject(v) && typeof v.url === 'string' && /^wss?:\/\//.test(v.url) && hex(v.rootKey),
      'an object with "url" (ws:// or wss://) and "rootKey" (hex)'],
    qrTimeoutMs: [false, positiveMs, 'a positive whole number of milliseconds'],
    keepAliveMs: [false, positiveMs, 'a positive whole number of milliseconds'],
    connectTimeoutMs: [false, positiveMs, 'a positive whole number of milliseconds'],
  },
  send_text: {
    jid: [true, jid, 'a WhatsApp JID such as 4915123456789@s.whatsapp.net'],
    text: [true, (v) => typeof v === 'string', 'a string'],
    messageId: [false, string, 'a non-empty string'],
    quoted: [false, (v) => isObject(v) && string(v.id) && jid(v.remoteJid) && (v.participant === undefined || jid(v.participant))
      && (v.text === undefined || typeof v.text === 'string'), 'the quoted message: {id, remoteJid, participant?, text?}'],
  },
  presence: {
    type: [true, (v) => presence.has(v), `one of ${[...presence].join(', ')}`],
    jid: [false, jid, 'a WhatsApp JID'],
  },
  read: { keys: [true, (v) => Array.isArray(v) && v.length > 0 && v.every(messageKey), 'a non-empty list of message keys ({id, remoteJid})'] },
  lid_for_phone: { jid: [true, jid, 'a WhatsApp JID'] },
  phone_for_lid: { jid: [true, jid, 'a WhatsApp JID'] },
  ack: { seq: [true, count, 'a whole number of 0 or more'] },
  logout: {},
  ping: {},
  close: {},
  exit: {},
  check_numbers: {
    numbers: [true, (v) => Array.isArray(v) && v.length > 0 && v.length <= 50 && v.every((n) => typeof n === 'string' && /^\+[1-9][0-9]{1,14}$/.test(n)),
      'a list of 1 to 50 phone numbers, each + and digits (E.164)'],
  },
  pairing_code: {
    phone: [true, (v) => typeof v === 'string' && /^[1-9][0-9]{6,14}$/.test(v), 'the account\'s own phone number, digits only with the country code'],
    code: [false, (v) => typeof v === 'string' && /^[0-9A-Za-z]{8}$/.test(v), 'eight letters and digits'],
  },
};

export const COMMANDS = Object.freeze(Object.keys(FIELDS));

// What a parsed line is: {bad: message} (answer with a protocol error), {reply: msg} (an answer
// to one of our requests) or {command: name, id} (run it). `re` is the id to answer a bad
// command with, when the line had a usable one.
export function classify(msg) {
  if (!isObject(msg)) return { bad: `expected a JSON object, got ${kind(msg)}` };
  if (msg.re !== undefined) {
    if (!count(msg.re)) return { bad: `"re" must be the whole-number id of a request, got ${kind(msg.re)}` };
    return { reply: msg };
  }
  const id = msg.id ?? null;
  if (id !== null && !count(id)) return { bad: `"id" must be a whole number of 0 or more, got ${kind(id)}` };
  if (typeof msg.cmd !== 'string') return { bad: `"cmd" must be the name of a command (${COMMANDS.join(', ')})`, re: id };
  if (!Object.hasOwn(FIELDS, msg.cmd)) {
    return { bad: `unknown command ${JSON.stringify(msg.cmd.slice(0, 100))}: use one of ${COMMANDS.join(', ')}`, re: id };
  }
  for (const [field, [required, check, what]] of Object.entries(FIELDS[msg.cmd])) {
    const value = msg[field];
    if (value === undefined || value === null) {
      if (required) return { bad: `${msg.cmd} needs "${field}": ${what}`, re: id };
    } else if (!check(value)) {
      return { bad: `${msg.cmd}: "${field}" must be ${what}`, re: id };
    }
  }
  return { command: msg.cmd, id };
}

// ---- what the sidecar sends: each message's fields, true when required (present, not null) ---
// index.mjs builds every line it prints through `checked`, so a field added there and not here
// (or in wire.py) fails at once instead of being dropped by Python.

const RESULTS = {
  connect: { generation: true },
  send_text: { id: true, remoteJid: true, timestamp: true },
  presence: {},
  read: {},
  lid_for_phone: { lid: false },
  phone_for_lid: { jid: false },
  ack: {},
  logout: {},
  ping: { connected: true },
  close: {},
  exit: {},
  check_numbers: { numbers: true },
  pairing_code: { code: true },
};

const EVENTS = {
  hello: { protocol: true, baileys: true, node: true },
  qr: { qr: true, ms: true },
  connection: { isNewLogin: true, ms: true, connection: false, statusCode: false, reason: false, data: false },
  messages: { seq: true, type: true, messages: true },
  creds: { registered: true, me: false },
  receipts: { receipts: true },
  lid: { mapping: true },
  fatal: { code: true, message: true },
  protocol_error: { message: true },
  code_refused: { message: true },
};

// Requests to Python's auth store ({"req": N, "op": ..., fields}), and what each answer carries.
const REQUESTS = {
  'keys.get': { type: true, ids: true },
  'keys.set': { items: true },
  'creds.get': {},
  'creds.set': { creds: true },
  'sent.get': { id: true, jid: false },
};
const STORE_RESULTS = {
  'keys.get': { values: true },
  'keys.set': {},
  'creds.get': { creds: false },
  'creds.set': {},
  'sent.get': { text: false },
};

// Objects nested in the messages above, and a line of a spill file.
const SHAPES = {
  sandbox: { url: true, rootKey: true },
  messageKey: { id: true, remoteJid: true, participant: false, fromMe: false },
  receipt: { id: true, remoteJid: true, status: true, error: false },
  numberFound: { number: true, exists: true, jid: false, lid: false },
};
const SPILL = { batch: { type: true, messages: true } };

const TABLES = { results: RESULTS, events: EVENTS, requests: REQUESTS, storeResults: STORE_RESULTS, spill: SPILL, shapes: SHAPES };

// `body` with exactly the fields `TABLES[table][name]` lists (every required one set); throws
// otherwise: a bug in this sidecar, to be seen at once.
export function checked(table, name, body) {
  const fields = TABLES[table][name];
  if (!fields) throw new Error(`protocol: no ${table} entry ${name}`);
  for (const key of Object.keys(body)) {
    if (!Object.hasOwn(fields, key)) throw new Error(`protocol: ${table} ${name} has no field ${key}`);
  }
  for (const [key, required] of Object.entries(fields)) {
    if (required && (body[key] === undefined || body[key] === null)) throw new Error(`protocol: ${table} ${name} needs ${key}`);
  }
  return body;
}

// Every message's fields, for the test that compares this side with wire.py.
export function describe() {
  const required = (spec) => Object.fromEntries(Object.entries(spec).map(([k, [req]]) => [k, req]));
  return {
    commands: Object.fromEntries(Object.entries(FIELDS).map(([name, spec]) => [name, required(spec)])),
    ...TABLES,
    shapes: SHAPES,
  };
}
