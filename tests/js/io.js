// Shared by the harness scripts: JSON in on stdin, JSON out on stdout, hex and base64 helpers, and a WebCrypto
// without X25519.
"use strict";

if (!globalThis.crypto || !globalThis.crypto.subtle) {
  process.stderr.write("this node has no globalThis.crypto.subtle; node 20 or later is required\n");
  process.exit(2);
}

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));
const b64url = (text) => Buffer.from(text, "hex").toString("base64url");

async function readInput() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function main(run) {
  readInput()
    .then(run)
    .then((result) => process.stdout.write(JSON.stringify(result)))
    .catch((error) => {
      process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
      process.exit(1);
    });
}

// What a browser without WebCrypto X25519 does: refuse the algorithm, keep the rest.
function removeX25519(subtle) {
  const isX25519 = (algorithm) => (typeof algorithm === "string" ? algorithm : algorithm.name) === "X25519";
  const refuse = () => Promise.reject(new DOMException("Unrecognized algorithm name", "NotSupportedError"));
  const { generateKey, importKey, deriveBits } = subtle;
  subtle.generateKey = (alg, ...rest) => (isX25519(alg) ? refuse() : generateKey.call(subtle, alg, ...rest));
  subtle.importKey = (format, data, alg, ...rest) =>
    isX25519(alg) ? refuse() : importKey.call(subtle, format, data, alg, ...rest);
  subtle.deriveBits = (alg, ...rest) => (isX25519(alg) ? refuse() : deriveBits.call(subtle, alg, ...rest));
}

module.exports = { hex, unhex, b64url, main, removeX25519 };
