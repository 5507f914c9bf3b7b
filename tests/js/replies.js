// Runs one of replies.js's functions on the JSON it is given, with seal.js where the page has it.
"use strict";
globalThis.PapillonSeal = require("../../app/static/seal.js");
const replies = require("../../app/static/replies.js");
const seal = globalThis.PapillonSeal;
const { hex, main } = require("./io.js");

const attempt = async (run) => {
  try {
    return { ok: await run() };
  } catch (error) {
    return { error: String(error && error.message) };
  }
};

const derived = async (code) => {
  const keys = await replies.derive(code);
  return { lookup: keys.lookup, public_key: hex(keys.publicKey), member: keys.member };
};

const commands = {
  derive: ({ codes }) => Promise.all(codes.map(derived)),
  normalize: ({ inputs }) => inputs.map((text) => {
    try {
      return replies.normalize(text);
    } catch {
      return null;
    }
  }),
  shown: ({ codes }) => codes.map(replies.shown),
  new_codes: ({ count }) => Array.from({ length: count }, replies.newCode),
  alphabet: () => replies.ALPHABET,
  open: async ({ code, sealed }) => {
    const keys = await replies.derive(code);
    return Promise.all(sealed.map((s) => attempt(() => replies.openReply(keys, s))));
  },
  extractable: async ({ code }) => {
    const keys = await replies.derive(code);
    return { extractable: keys.privateKey.extractable, usages: keys.privateKey.usages };
  },
  envelope: async ({ config, answers, code }) => {
    const reply = code === null ? null : (await replies.derive(code)).member;
    return {
      member: reply,
      envelope: await seal.buildEnvelope(config, answers, reply),
      plaintext: hex(seal.plaintext(config, answers, reply)),
    };
  },
};

main((input) => commands[input.command](input));
