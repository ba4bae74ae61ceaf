// A libsignal-node oracle for wasim's Signal tests: one JSON object per line on stdin, one reply per
// line on stdout. It holds named parties (each an identity, a signed pre-key and one-time pre-keys)
// in memory, with a storage adapter that behaves like Baileys' (Signal/libsignal.js: every identity
// is trusted, the signed pre-key id in a pkmsg is ignored, sessions go through serialize/deserialize).
//
// Requests:  {"id":N,"op":OP,...}; binary values are base64 strings.
//   create       {name, preKeys?}                 -> {identityKey, registrationId}
//   bundle       {name, withPreKey?}              -> {bundle}  (takes the next unused one-time pre-key)
//   processBundle{name, peer, bundle}             -> {}        (SessionBuilder.initOutgoing)
//   encrypt      {name, peer, plaintext}          -> {type: "pkmsg"|"msg", body}
//   decrypt      {name, peer, type, body}         -> {plaintext}
//   session      {name, peer}                     -> {exists, open, count, pending}
//   hasPreKey    {name, keyId}                    -> {present}
//   verify       {publicKey, message, signature}  -> {valid}   (curve.verifySignature, really checking)
//   sign         {name, message}                  -> {signature} (with the party's identity key)
//   pad / unpad  {data}                           -> {data}    (Baileys' writeRandomPadMax16 / unpadRandomMax16)
// Replies:   {"id":N,"ok":true,...} or {"id":N,"ok":false,"error":NAME,"message":TEXT}
import readline from 'node:readline';
import libsignal from 'libsignal';

// libsignal logs with console.info/warn/error ("Closing session: ..."); stdout is our protocol.
for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

const b64 = (buf) => Buffer.from(buf).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64');
const parties = new Map();
let generics = null;

function party(name) {
  const p = parties.get(name);
  if (!p) throw new Error(`unknown party ${name}`);
  return p;
}

function createParty(name, preKeyCount) {
  const identity = libsignal.keyhelper.generateIdentityKeyPair();
  const p = {
    identity,
    registrationId: libsignal.keyhelper.generateRegistrationId(),
    signedPreKey: libsignal.keyhelper.generateSignedPreKey(identity, 1),
    preKeys: new Map(),
    nextBundlePreKey: 1,
    sessions: new Map(),
  };
  // Ids start at 1 like Baileys (creds.nextPreKeyId); libsignal treats pre-key id 0 as "none".
  for (let id = 1; id <= preKeyCount; id++) {
    p.preKeys.set(id, libsignal.keyhelper.generatePreKey(id).keyPair);
  }
  p.storage = {
    getOurIdentity: async () => p.identity,
    getOurRegistrationId: async () => p.registrationId,
    isTrustedIdentity: async () => true,
    loadPreKey: async (id) => p.preKeys.get(id),
    removePreKey: async (id) => { p.preKeys.delete(id); },
    loadSignedPreKey: async () => p.signedPreKey.keyPair,
    loadSession: async (addr) => {
      const data = p.sessions.get(addr);
      return data ? libsignal.SessionRecord.deserialize(data) : undefined;
    },
    storeSession: async (addr, record) => { p.sessions.set(addr, record.serialize()); },
  };
  parties.set(name, p);
  return p;
}

const address = (peer) => new libsignal.ProtocolAddress(peer, 0);

async function handle(req) {
  switch (req.op) {
    case 'create': {
      const p = createParty(req.name, req.preKeys ?? 5);
      return { identityKey: b64(p.identity.pubKey), registrationId: p.registrationId };
    }
    case 'bundle': {
      const p = party(req.name);
      const bundle = {
        registrationId: p.registrationId,
        identityKey: b64(p.identity.pubKey),
        signedPreKey: {
          keyId: p.signedPreKey.keyId,
          publicKey: b64(p.signedPreKey.keyPair.pubKey),
          signature: b64(p.signedPreKey.signature),
        },
      };
      if (req.withPreKey ?? true) {
        const keyId = p.nextBundlePreKey++;
        const pair = p.preKeys.get(keyId);
        if (!pair) throw new Error('out of one-time pre-keys');
        bundle.preKey = { keyId, publicKey: b64(pair.pubKey) };
      }
      return { bundle };
    }
    case 'processBundle': {
      const p = party(req.name);
      const b = req.bundle;
      const device = {
        registrationId: b.registrationId,
        identityKey: unb64(b.identityKey),
        signedPreKey: {
          keyId: b.signedPreKey.keyId,
          publicKey: unb64(b.signedPreKey.publicKey),
          signature: unb64(b.signedPreKey.signature),
        },
      };
      if (b.preKey) device.preKey = { keyId: b.preKey.keyId, publicKey: unb64(b.preKey.publicKey) };
      await new libsignal.SessionBuilder(p.storage, address(req.peer)).initOutgoing(device);
      return {};
    }
    case 'encrypt': {
      const p = party(req.name);
      const cipher = new libsignal.SessionCipher(p.storage, address(req.peer));
      const { type, body } = await cipher.encrypt(unb64(req.plaintext));
      return { type: type === 3 ? 'pkmsg' : 'msg', body: b64(body) };
    }
    case 'decrypt': {
      const p = party(req.name);
      const cipher = new libsignal.SessionCipher(p.storage, address(req.peer));
      const body = unb64(req.body);
      const plaintext = req.type === 'pkmsg'
        ? await cipher.decryptPreKeyWhisperMessage(body)
        : await cipher.decryptWhisperMessage(body);
      return { plaintext: b64(plaintext) };
    }
    case 'session': {
      const p = party(req.name);
      const data = p.sessions.get(address(req.peer).toString());
      if (!data) return { exists: false, open: false, count: 0, pending: false };
      const record = libsignal.SessionRecord.deserialize(data);
      const open = record.getOpenSession();
      return {
        exists: true,
        open: Boolean(open),
        count: Object.keys(record.sessions).length,
        pending: Boolean(open && open.pendingPreKey),
      };
    }
    case 'hasPreKey':
      return { present: party(req.name).preKeys.has(req.keyId) };
    case 'verify': {
      const valid = libsignal.curve.verifySignature(
        unb64(req.publicKey), unb64(req.message), unb64(req.signature), false);
      return { valid: Boolean(valid) };
    }
    case 'sign':
      return { signature: b64(libsignal.curve.calculateSignature(party(req.name).identity.privKey,
                                                                  unb64(req.message))) };
    case 'pad':
    case 'unpad': {
      // Imported lazily: Baileys' generics pull in WAProto, which is slow to load.
      generics ??= await import('baileys/lib/Utils/generics.js');
      const data = unb64(req.data);
      const out = req.op === 'pad' ? generics.writeRandomPadMax16(data) : generics.unpadRandomMax16(data);
      return { data: b64(out) };
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
