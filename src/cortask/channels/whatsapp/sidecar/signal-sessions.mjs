// One queue for every Signal session update, so that a reply and an incoming message of the same
// contact can never overwrite each other's session state.
//
// Why: Baileys rc14 guards session updates with transactions keyed by a JID string, and the two
// directions use different strings for the same contact. Decryption runs in a transaction keyed by
// the sender's LID; sending (relayMessage) wraps all its encryption in one transaction keyed by our
// own JID, committed only after the stanza is sent. Each transaction reads the whole session record
// once and writes the whole record back at its end, so when a contact writes while we reply, the
// later commit silently undoes the earlier one: a message counter is used twice (the contact's
// phone rejects the second message as a duplicate / bad MAC) or a receiving chain steps back.
//
// Baileys lets the application build its Signal repository (`makeSignalRepository`). We build
// Baileys' own repository, unchanged, over a key store whose transactions all run one at a time.
// Its reads and writes go straight to the durable store, so they are not captured (and held back)
// by the transaction relayMessage has open.
//
// One at a time, but without waiting for the disk in between (issue #18): a transaction's writes
// are handed to the store (which keeps them in order and shows them to the next reader at once),
// and the next transaction starts while they are being flushed; so a burst of messages shares
// flushes instead of queueing one flush each. Durability is unchanged where it shows: a
// transaction's result (a decrypted message, which Baileys then acknowledges to the server) is
// returned only once its keys are on disk, and a transaction that may send (encryption:
// relayMessage sends the stanza from inside it) first waits until everything written before it is
// on disk, so nothing leaves built on a key that could still be lost. The store keeps writes in
// order and fails every write after a failed one (and the sidecar stops on the first).
//
// And one more guard, for libsignal-node 6.0.0: to open a message it tries each session it holds
// with the contact in turn, on the live session objects. A session it tries and fails on has had
// its ratchet stepped all the same, and when a later one succeeds the whole record is stored,
// damaged session included. If that was our open session, our next reply is encrypted on a chain
// the contact never had and its phone rejects it ("bad MAC"). This happens whenever both sides
// started a session at once, e.g. a reply and a message that crossed right after a restart. So a
// message is tried against one session at a time, each alone in the record libsignal sees, and
// only the session that opened it is written back (as libsignal-java does with its copies).
import { AsyncLocalStorage } from 'node:async_hooks';
import { DEFAULT_CONNECTION_CONFIG } from 'baileys';

