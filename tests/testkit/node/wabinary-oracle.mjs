// Baileys' own WABinary codec behind a JSON-lines pipe, for wasim's codec tests (tests/wasim/test_binary.py).
// One request per line on stdin, one reply per line on stdout, in order.
//
// A node is {tag, attrs: {k: "v"}, content: null | "text" | {"b64": "..."} | [node, ...]}.
// Requests (payload = frame payload as hex, flag byte first):
//   {"op":"encode", "node":N}   -> {"ok":true, "hex":...}                 encodeBinaryNode
//   {"op":"encode", "node":N, "decode":true} -> {"ok":true, "hex":..., "decoded": <decode reply for hex>}
//   {"op":"decode", "hex":H}    -> {"ok":true, "node":N, "used":U, "size":S}
//                                  decompressingIfRequired + decodeDecompressedBinaryNode; `used` of the
//                                  `size` bytes after the flag byte (and inflating) were read, because Baileys
//                                  ignores anything after the node.
//   {"op":"tokens"}             -> {"ok":true, "TAGS":..., "SINGLE_BYTE_TOKENS":..., "DOUBLE_BYTE_TOKENS":...}
//   {"op":"batch", "items":[request, ...]} -> {"ok":true, "items":[reply, ...]}   (one round trip for many)
// A request that throws replies {"ok":false, "error":"..."}.
import readline from 'node:readline';
import { decodeDecompressedBinaryNode, decompressingIfRequired, encodeBinaryNode } from 'baileys';
import * as constants from 'baileys/lib/WABinary/constants.js';

const fromJson = (j) => ({
  tag: j.tag,
  attrs: j.attrs ?? {},
  content:
    j.content === undefined || j.content === null ? undefined
    : typeof j.content === 'string' ? j.content
    : Array.isArray(j.content) ? j.content.map(fromJson)
    : Buffer.from(j.content.b64, 'base64'),
});

const toJson = (n) => ({
  tag: n.tag,
  attrs: n.attrs,
  content:
    n.content === undefined ? null
    : typeof n.content === 'string' ? n.content
    : Array.isArray(n.content) ? n.content.map(toJson)
    : { b64: Buffer.from(n.content).toString('base64') },
});

const handle = async (req) => {
  try {
    switch (req.op) {
      case 'encode': {
        const hex = encodeBinaryNode(fromJson(req.node)).toString('hex');
        return req.decode ? { ok: true, hex, decoded: await handle({ op: 'decode', hex }) } : { ok: true, hex };
      }
      case 'decode': {
        const body = await decompressingIfRequired(Buffer.from(req.hex, 'hex'));
        const indexRef = { index: 0 };
        const node = decodeDecompressedBinaryNode(body, constants, indexRef);
        return { ok: true, node: toJson(node), used: indexRef.index, size: body.length };
      }
      case 'tokens': {
        const { TAGS, SINGLE_BYTE_TOKENS, DOUBLE_BYTE_TOKENS } = constants;
        return { ok: true, TAGS, SINGLE_BYTE_TOKENS, DOUBLE_BYTE_TOKENS };
      }
      case 'batch': {
        const items = [];
        for (const item of req.items) items.push(await handle(item));
        return { ok: true, items };
      }
      default:
        return { ok: false, error: `unknown op ${req.op}` };
    }
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
};

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  let reply;
  try {
    reply = await handle(JSON.parse(line));
  } catch (e) {
    reply = { ok: false, error: `bad request: ${e}` };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
