"""The sidecar's serialized key store (sidecar/signal-sessions.mjs), on an in-memory store in Node:
the transaction rules the burst fix (issue #4) relies on. End to end: test_channel_burst.py."""

from __future__ import annotations

import json
import subprocess

import pytest
from testkit.paths import SIDECAR_DIR

pytestmark = pytest.mark.e2e

MODULE = SIDECAR_DIR / "signal-sessions.mjs"

SCRIPT = """
import { serializedKeyStore } from %(module)s;
const tick = () => new Promise((r) => setTimeout(r, 5));
function memoryStore() {
  const data = {};
  const store = {
    sets: [],
    async get(type, ids) {
      await tick();
      const out = {};
      for (const id of ids) out[id] = data[type]?.[id];
      return out;
    },
    async set(batch) {
      await tick();
      store.sets.push(JSON.parse(JSON.stringify(batch)));
      for (const [type, values] of Object.entries(batch)) Object.assign((data[type] ??= {}), values);
    },
    data,
  };
  return store;
}
const results = {};

// Two read-modify-writes of one session under different keys (a LID and a PN, as Baileys does).
{
  const store = memoryStore();
  const keys = serializedKeyStore(store);
  const bump = (key) => keys.transaction(async () => {
    const { s } = await keys.get('session', ['s']);
    await tick();
    await keys.set({ session: { s: (s ?? 0) + 1 } });
  }, key);
  await Promise.all([bump('1@lid'), bump('1@s.whatsapp.net'), bump('me@s.whatsapp.net')]);
  results.counter = store.data.session.s;
}

// Work that fails writes nothing, and the queue goes on.
{
  const store = memoryStore();
  const keys = serializedKeyStore(store);
  const failed = keys.transaction(async () => {
    await keys.set({ session: { s: 'half done' } });
    throw new Error('bad MAC');
  }, 'x').catch((e) => e.message);
  const next = keys.transaction(async () => keys.set({ session: { t: 1 } }), 'y');
  results.failure = { error: await failed, after: await next, data: store.data };
}

// A nested transaction is part of the outer one: one commit, both writes, reads see writes.
{
  const store = memoryStore();
  const keys = serializedKeyStore(store);
  await keys.transaction(async () => {
    await keys.set({ session: { a: 1 } });
    await keys.transaction(async () => keys.set({ 'pre-key': { 7: null }, session: { b: 2 } }), 'inner');
    results.nestedRead = await keys.get('session', ['a', 'b', 'missing']);
    results.inTransaction = keys.isInTransaction();
  }, 'outer');
  results.nestedSets = store.sets;
  results.outside = keys.isInTransaction();
}

// A write outside any transaction waits for the running one instead of landing inside it.
{
  const store = memoryStore();
  const keys = serializedKeyStore(store);
  const tx = keys.transaction(async () => {
    const { s } = await keys.get('session', ['s']);
    await tick(); await tick();
    await keys.set({ session: { s: (s ?? 0) + 1 } });
  }, 'k');
  await tick();
  const direct = keys.set({ session: { s: 100 } });
  await Promise.all([tx, direct]);
  results.directAfter = store.data.session.s;
}

// A session transaction waiting on a LID lookup whose 'lid-mapping' write is still to come.
{
  const store = memoryStore();
  const keys = serializedKeyStore(store);
  let lookupDone;
  const lookup = new Promise((r) => { lookupDone = r; });
  const session = keys.transaction(async () => { await lookup; await keys.set({ session: { s: 1 } }); }, '1@lid');
  await tick();
  await keys.transaction(async () => keys.set({ 'lid-mapping': { 49: '1' } }), 'lid-mapping');
  lookupDone();
  await session;
  results.lidMapping = store.data;
}
process.stdout.write(JSON.stringify(results));
"""


@pytest.fixture(scope="module")
def results() -> dict[str, object]:
    script = SCRIPT % {"module": json.dumps(MODULE.as_uri())}
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, cwd=MODULE.parent
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout)
    return out


def test_concurrent_updates_of_one_session_under_different_keys_all_count(results: dict[str, object]) -> None:
    assert results["counter"] == 3


def test_failed_work_writes_nothing_and_the_next_transaction_still_runs(results: dict[str, object]) -> None:
    assert results["failure"] == {"error": "bad MAC", "data": {"session": {"t": 1}}}


def test_a_nested_transaction_commits_once_with_the_outer_one(results: dict[str, object]) -> None:
    assert results["nestedRead"] == {"a": 1, "b": 2}
    assert results["inTransaction"] is True and results["outside"] is False
    assert results["nestedSets"] == [{"session": {"a": 1, "b": 2}, "pre-key": {"7": None}}]


