// RFC 9180 A.1.1 through seal.js with the vector's ephemeral key injected; prints every intermediate value.
"use strict";
const seal = require("../../app/static/seal.js");
const { hex, unhex, b64url, main } = require("./io.js");

main(async (v) => {
  const subtle = globalThis.crypto.subtle;
  const jwk = { kty: "OKP", crv: "X25519", x: b64url(v.pkEm) };
  const ephemeral = {
    privateKey: await subtle.importKey("jwk", { ...jwk, d: b64url(v.skEm) }, { name: "X25519" }, false, ["deriveBits"]),
    publicKey: await subtle.importKey("jwk", jwk, { name: "X25519" }, true, []),
  };
  const { enc, sharedSecret } = await seal._encap(unhex(v.pkRm), ephemeral);
  const schedule = await seal._keySchedule(sharedSecret, unhex(v.info));
  const ct = await seal._aesSeal(schedule.key, schedule.baseNonce, unhex(v.seq0.aad), unhex(v.seq0.pt));
  const sealed = await seal.seal(unhex(v.pkRm), unhex(v.info), unhex(v.seq0.pt), ephemeral);
  return {
    enc: hex(enc),
    shared_secret: hex(sharedSecret),
    key_schedule_context: hex(schedule.context),
    secret: hex(schedule.secret),
    key: hex(schedule.key),
    base_nonce: hex(schedule.baseNonce),
    seq0_ct: hex(ct),
    sealed: hex(sealed),
  };
});
