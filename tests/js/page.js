// Loads seal.js into a small stand-in for the form page, submits once, and reports what the script did.
"use strict";
const { main, removeX25519 } = require("./io.js");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ClassList {
  constructor(names) {
    this.names = new Set(names);
  }
  add(name) {
    this.names.add(name);
  }
  remove(name) {
    this.names.delete(name);
  }
  contains(name) {
    return this.names.has(name);
  }
  toggle(name, force) {
    const on = force === undefined ? !this.names.has(name) : !!force;
    if (on) this.names.add(name);
    else this.names.delete(name);
    return on;
  }
}

main(async ({ config, controls, action, valid = true, crypto = "x25519", response, early = false }) => {
  if (crypto === "no-x25519") removeX25519(globalThis.crypto.subtle);
  if (crypto === "none") Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });

  const report = { listeners: [], prevented: false, reported: 0, fetches: [], assigned: [] };
  const listeners = [];
  const status = { hidden: true, textContent: "", classList: new ClassList([]) };
  const button = { type: "submit", disabled: false };
  const form = {
    getAttribute: (name) => ({ action, "data-seal": JSON.stringify(config) })[name] ?? null,
    querySelectorAll(selector) {
      if (selector === "[name]") return controls;
      if (selector === "[type=submit]") return [button];
      throw new Error(`unexpected selector ${selector}`);
    },
    addEventListener: (type, listener) => listeners.push({ type, listener }),
    removeEventListener: (type, listener) => {
      const at = listeners.findIndex((l) => l.type === type && l.listener === listener);
      if (at >= 0) listeners.splice(at, 1);
    },
    checkValidity: () => valid,
    reportValidity() {
      report.reported += 1;
      return valid;
    },
  };
  // As in a browser, a control named like a form property hides that property.
  for (const control of controls) if (!(control.name in form)) form[control.name] = control;

  globalThis.document = {
    querySelector: (selector) => (selector === "form[data-seal]" ? form : null),
    getElementById: (id) => (id === "seal-status" ? status : null),
  };
  globalThis.location = { assign: (url) => report.assigned.push(url) };
  globalThis.fetch = async (url, options) => {
    const { body, ...rest } = options;
    report.fetches.push({
      url,
      options: rest,
      body_type: body.constructor.name,
      body: Object.fromEntries(body),
      button_disabled: button.disabled,
      status: status.textContent,
    });
    if (response.kind === "network") throw new TypeError("Failed to fetch");
    return {
      ok: response.status < 400,
      status: response.status,
      json: async () => {
        if (response.json === undefined) throw new SyntaxError("Unexpected token '<'");
        return response.json;
      },
    };
  };

  require("../../app/static/seal.js");
  if (early) {
    // A submit in the moments before the X25519 check has answered.
    const event = { type: "submit", defaultPrevented: false, preventDefault: () => (event.defaultPrevented = true) };
    for (const l of listeners.filter((l) => l.type === "submit")) l.listener(event);
    report.early_prevented = event.defaultPrevented;
  }
  for (let i = 0; i < 400 && status.hidden; i++) await sleep(5);

  report.listeners = listeners.map((l) => l.type);
  const submit = listeners.find((l) => l.type === "submit");
  if (submit) {
    const event = { type: "submit", preventDefault: () => (report.prevented = true) };
    await submit.listener(event);
  }
  report.status = { text: status.textContent, hidden: status.hidden, classes: [...status.classList.names] };
  report.button_disabled = button.disabled;
  report.controls = controls;
  return report;
});
