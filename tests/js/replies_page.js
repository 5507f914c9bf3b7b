// Loads seal.js and replies.js into a small stand-in for the testimony form page or the /replies page,
// submits what the scenario says, and reports what the scripts did to the page and what they sent.
"use strict";
const { main, removeX25519 } = require("./io.js");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const escape = (text, quote) =>
  String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, quote ? "&quot;" : '"');

class ClassList {
  constructor(names) {
    this.names = new Set(names);
  }
  toggle(name, force) {
    const on = force === undefined ? !this.names.has(name) : !!force;
    if (on) this.names.add(name);
    else this.names.delete(name);
    return on;
  }
  contains(name) {
    return this.names.has(name);
  }
}

main(async (scenario) => {
  const report = { fetches: [], assigned: [], touched: [], focused: [], steps: [] };
  const byId = new Map();

  class Element {
    constructor(tag, { id = null, attrs = {}, hidden = false, controls = [] } = {}) {
      this.tagName = tag.toUpperCase();
      this.id = id;
      this.attrs = { ...attrs, ...(id ? { id } : {}) };
      this.hidden = hidden;
      this.textContent = "";
      this.className = "";
      this.classList = new ClassList([]);
      this.children = [];
      this.parentElement = null;
      this.listeners = [];
      this.removed = 0;
      this.controls = controls;
      this.buttons = controls.length ? [{ type: "submit", disabled: false }] : [];
      if (id) byId.set(id, this);
    }
    getAttribute(name) {
      return name in this.attrs ? this.attrs[name] : null;
    }
    append(...children) {
      for (const child of children) {
        child.parentElement = this;
        this.children.push(child);
      }
    }
    replaceChildren(...children) {
      this.children = [];
      this.append(...children);
    }
    contains(other) {
      for (let el = other; el; el = el.parentElement) if (el === this) return true;
      return false;
    }
    closest(selector) {
      for (let el = this; el; el = el.parentElement) if (el.tagName.toLowerCase() === selector) return el;
      return null;
    }
    focus() {
      report.focused.push(this.id);
    }
    querySelectorAll(selector) {
      if (selector === "[name]") return this.controls;
      if (selector === "[type=submit]") return this.buttons;
      throw new Error(`unexpected selector ${selector}`);
    }
    addEventListener(type, listener) {
      this.listeners.push({ type, listener });
    }
    removeEventListener(type, listener) {
      const at = this.listeners.findIndex((l) => l.type === type && l.listener === listener);
      if (at >= 0) this.listeners.splice(at, 1);
      this.removed += 1;
    }
    checkValidity() {
      return true;
    }
    get markup() {
      const tag = this.tagName.toLowerCase();
      const attrs = (this.className ? ` class="${escape(this.className, true)}"` : "")
        + (this.dateTime !== undefined ? ` datetime="${escape(this.dateTime, true)}"` : "");
      const inner = this.children.length ? this.children.map((c) => c.markup).join("") : escape(this.textContent);
      return `<${tag}${attrs}>${inner}</${tag}>`;
    }
  }

  const state = (el) => (el ? {
    hidden: el.hidden, text: el.textContent, classes: [...el.classList.names],
    buttons_disabled: el.buttons.map((b) => b.disabled),
  } : null);

  // Everything a script could keep or leave behind is a trap that records its name.
  const trap = (name) => new Proxy({}, {
    get: (_, key) => {
      report.touched.push(`${name}.${String(key)}`);
      return () => {};
    },
    set: (_, key) => {
      report.touched.push(`${name}.${String(key)}=`);
      return true;
    },
  });
  for (const name of ["localStorage", "sessionStorage", "history", "indexedDB"]) {
    Object.defineProperty(globalThis, name, { value: trap(name), configurable: true });
  }
  globalThis.location = new Proxy({}, {
    get: (_, key) => {
      if (key === "assign") return (url) => report.assigned.push(url);
      report.touched.push(`location.${String(key)}`);
      return undefined;
    },
    set: (_, key) => {
      report.touched.push(`location.${String(key)}=`);
      return true;
    },
  });

  const main = new Element("main");
  const seal = scenario.seal;
  const mainChildren = [new Element("h1", { id: "title" })];
  let sealForm = null;
  let lookupForm = null;
  const sealStatus = new Element("p", { id: "seal-status", hidden: true });
  if (scenario.page === "testimony") {
    sealForm = new Element("form", {
      id: "testimony-form",
      attrs: { action: seal.action, "data-seal": JSON.stringify(seal.config) },
      controls: seal.controls,
    });
    if (scenario.choice !== null) {
      const box = { name: "reply", type: "checkbox", value: "yes", checked: scenario.choice, id: "reply-choice" };
      seal.controls.push(box);
      byId.set("reply-choice", box);
    }
    sealForm.append(sealStatus);
    mainChildren.push(sealForm);
    if (scenario.thanks_section !== false) {
      const attrs = { "data-title": "Thank you" };
      const section = new Element("section", { id: "reply-thanks", hidden: true, attrs });
      section.append(new Element("h1"), new Element("p", { id: "reply-code" }));
      mainChildren.push(section);
    }
  } else {
    const lookup = scenario.lookup;
    lookupForm = new Element("form", {
      id: "lookup-form", attrs: { action: lookup.action, "data-replies": JSON.stringify(lookup.config) },
      controls: lookup.controls,
    });
    const status = new Element("p", { id: "lookup-status", hidden: true });
    const found = new Element("section", { id: "replies-found", hidden: true });
    found.append(new Element("h2", { id: "replies-title" }), new Element("ol", { id: "reply-list" }),
      new Element("p", { id: "no-replies", hidden: true }));
    sealForm = new Element("form", {
      id: "follow-up-form", hidden: true, controls: seal.controls,
      attrs: { action: seal.action, "data-seal": JSON.stringify(seal.config) },
    });
    sealForm.append(sealStatus);
    mainChildren.push(lookupForm, status, found, sealForm);
  }
  main.append(...mainChildren);

  globalThis.document = new Proxy({
    title: "The form",
    getElementById: (id) => byId.get(id) || null,
    querySelector: (selector) => (selector === "form[data-seal]" ? sealForm : null),
    createElement: (tag) => new Element(tag),
  }, {
    get: (target, key) => {
      if (key in target) return target[key];
      report.touched.push(`document.${String(key)}`);
      return undefined;
    },
    set: (target, key, value) => {
      if (key === "title") target.title = value;
      else report.touched.push(`document.${String(key)}=`);
      return true;
    },
  });

  const responses = [...(scenario.responses || [])];
  globalThis.fetch = async (url, options) => {
    const { body, ...rest } = options;
    report.fetches.push({ url, options: rest, body_type: body.constructor.name, body: Object.fromEntries(body) });
    const response = responses.shift();
    if (!response || response.kind === "network") throw new TypeError("Failed to fetch");
    return {
      ok: response.status < 400,
      status: response.status,
      json: async () => {
        if (response.json === undefined) throw new SyntaxError("Unexpected token '<'");
        return response.json;
      },
    };
  };

  if (scenario.crypto === "no-x25519") removeX25519(globalThis.crypto.subtle);
  if (scenario.crypto === "none") Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });
  // The pages load seal.js first and replies.js after it, both deferred: so does this.
  globalThis.PapillonSeal = require("../../app/static/seal.js");
  const replies = require("../../app/static/replies.js");
  globalThis.PapillonReplies = scenario.broken_member
    ? { ...replies, member: async () => { throw new Error("no key"); } }
    : replies;

  const submit = async (form) => {
    const event = { type: "submit", defaultPrevented: false, preventDefault: () => (event.defaultPrevented = true) };
    for (const { type, listener } of [...form.listeners]) if (type === "submit") await listener(event);
    return event.defaultPrevented;
  };
  if (scenario.early && lookupForm) report.early_prevented = await submit(lookupForm);
  const forms = [sealForm, lookupForm].filter(Boolean);
  for (let i = 0; i < 400 && forms.some((f) => !f.removed); i++) await sleep(5);

  const code = (text) => {
    for (const c of lookupForm.controls) if (c.name === "code") c.value = text;
  };
  for (const step of scenario.steps || []) {
    if (step.choice !== undefined) byId.get("reply-choice").checked = step.choice;
    if (step.code !== undefined) code(step.code);
    if (step.message !== undefined) for (const c of seal.controls) if (c.name === "message") c.value = step.message;
    const before = report.fetches.length;
    const prevented = await submit(step.form === "lookup" ? lookupForm : sealForm);
    const list = byId.get("reply-list");
    report.steps.push({
      prevented,
      fetches: report.fetches.slice(before),
      lookup_status: state(byId.get("lookup-status")),
      seal_status: state(sealStatus),
      found: byId.get("replies-found") ? byId.get("replies-found").hidden : null,
      follow_up_hidden: scenario.page === "replies" ? sealForm.hidden : null,
      list: list ? list.children.map((c) => c.markup) : null,
      no_replies: byId.get("no-replies") ? byId.get("no-replies").hidden : null,
      lookup_buttons: lookupForm ? lookupForm.buttons.map((b) => b.disabled) : null,
      focused: report.focused.slice(),
    });
  }

  report.listeners = Object.fromEntries(forms.map((f) => [f.id, f.listeners.map((l) => l.type)]));
  report.lookup_status = state(byId.get("lookup-status"));
  report.main = main.children.map((c) => ({ id: c.id, tag: c.tagName.toLowerCase(), hidden: c.hidden }));
  report.reply_code = byId.get("reply-code") ? byId.get("reply-code").textContent : null;
  report.title = document.title;
  return report;
});
