// A Baileys group-messaging oracle for wasim's sender-key tests: one JSON object per line on stdin,
// one reply per line on stdout (everything else goes to stderr). It is one linked Baileys device:
// Baileys' own signal repository (Signal/libsignal.js, which drives Signal/Group: GroupCipher,
// GroupSessionBuilder, SenderKeyRecord) over an in-memory key store, so sender-key records go
// through the same JSON (de)serialization and naming as in a real Baileys session.
//
// Requests:  {"id":N,"op":OP,...}; binary values are base64 strings.
//   me           {}                            -> {jid, lid}           (this device's own JIDs)
//   encrypt      {group, me?, plaintext}       -> {body, skdm}         (encryptGroupMessage)
//   skdm         {group, me?}                  -> {skdm}               (getSenderKeyDistributionMessage)
//   process      {group, author, skdm}         -> {}                   (processSenderKeyDistributionMessage)
//   decrypt      {group, author, body}         -> {plaintext}          (decryptGroupMessage)
//   senderKeys   {}                            -> {records: {name: [{keyId, iteration, messageKeys}]}}
//   cipherProcess{group, skdm}                 -> {}                   (GroupSessionBuilder.process)
//   cipherDecrypt{group, body}                 -> {plaintext}          (GroupCipher.decrypt)
//                 The cipher* ops drive the Group classes directly over a store that serializes
//                 records with BufferJSON.replacer. The repository's own store does not (it writes
//                 JSON.stringify(record.serialize()), whose Buffers come back as plain objects), so
//                 there a skipped iteration's stored message key cannot be used later.
//   bundle       {}                            -> {bundle}             (this device's pre-key bundle)
//   decryptStanza{node}                        -> {message, stub, stubParameters, key}
//                 node = {tag, attrs, content: [{tag, attrs, content: base64}]}; runs Baileys'
//                 decryptMessageNode().decrypt() exactly as messages-recv.js does; `message` is the
//                 resulting proto.Message re-encoded (base64) or null.
// Replies:   {"id":N,"ok":true,...} or {"id":N,"ok":false,"error":NAME,"message":TEXT}
import readline from 'node:readline';

// Baileys and libsignal log with console.*; stdout is our protocol.
for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

const { makeLibSignalRepository } = await import('baileys/lib/Signal/libsignal.js');
const { GroupCipher, GroupSessionBuilder, SenderKeyDistributionMessage, SenderKeyName, SenderKeyRecord } =
  await import('baileys/lib/Signal/Group/index.js');
const { BufferJSON } = await import('baileys/lib/Utils/generics.js');
const { default: libsignal } = await import('libsignal');
const { decryptMessageNode } = await import('baileys/lib/Utils/decode-wa-message.js');
const { initAuthCreds } = await import('baileys/lib/Utils/auth-utils.js');
const { Curve, generateSignalPubKey } = await import('baileys/lib/Utils/crypto.js');
const { proto } = await import('baileys/WAProto/index.js');

const b64 = (buf) => Buffer.from(buf).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64');

const logger = {
  level: 'trace',
  child() { return logger; },
};
for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
  logger[level] = (obj, msg) => {
    if (level === 'trace' || level === 'debug') return;
    const detail = obj instanceof Error ? obj.stack : JSON.stringify(obj, (k, v) => (v instanceof Error ? v.stack : v));
    process.stderr.write(`[${level}] ${msg ?? ''} ${detail}\n`);
  };
}

// The SignalKeyStore interface Baileys' repository expects (get/set/transaction), in memory.
const store = new Map(); // type -> Map(id -> value)
const keys = {
  async get(type, ids) {
    const table = store.get(type) ?? new Map();
    const out = {};
    for (const id of ids) {
      if (table.has(id)) out[id] = table.get(id);
    }
    return out;
  },
  async set(data) {
    for (const [type, entries] of Object.entries(data)) {
      if (!store.has(type)) store.set(type, new Map());
      const table = store.get(type);
      for (const [id, value] of Object.entries(entries)) {
        if (value === null || value === undefined) table.delete(id);
        else table.set(id, value);
      }
    }
  },
  async transaction(work) { return work(); },
  isInTransaction() { return false; },
};

const creds = initAuthCreds();
creds.me = { id: '15550001000:7@s.whatsapp.net', lid: '99990001000:7@lid', name: 'oracle' };
// No usync in the oracle: a PN author without a stored LID mapping stays a PN address.
const repository = makeLibSignalRepository({ creds, keys }, logger, async () => []);
let nextPreKeyId = 1;

