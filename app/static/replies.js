// Anonymous replies in the browser: the reply code a witness keeps, what it derives (HKDF-SHA256, X25519),
// and the replies sealed to it (HPKE, as seal.js). WebCrypto only; papillon/replies.py holds the same format.
"use strict";
(() => {
  const subtle = () => globalThis.crypto.subtle;
  const sealjs = () => globalThis.PapillonSeal;
  const utf8 = (s) => new TextEncoder().encode(s);
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const toB64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const X25519 = { name: "X25519" };
  const byId = (id) => document.getElementById(id);

  // Crockford's base32.
  const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const LENGTH = 28;
  const SALT = "papillon/v1/reply-code";
  // PKCS#8 for an X25519 private key, all but its 32 bytes.
  const PKCS8 = [48, 46, 2, 1, 0, 48, 5, 6, 3, 43, 101, 110, 4, 34, 4, 32];
  const BASE_POINT = Uint8Array.of(9, ...new Uint8Array(31));

  // 256 is a multiple of 32, so the low five bits of a random byte are an unbiased symbol.
  const newCode = () =>
    Array.from(globalThis.crypto.getRandomValues(new Uint8Array(LENGTH)), (b) => ALPHABET[b & 31]).join("");

  // As papillon.replies.normalize: Python's \s is JavaScript's without U+FEFF, with U+001C-U+001F and U+0085.
  function normalize(text) {
    const code = String(text).replace(/[^\S\ufeff]|[\x1c-\x1f\x85_.-]/g, "").toUpperCase()
      .replace(/O/g, "0").replace(/[IL]/g, "1");
    if (!/^[0-9A-HJKMNP-TV-Z]{28}$/.test(code)) throw new Error("not a reply code");
    return code;
  }

  const shown = (code) => normalize(code).match(/.{4}/g).join("-");

  async function derive(code) {
    const ikm = await subtle().importKey("raw", utf8(normalize(code)), "HKDF", false, ["deriveBits"]);
    const hkdf = async (label, bits) => new Uint8Array(await subtle().deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: utf8(SALT), info: utf8(`${SALT}/${label}`) }, ikm, bits));
    const lookup = hex(await hkdf("lookup", 128));
    const pkcs8 = Uint8Array.of(...PKCS8, ...(await hkdf("x25519", 256)));
    const privateKey = await subtle().importKey("pkcs8", pkcs8, X25519, false, ["deriveBits"]);
    // X25519 with the base point is the public key: the private key never needs to leave WebCrypto.
    const publicKey = await dh(privateKey, BASE_POINT);
    return { lookup, privateKey, publicKey, member: { lookup, public_key: toB64(publicKey) } };
  }

  async function dh(privateKey, raw) {
    const key = await subtle().importKey("raw", raw, X25519, false, []);
    return new Uint8Array(await subtle().deriveBits({ name: "X25519", public: key }, privateKey, 256));
  }

  // HPKE base mode open (RFC 9180) of enc || ciphertext+tag, bound to the lookup id by its info.
  async function openReply(keys, sealed) {
    const raw = fromB64(sealed);
    const enc = raw.slice(0, 32);
    const secret = await sealjs()._kemSecret(await dh(keys.privateKey, enc), enc, keys.publicKey);
    const { key, baseNonce } = await sealjs()._keySchedule(secret, utf8(`papillon/v1/reply/${keys.lookup}`));
    const aes = await subtle().importKey("raw", key, "AES-GCM", false, ["decrypt"]);
    const data = await subtle().decrypt({ name: "AES-GCM", iv: baseNonce }, aes, raw.slice(32));
    // The space padding is JSON white space.
    const { message, written_on } = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
    if (typeof message !== "string" || typeof written_on !== "string") throw new Error("no message");
    return { message, written_on };
  }

  const controlsNamed = (form, name) => Array.from(form.querySelectorAll("[name]")).filter((el) => el.name === name);
  const isFollowUp = (form) => form.getAttribute("id") === "follow-up-form";

  // The testimony's code: made at the first ticked submit, so a retry seals the same one; kept in memory only.
  let code = null;
  let keys = null;
  let sealedCode = false;
  // The follow-up answers the code looked up last.
  let lookedUp = null;

  async function member(form) {
    if (isFollowUp(form)) {
      const hidden = controlsNamed(form, "code")[0];
      if (!lookedUp && !hidden) throw new Error("no reply code looked up");
      return (lookedUp || (await derive(hidden.value))).member;
    }
    // Never seal a code the page could not show.
    const box = byId("reply-choice");
    sealedCode = !!(box && box.checked && byId("reply-thanks") && byId("reply-code"));
    if (!sealedCode) return null;
    keys = keys || derive((code = code || newCode()));
    return (await keys).member;
  }

  // After the server stored the testimony: the one time the code is ever shown.
  function stored(form) {
    if (isFollowUp(form) || !sealedCode) return false;
    const section = byId("reply-thanks");
    const main = section.closest("main") || section.parentElement;
    for (const child of main.children) if (!child.contains(section)) child.hidden = true;
    byId("reply-code").textContent = shown(code);
    section.hidden = false;
    document.title = section.getAttribute("data-title") || document.title;
    section.focus();
    return true;
  }

  function reply({ message, written_on }) {
    const item = document.createElement("li");
    const on = document.createElement("p");
    const time = document.createElement("time");
    const text = document.createElement("p");
    on.className = "written-on";
    time.dateTime = time.textContent = written_on;
    text.className = "message";
    text.textContent = message;
    on.append(time);
    item.append(on, text);
    return item;
  }

  function enhance(form, status) {
    const text = JSON.parse(form.getAttribute("data-replies")).messages;
    const [found, list, none, followUp] = ["replies-found", "reply-list", "no-replies", "follow-up-form"].map(byId);
    const say = (message, error) => {
      status.textContent = message;
      for (const name of ["notice", "error"]) status.classList.toggle(name, !!error);
      status.hidden = false;
    };
    const buttons = (disabled) => {
      for (const b of form.querySelectorAll("[type=submit]")) b.disabled = disabled;
    };
    const fail = (message) => {
      say(message, true);
      buttons(false);
      status.focus();
    };
    const show = (on) => {
      for (const el of [found, followUp]) if (el) el.hidden = !on;
    };

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      lookedUp = null;
      show(false);
      let typed;
      try {
        typed = normalize((controlsNamed(form, "code")[0] || { value: "" }).value);
      } catch {
        return fail(text.bad_code);
      }
      buttons(true);
      say(text.reading);
      let derived;
      let response = null;
      try {
        derived = await derive(typed);
        // Only the lookup id leaves the browser, never the code.
        const csrf = (controlsNamed(form, "csrf_token")[0] || { value: "" }).value;
        response = await fetch(form.getAttribute("action"), {
          method: "POST",
          body: new URLSearchParams({ csrf_token: csrf, lookup: derived.lookup }),
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
      } catch {}
      const answer = response ? await response.json().catch(() => ({})) : {};
      if (!response || !response.ok || !Array.isArray(answer.replies)) {
        return fail(typeof answer.error === "string" && answer.error ? answer.error : text.failed);
      }
      const opened = [];
      let broken = false;
      for (const sealed of answer.replies) {
        try {
          opened.push(await openReply(derived, sealed));
        } catch {
          broken = true;
        }
      }
      opened.sort((a, b) => (a.written_on > b.written_on) - (a.written_on < b.written_on));
      list.replaceChildren(...opened.map(reply));
      none.hidden = opened.length > 0;
      lookedUp = derived;
      show(true);
      buttons(false);
      if (broken) return fail(text.failed);
      status.hidden = true;
      status.textContent = "";
    });
  }

  const api = { newCode, normalize, shown, derive, openReply, member, stored, ALPHABET };

  if (typeof document !== "undefined") {
    const form = byId("lookup-form");
    const status = byId("lookup-status");
    if (form && status) {
      const hold = (event) => event.preventDefault();
      form.addEventListener("submit", hold);
      // A trial derivation tries all this page needs of WebCrypto.
      const works = sealjs() ? derive(ALPHABET.slice(4)).then(() => true, () => false) : Promise.resolve(false);
      works.then((ok) => {
        form.removeEventListener("submit", hold);
        if (ok) enhance(form, status);
        else {
          // Left to post the code, as without JavaScript.
          status.textContent = JSON.parse(form.getAttribute("data-replies")).messages.unsupported;
          status.hidden = false;
        }
      });
    }
  }

  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else globalThis.PapillonReplies = api;
})();