/** `store` ({get, set}) with transactions that never overlap. */
export function serializedKeyStore(store) {
  const context = new AsyncLocalStorage();
  const receiving = new AsyncLocalStorage(); // set while Baileys decrypts: nothing is sent from there
  let tail = Promise.resolve();
  const exclusive = (fn) => {
    const run = tail.then(fn);
    tail = run.catch(() => {});
    return run;
  };
  // The last write handed to the store: once it is on disk, so is every write before it (and it
  // fails when any before it failed).
  let written = Promise.resolve();
  const save = (data) => {
    written = store.set(data); // the request is sent before this returns: the order is fixed now
    return written;
  };

  return {
    isInTransaction: () => context.getStore() !== undefined,
    async get(type, ids) {
      const tx = context.getStore();
      if (!tx) return store.get(type, ids);
      const cached = (tx.cache[type] ??= {});
      const missing = ids.filter((id) => !(id in cached));
      if (missing.length) {
        const fetched = await store.get(type, missing);
        for (const id of missing) cached[id] = fetched[id] ?? null;
      }
      const out = {};
      for (const id of ids) if (cached[id] != null) out[id] = cached[id];
      if (type === 'session' && tx.trial) for (const id of Object.keys(out)) out[id] = tx.trial.narrow(id, out[id]);
      return out;
    },
    async set(data) {
      const tx = context.getStore();
      // A write outside a transaction still waits its turn, so it cannot land inside one.
      if (!tx) return (await exclusive(async () => ({ saved: save(data) }))).saved;
      if (data.session && tx.trial) data = { ...data, session: tx.trial.widen(data.session) };
      for (const type of Object.keys(data)) {
        Object.assign((tx.cache[type] ??= {}), data[type]);
        Object.assign((tx.writes[type] ??= {}), data[type]);
      }
    },
    // Keys name JIDs, and one session has several (PN and LID): so one queue for all, except
    // LIDMappingStore's writes ('lid-mapping'): they only store a PN<->LID pair, and a session
    // transaction may be waiting for exactly that lookup to finish (it shares in-flight lookups).
    async transaction(work, key) {
      if (context.getStore()) return work(); // nested: part of the open transaction
      const quiet = key === 'lid-mapping' || receiving.getStore() === true;
      const run = async () => {
        if (!quiet) await written; // it may send: only on keys that are on disk
        const tx = { cache: {}, writes: {} };
        const result = await context.run(tx, work);
        // All or nothing: a failed piece of work leaves the store untouched.
        return { result, saved: Object.keys(tx.writes).length ? save(tx.writes) : written };
      };
      const { result, saved } = await (key === 'lid-mapping' ? run() : exclusive(run));
      await saved; // the queue has moved on; the result waits for the disk
      return result;
    },
    /** `work` (a decryption) as receiving: its transactions do not wait for earlier writes. */
    receiving(work) {
      return receiving.run(true, work);
    },
    /** `work` (one decryption) against each stored session in turn, alone, until one opens it. */
    async tryEachSession(work, key) {
      return this.transaction(async () => {
        const tx = context.getStore();
        for (let index = 0; ; index++) {
          const trial = sessionTrial(index);
          tx.trial = trial;
          try {
            return await work();
          } catch (e) {
            // a failed attempt wrote nothing (libsignal stores a record only after success)
            if (index + 1 >= trial.sessions) throw e;
          } finally {
            tx.trial = undefined;
          }
        }
      }, key);
    },
  };
}

/** Attempt `index` of a decryption: libsignal sees only the index-th session of each record, in
 * its own order (most recently used first), and what it writes back replaces only that session. */
function sessionTrial(index) {
  const picked = new Map(); // record id -> { record, chosen }
  return {
    sessions: 1,
    narrow(id, record) {
      const names = Object.keys(record?._sessions ?? {});
      this.sessions = Math.max(this.sessions, names.length);
      if (names.length <= 1) return record;
      const used = (name) => record._sessions[name].indexInfo?.used || 0;
      const chosen = [...names].sort((a, b) => used(b) - used(a))[Math.min(index, names.length - 1)];
      picked.set(id, { record, chosen });
      return { ...record, _sessions: { [chosen]: record._sessions[chosen] } };
    },
    widen(sessions) {
      const out = {};
      for (const [id, value] of Object.entries(sessions)) {
        const pick = picked.get(id);
        out[id] = pick && value ? { ...pick.record, _sessions: { ...pick.record._sessions, ...value._sessions } } : value;
      }
      return out;
    },
  };
}

/** A `makeSignalRepository` for makeWASocket: Baileys' own repository over `store`, serialized. */
export function serializedSignalRepository(store) {
  const makeBaileysRepository = DEFAULT_CONNECTION_CONFIG.makeSignalRepository;
  return (auth, logger, pnToLID) => {
    const keys = serializedKeyStore(store);
    const repository = makeBaileysRepository({ creds: auth.creds, keys }, logger, pnToLID);
    const decrypt = repository.decryptMessage;
    // 'msg' is the case libsignal opens by trying sessions; a 'pkmsg' names its session.
    repository.decryptMessage = (args) =>
      keys.receiving(() => (args.type === 'msg' ? keys.tryEachSession(() => decrypt(args), args.jid) : decrypt(args)));
    for (const name of ['decryptGroupMessage', 'processSenderKeyDistributionMessage']) {
      const receive = repository[name];
      repository[name] = (args) => keys.receiving(() => receive(args));
    }
    return repository;
  };
}