// A sender-key store for the cipher* ops, round-tripping records through BufferJSON.
const cipherRecords = new Map();
const cipherStorage = {
  async loadSenderKey(name) {
    const data = cipherRecords.get(name.toString());
    return data ? SenderKeyRecord.deserialize(Buffer.from(data)) : new SenderKeyRecord();
  },
  async storeSenderKey(name, record) {
    cipherRecords.set(name.toString(), JSON.stringify(record.serialize(), BufferJSON.replacer));
  },
};
const cipherName = (group) => new SenderKeyName(group, new libsignal.ProtocolAddress('member', 0));

function toNode(json) {
  return {
    tag: json.tag,
    attrs: json.attrs ?? {},
    content: Array.isArray(json.content)
      ? json.content.map(toNode)
      : typeof json.content === 'string' ? unb64(json.content) : undefined,
  };
}

async function handle(req) {
  switch (req.op) {
    case 'me':
      return { jid: creds.me.id, lid: creds.me.lid };
    case 'encrypt': {
      const { ciphertext, senderKeyDistributionMessage } = await repository.encryptGroupMessage({
        group: req.group, meId: req.me ?? creds.me.id, data: unb64(req.plaintext),
      });
      return { body: b64(ciphertext), skdm: b64(senderKeyDistributionMessage) };
    }
    case 'skdm':
      return { skdm: b64(await repository.getSenderKeyDistributionMessage({
        group: req.group, meId: req.me ?? creds.me.id,
      })) };
    case 'process':
      await repository.processSenderKeyDistributionMessage({
        authorJid: req.author,
        item: { groupId: req.group, axolotlSenderKeyDistributionMessage: unb64(req.skdm) },
      });
      return {};
    case 'decrypt': {
      const plaintext = await repository.decryptGroupMessage({
        group: req.group, authorJid: req.author, msg: unb64(req.body),
      });
      return { plaintext: b64(plaintext) };
    }
    case 'senderKeys': {
      const records = {};
      for (const [name, data] of store.get('sender-key') ?? []) {
        records[name] = SenderKeyRecord.deserialize(data).senderKeyStates.map((state) => ({
          keyId: state.getKeyId(),
          iteration: state.getSenderChainKey().getIteration(),
          messageKeys: state.getStructure().senderMessageKeys.length,
        }));
      }
      return { records };
    }
    case 'cipherProcess':
      await new GroupSessionBuilder(cipherStorage).process(
        cipherName(req.group), new SenderKeyDistributionMessage(null, null, null, null, unb64(req.skdm)));
      return {};
    case 'cipherDecrypt':
      return { plaintext: b64(await new GroupCipher(cipherStorage, cipherName(req.group)).decrypt(unb64(req.body))) };
    case 'bundle': {
      const keyId = nextPreKeyId++;
      const pair = Curve.generateKeyPair();
      await keys.set({ 'pre-key': { [keyId]: pair } });
      return {
        bundle: {
          registrationId: creds.registrationId,
          identityKey: b64(generateSignalPubKey(creds.signedIdentityKey.public)),
          signedPreKey: {
            keyId: creds.signedPreKey.keyId,
            publicKey: b64(generateSignalPubKey(creds.signedPreKey.keyPair.public)),
            signature: b64(creds.signedPreKey.signature),
          },
          preKey: { keyId, publicKey: b64(generateSignalPubKey(pair.public)) },
        },
      };
    }
    case 'decryptStanza': {
      const { fullMessage, decrypt } = decryptMessageNode(
        toNode(req.node), creds.me.id, creds.me.lid, repository, logger);
      await decrypt();
      return {
        message: fullMessage.message ? b64(proto.Message.encode(fullMessage.message).finish()) : null,
        stub: fullMessage.messageStubType ?? null,
        stubParameters: fullMessage.messageStubParameters ?? [],
        key: fullMessage.key,
      };
    }
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const reply = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const rl = readline.createInterface({ input: process.stdin });
// Requests are handled strictly in order so replies match requests.
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let req;
    try {
      req = JSON.parse(line);
      reply({ id: req.id, ok: true, ...(await handle(req)) });
    } catch (e) {
      reply({ id: req?.id ?? null, ok: false, error: e?.name ?? 'Error', message: String(e?.message ?? e) });
    }
  });
});
