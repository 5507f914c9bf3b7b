// Seals the answers in the browser with HPKE (RFC 9180): DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, AES-128-GCM, base mode. WebCrypto only; papillon/envelope.py opens the result.
"use strict";
(() => {
  const subtle = () => globalThis.crypto.subtle;
  const utf8 = (s) => new TextEncoder().encode(s);
  const EMPTY = new Uint8Array(0);
  const V1 = utf8("HPKE-v1");
  const KEM = concat(utf8("KEM"), [0, 0x20]);
  const SUITE = concat(utf8("HPKE"), [0, 0x20, 0, 1, 0, 1]);
  const X25519 = { name: "X25519" };

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function toB64(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }

  const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

  async function hmac(key, data) {
    // WebCrypto refuses an empty HMAC key; HMAC pads keys with zeros, so HashLen zeros is the same key.
    const k = await subtle().importKey("raw", key.length ? key : new Uint8Array(32),
      { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await subtle().sign("HMAC", k, data));
  }

  const labeledExtract = (suite, salt, label, ikm) => hmac(salt, concat(V1, suite, utf8(label), ikm));

  async function labeledExpand(suite, prk, label, info, length) {
    const data = concat([length >> 8, length & 255], V1, suite, utf8(label), info);
    let block = EMPTY;
    let out = EMPTY;
    for (let i = 1; out.length < length; i++) {
      block = await hmac(prk, concat(block, data, [i]));
      out = concat(out, block);
    }
    return out.slice(0, length);
  }

  async function encap(publicKeyRaw, ephemeral) {
    const eph = ephemeral || (await subtle().generateKey(X25519, false, ["deriveBits"]));
    const pkR = await subtle().importKey("raw", publicKeyRaw, X25519, false, []);
    const dh = new Uint8Array(await subtle().deriveBits({ name: "X25519", public: pkR }, eph.privateKey, 256));
    const enc = new Uint8Array(await subtle().exportKey("raw", eph.publicKey));
    return { enc, sharedSecret: await kemSecret(dh, enc, publicKeyRaw) };
  }

  // Encap's end and Decap's (in replies.js).
  async function kemSecret(dh, enc, publicKeyRaw) {
    if (dh.every((b) => b === 0)) throw new Error("invalid key");
    const prk = await labeledExtract(KEM, EMPTY, "eae_prk", dh);
    return labeledExpand(KEM, prk, "shared_secret", concat(enc, publicKeyRaw), 32);
  }

  async function keySchedule(sharedSecret, info) {
    const context = concat([0],
      await labeledExtract(SUITE, EMPTY, "psk_id_hash", EMPTY),
      await labeledExtract(SUITE, EMPTY, "info_hash", info));
    const secret = await labeledExtract(SUITE, sharedSecret, "secret", EMPTY);
    return {
      context,
      secret,
      key: await labeledExpand(SUITE, secret, "key", context, 16),
      baseNonce: await labeledExpand(SUITE, secret, "base_nonce", context, 12),
    };
  }

  async function aesSeal(key, nonce, aad, plaintext) {
    const k = await subtle().importKey("raw", key, "AES-GCM", false, ["encrypt"]);
    return new Uint8Array(await subtle().encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, k, plaintext));
  }

  // Single shot: one message at sequence 0, so the nonce is the base nonce. The aad stays empty
  // because `info` already binds the envelope to its campaign and form.
  async function seal(publicKeyRaw, info, plaintext, ephemeral) {
    const { enc, sharedSecret } = await encap(publicKeyRaw, ephemeral);
    const { key, baseNonce } = await keySchedule(sharedSecret, info);
    return concat(enc, await aesSeal(key, baseNonce, EMPTY, plaintext));
  }

  // Trailing spaces are JSON white space, so padding needs no length field.
  function pad(bytes, block) {
    const out = new Uint8Array(Math.max(1, Math.ceil(bytes.length / block)) * block).fill(0x20);
    out.set(bytes);
    return out;
  }

  // No reply member (papillon.replies) when null: JSON.stringify drops an undefined one.
  const plaintext = (config, answers, reply) =>
    pad(utf8(JSON.stringify({ answers, form_version: config.form_version, locale: config.locale,
      reply: reply || undefined })), config.pad_block || 512);

  async function buildEnvelope(config, answers, reply) {
    if (!config.keys || !config.keys.length) throw new Error("no organizer key");
    const data = plaintext(config, answers, reply);
    const info = utf8(config.info);
    const recipients = [];
    for (const k of config.keys) {
      recipients.push({ key_id: k.key_id, sealed: toB64(await seal(fromB64(k.public_key), info, data)) });
    }
    return JSON.stringify({ version: config.version, recipients });
  }

  // A proof of work, asked only of visitors who share one address (an onion service): the first nonce
  // whose PBKDF2-HMAC-SHA256(challenge, nonce) starts with `bits` zero bits. app/pow.py checks it.
  function zeroBits(bytes) {
    let n = 0;
    for (const b of bytes) {
      if (b) return n + Math.clz32(b) - 24;
      n += 8;
    }
    return n;
  }

  async function solvePow({ challenge, bits, iterations }) {
    const key = await subtle().importKey("raw", fromB64(challenge), "PBKDF2", false, ["deriveBits"]);
    for (let nonce = 0; ; nonce++) {
      const params = { name: "PBKDF2", hash: "SHA-256", salt: utf8(String(nonce)), iterations };
      if (zeroBits(new Uint8Array(await subtle().deriveBits(params, key, 256))) >= bits) return String(nonce);
    }
  }

  async function supportsX25519() {
    try {
      const pair = await subtle().generateKey(X25519, false, ["deriveBits"]);
      await subtle().deriveBits({ name: "X25519", public: pair.publicKey }, pair.privateKey, 256);
      return true;
    } catch {
      return false;
    }
  }

  // Controls are read through querySelectorAll and attributes through getAttribute because a
  // control named like a form property (a field called "action") shadows that property.
  const controlsNamed = (form, name) => Array.from(form.querySelectorAll("[name]")).filter((el) => el.name === name);

  // The same shape as AnswersForm.answers() on the server: text trimmed with LF line breaks.
  function collect(form, fields) {
    const answers = {};
    for (const { name, type } of fields) {
      const controls = controlsNamed(form, name);
      const checked = controls.filter((el) => el.checked).map((el) => el.value);
      if (type === "consent") answers[name] = controls.some((el) => el.checked);
      else if (type === "multiple_choice") answers[name] = checked;
      // An optional question's "No answer" option has the value "": the same answer as none ticked.
      else if (type === "single_choice") answers[name] = checked[0] || "";
      else answers[name] = (controls[0] ? controls[0].value : "").replace(/\r\n?/g, "\n").trim();
    }
    return answers;
  }

  // The browser's own check speaks the browser's language: give it the page's words, the server's own.
  function explain(form, checks) {
    form.addEventListener("invalid", (event) => {
      const control = event.target;
      const said = checks[control.name];
      if (!said) return;
      control.setCustomValidity("");
      const v = control.validity;
      const text = v.valueMissing ? said.missing : v.tooLong ? said.long
        : (v.typeMismatch || v.patternMismatch) ? said.pattern : null;
      if (text) control.setCustomValidity(text);
    }, true);
    form.addEventListener("input", (event) => {
      for (const control of controlsNamed(form, event.target.name)) {
        if (typeof control.setCustomValidity === "function") control.setCustomValidity("");
      }
    });
  }

  // Waits before each new try after a network error or a 503: about seven seconds in all, then the page says so.
  const RETRIES = [500, 1500, 5000];

  function enhance(form, status) {
    const config = JSON.parse(form.getAttribute("data-seal"));
    const value = (name) => (controlsNamed(form, name)[0] || { value: "" }).value;
    // The page's one line on sealing, beside the button: the promise while all is well, boxed when it is a problem.
    const say = (text, error) => {
      status.textContent = text;
      for (const name of ["notice", "error"]) status.classList.toggle(name, !!error);
      status.hidden = false;
    };
    const buttons = (disabled) => {
      for (const b of form.querySelectorAll("[type=submit]")) b.disabled = disabled;
    };
    // An error takes the focus, so a screen reader reads it out and the person knows where they are.
    const fail = (message) => {
      say(message, true);
      buttons(false);
      if (typeof status.focus === "function") status.focus();
    };
    const text = config.messages;
    explain(form, config.checks || {});
    let sealed = null;
    // With JavaScript on, this is all the page says about sealing (without it, the noscript note says it instead).
    say(text.ready);
    // Started at once: by the time a person has written their answers, the check is long done.
    const stamp = config.pow ? solvePow(config.pow) : null;
    let stamped = false;
    if (stamp) stamp.then(() => { stamped = true; }, () => {});

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!form.checkValidity()) {
        form.reportValidity();
        return;
      }
      buttons(true);
      say(text.sealing);
      const answers = collect(form, config.fields);
      const replies = globalThis.PapillonReplies;
      // The same answers sent again travel in the same envelope, so the server can tell a retry from a change.
      try {
        const member = replies && (await replies.member(form));
        const typed = JSON.stringify([answers, member]);
        if (!sealed || sealed.typed !== typed) {
          sealed = { typed, envelope: await buildEnvelope(config, answers, member) };
        }
      } catch {
        // Fail closed: once sealing was promised, the typed answers are never sent as they are.
        return fail(text.cannot_seal);
      }
      const envelope = sealed.envelope;
      const body = new URLSearchParams({
        csrf_token: value("csrf_token"),
        submission_id: value("submission_id"),
        envelope,
        [config.honeypot]: value(config.honeypot),
      });
      if (stamp) {
        if (!stamped) say(text.checking);
        try {
          body.set("pow", await stamp);
        } catch {
          return fail(text.check_failed);
        }
      }
      // A lost connection or a busy server is tried again with the very same id and envelope: stored once.
      for (let attempt = 0; ; attempt++) {
        let response = null;
        try {
          response = await fetch(form.getAttribute("action"), {
            method: "POST", body, headers: { Accept: "application/json" }, credentials: "same-origin",
          });
        } catch {}
        // Asked for JSON, the server answers a stored record with the thank-you page's address.
        const reply = response ? await response.json().catch(() => ({})) : {};
        if (response && response.ok && typeof reply.thanks === "string") {
          // replies.js may show the reply code here instead.
          if (replies && replies.stored(form)) return;
          return location.assign(reply.thanks);
        }
        const error = typeof reply.error === "string" && reply.error ? reply.error : null;
        if ((response && response.status !== 503) || attempt === RETRIES.length) {
          return fail(error || (response ? text.not_stored : text.network));
        }
        say(text.retrying);
        await new Promise((resolve) => setTimeout(resolve, RETRIES[attempt]));
      }
    });
  }

  const api = { seal, pad, plaintext, buildEnvelope, supportsX25519, collect, solvePow, zeroBits,
    _encap: encap, _kemSecret: kemSecret, _keySchedule: keySchedule, _aesSeal: aesSeal };

  if (typeof document !== "undefined") {
    const form = document.querySelector("form[data-seal]");
    const status = document.getElementById("seal-status");
    if (form && status) {
      // Until the check answers, a submit would leave as a plain post: hold it back for those moments.
      const hold = (event) => event.preventDefault();
      form.addEventListener("submit", hold);
      supportsX25519().then((ok) => {
        form.removeEventListener("submit", hold);
        if (ok) enhance(form, status);
        else {
          status.textContent = JSON.parse(form.getAttribute("data-seal")).messages.unsupported;
          status.hidden = false;
        }
      });
    }
  }

  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else globalThis.PapillonSeal = api;
})();
