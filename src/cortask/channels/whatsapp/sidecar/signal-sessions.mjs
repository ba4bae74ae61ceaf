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
// Baileys' own repository, unchanged, over a key store whose transactions all run one at a time
// and commit before the next one starts. Its reads and writes go straight to the durable store, so
// they are not captured (and held back) by the transaction relayMessage has open.
import { AsyncLocalStorage } from 'node:async_hooks';
import { DEFAULT_CONNECTION_CONFIG } from 'baileys';

/** `store` ({get, set}) with transactions that never overlap. */
export function serializedKeyStore(store) {
  const context = new AsyncLocalStorage();
  let tail = Promise.resolve();
  const exclusive = (fn) => {
    const run = tail.then(fn);
    tail = run.catch(() => {});
    return run;
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
      return out;
    },
    async set(data) {
      const tx = context.getStore();
      // A write outside a transaction still waits its turn, so it cannot land inside one.
      if (!tx) return exclusive(() => store.set(data));
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
      const run = async () => {
        const tx = { cache: {}, writes: {} };
        const result = await context.run(tx, work);
        // All or nothing: a failed piece of work leaves the store untouched.
        if (Object.keys(tx.writes).length) await store.set(tx.writes);
        return result;
      };
      return key === 'lid-mapping' ? run() : exclusive(run);
    },
  };
}

/** A `makeSignalRepository` for makeWASocket: Baileys' own repository over `store`, serialized. */
export function serializedSignalRepository(store) {
  const makeBaileysRepository = DEFAULT_CONNECTION_CONFIG.makeSignalRepository;
  return (auth, logger, pnToLID) => makeBaileysRepository({ creds: auth.creds, keys: serializedKeyStore(store) }, logger, pnToLID);
}
