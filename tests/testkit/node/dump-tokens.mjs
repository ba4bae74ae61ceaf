// Writes Baileys' WABinary tables (TAGS, SINGLE_BYTE_TOKENS, DOUBLE_BYTE_TOKENS) as JSON, for
// wasim's src/wasim/protocol/tokens.json. One token per line so a Baileys upgrade shows as a readable diff.
// usage: node dump-tokens.mjs [out.json]      (stdout when no path is given)
import fs from 'node:fs';
import { DOUBLE_BYTE_TOKENS, SINGLE_BYTE_TOKENS, TAGS } from 'baileys/lib/WABinary/constants.js';

const text = JSON.stringify({ TAGS, SINGLE_BYTE_TOKENS, DOUBLE_BYTE_TOKENS }, null, 1) + '\n';
if (process.argv[2]) fs.writeFileSync(process.argv[2], text);
else process.stdout.write(text);