def test_a_write_outside_a_transaction_waits_for_the_running_one(results: dict[str, object]) -> None:
    assert results["directAfter"] == 100


def test_a_lid_mapping_write_does_not_wait_behind_a_session_transaction(results: dict[str, object]) -> None:
    assert results["lidMapping"] == {"lid-mapping": {"49": "1"}, "session": {"s": 1}}


# Two parties, each with Baileys' own Signal repository (real libsignal): "us" through
# serializedSignalRepository, the contact over a plain in-memory store. Both start a session at
# once (their first messages cross), so we hold two sessions with the contact. The contact then
# writes on the older one; libsignal tries our newest session first, steps its ratchet, fails,
# and (unguarded) stores that damaged session with the good one: our next reply is encrypted on it
# and the contact's phone cannot open it ("bad MAC"), as seen in the kill loop.
CROSSING = """
import { initAuthCreds, Curve, generateSignalPubKey, DEFAULT_CONNECTION_CONFIG } from 'baileys';
import { serializedSignalRepository } from %(module)s;
const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };
console.info = console.warn = console.error = () => {}; // libsignal narrates every session change
function party(wrap) {
  const data = {};
  const store = {
    async get(type, ids) { const out = {}; for (const id of ids) out[id] = data[type]?.[id]; return out; },
    async set(batch) { for (const [t, v] of Object.entries(batch)) Object.assign((data[t] ??= {}), v); },
    // the contact's side: no transactions needed, everything here runs one step at a time
    async transaction(work) { return work(); },
    isInTransaction: () => false,
  };
  const creds = initAuthCreds();
  const preKey = Curve.generateKeyPair();
  data['pre-key'] = { 1: preKey };
  const bundle = {
    registrationId: creds.registrationId,
    identityKey: generateSignalPubKey(creds.signedIdentityKey.public),
    signedPreKey: {
      keyId: creds.signedPreKey.keyId,
      publicKey: generateSignalPubKey(creds.signedPreKey.keyPair.public),
      signature: creds.signedPreKey.signature,
    },
    preKey: { keyId: 1, publicKey: generateSignalPubKey(preKey.public) },
  };
  const repo = wrap
    ? serializedSignalRepository(store)({ creds, keys: store }, silent, async () => [])
    : DEFAULT_CONNECTION_CONFIG.makeSignalRepository({ creds, keys: store }, silent, async () => []);
  return { repo, bundle, data };
}
const US = '491511111111@s.whatsapp.net', CONTACT = '491522222222@s.whatsapp.net';
const results = {};
{
  const us = party(true), contact = party(false);
  const text = (s) => Buffer.from(s);
  const read = (b) => Buffer.from(b).toString();
  const open = (repo, jid, m) => repo.decryptMessage({ jid, type: m.type, ciphertext: Buffer.from(m.ciphertext) });
  // Both fetch the other's bundle before either message arrives: the first messages cross.
  await us.repo.injectE2ESession({ jid: CONTACT, session: contact.bundle });
  await contact.repo.injectE2ESession({ jid: US, session: us.bundle });
  const fromUs = await us.repo.encryptMessage({ jid: CONTACT, data: text('hello from us') });
  const fromContact = await contact.repo.encryptMessage({ jid: US, data: text('hello from the contact') });
  const got = {};
  got.first = read(await open(us.repo, CONTACT, fromContact));
  got.firstAtContact = read(await open(contact.repo, US, fromUs));
  // The contact writes again, on its open session (the one we started).
  const second = await contact.repo.encryptMessage({ jid: US, data: text('second') });
  got.second = read(await open(us.repo, CONTACT, second));
  // Our reply must open at the contact.
  const reply = await us.repo.encryptMessage({ jid: CONTACT, data: text('reply') });
  try {
    got.reply = read(await open(contact.repo, US, reply));
  } catch (e) { got.reply = `failed: ${e.message}`; }
  const record = Object.values(us.data.session)[0];
  got.sessions = Object.keys(record._sessions).length;
  results.crossing = got;
}
process.stdout.write(JSON.stringify(results));
"""


def test_a_failed_decryption_attempt_leaves_our_other_sessions_as_they_were() -> None:
    script = CROSSING % {"module": json.dumps(MODULE.as_uri())}
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, cwd=MODULE.parent
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)["crossing"]
    assert got["first"] == "hello from the contact" and got["firstAtContact"] == "hello from us"
    assert got["second"] == "second"
    assert got["sessions"] == 2  # the crossing really left us two sessions to choose from
    assert got["reply"] == "reply"
