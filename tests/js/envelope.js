// Runs one of seal.js's pure functions on the JSON it is given.
"use strict";
const seal = require("../../app/static/seal.js");
const { hex, unhex, main } = require("./io.js");

const commands = {
  envelope: ({ config, answers }) => seal.buildEnvelope(config, answers),
  seal: async ({ public_key, info, plaintext }) =>
    hex(await seal.seal(unhex(public_key), unhex(info), unhex(plaintext))),
  pad: ({ lengths, block }) => lengths.map((n) => hex(seal.pad(new Uint8Array(n).fill(0x41), block))),
  supports: () => seal.supportsX25519(),
  pow: async ({ pow }) => {
    const started = performance.now();
    const nonce = await seal.solvePow(pow);
    return { nonce, ms: performance.now() - started };
  },
  zero_bits: ({ digests }) => digests.map((d) => seal.zeroBits(unhex(d))),
};

main((input) => commands[input.command](input));
