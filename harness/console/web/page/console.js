// The live console page: one panel per reader, driven by the console's HTTP API.
// Plain JavaScript, no framework, nothing loaded from elsewhere (the CSP allows only the inline
// script). Every request carries the bearer token; the event stream is read with fetch() and a
// stream reader because EventSource cannot send a header. Values from the server are put into the
// page with textContent only, never as HTML. The page has no PIN field and shows no secret: the
// server masks them before they leave the process.
(() => {
  "use strict";

  const STREAM_ROWS = 500; // rows kept per reader's APDU stream (newest at the top)
  const REFRESH_DELAY = 150; // ms after an exchange before the reader's state is fetched again
  const BACKOFF_FIRST = 500;
  const BACKOFF_MAX = 10000;
  const TOML_MAX = 256 * 1024;
  const REASONS = [
    ["unspecified", "理由なし (unspecified)"],
    ["keyCompromise", "鍵の危殆化 (keyCompromise)"],
    ["cACompromise", "認証局の危殆化 (cACompromise)"],
    ["affiliationChanged", "記載内容変更 (affiliationChanged)"],
    ["superseded", "更新 (superseded)"],
    ["cessationOfOperation", "廃止 (cessationOfOperation)"],
  ];
  const CERT_STATES = {
    valid: "有効 valid",
    revoked: "失効 revoked",
    hold: "一時保留 on hold",
    expired: "期限切れ expired",
    not_yet_valid: "有効期間前 not yet valid",
    unrecorded: "記録なし unrecorded",
  };
  const TREES = { auth: "利用者証明用 (auth)", sign: "署名用 (sign)" };

  // -- the token: from ?token= once, then only in the Authorization header --------------------

  // Kept in this page only: a reload asks the console for "/" without it and is refused, as
  // every address without the token is (open the address serve printed again).
  const token = (() => {
    const params = new URLSearchParams(location.search);
    const given = params.get("token") || "";
    if (params.has("token")) {
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    }
    return given;
  })();

  class ApiError extends Error {
    constructor(status, field, message) {
      super(message);
      this.status = status;
      this.field = field;
    }
    toString() {
      // the console's messages start with their field already ("tries: must be ...")
      if (!this.field || this.message.startsWith(`${this.field}:`)) return this.message;
      return `${this.field}: ${this.message}`;
    }
  }

  async function request(method, path, body) {
    const headers = { Authorization: `Bearer ${token}` };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (exc) {
      throw new ApiError(0, null, `the console is not answering (${exc.message || exc})`);
    }
    if (!response.ok) {
      let field = null;
      let message = `${response.status} ${response.statusText}`;
      try {
        const answer = await response.json();
        if (answer && typeof answer.error === "string") message = answer.error;
        if (answer && typeof answer.field === "string") field = answer.field;
      } catch (_) {
        // not JSON: keep the status line
      }
      if (response.status === 401) showPageError(unauthorizedText());
      throw new ApiError(response.status, field, message);
    }
    return response;
  }

  async function api(method, path, body) {
    const response = await request(method, path, body);
    return response.json();
  }

  function unauthorizedText() {
    return token
      ? "The console refused the token: open the address `mynacard serve --console` printed."
      : "No token: open the address `mynacard serve --console` printed (it ends in ?token=…).";
  }

  // -- small DOM helpers ----------------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") {
        node.setAttribute(key, value === true ? "" : String(value));
      } else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(node, text) {
    const value = text === null || text === undefined || text === "" ? "—" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function clock(seconds) {
    const when = typeof seconds === "number" ? new Date(seconds * 1000) : new Date();
    const pad = (n, width = 2) => String(n).padStart(width, "0");
    return (
      `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}` +
      `.${pad(when.getMilliseconds(), 3)}`
    );
  }

  function showPageError(text) {
    const node = document.getElementById("page-error");
    node.textContent = text;
    node.hidden = !text;
  }

  // -- page state -----------------------------------------------------------------------------

  const panels = new Map(); // reader index -> Panel
  const byName = new Map(); // reader name -> Panel
  let personas = [];
  let scenarios = [];
  let pkiAttached = null; // from GET /api/cards; null until known

  function panelFor(reader) {
    if (typeof reader === "number") return panels.get(reader);
    return byName.get(reader);
  }

  // -- one reader's panel ---------------------------------------------------------------------

  class Panel {
    constructor(state) {
      this.index = state.index;
      this.name = state.reader;
      this.state = null;
      this.refreshTimer = null;
      this.refreshSeq = 0;
      this.credentialRows = new Map();
      this.certificateRows = new Map();
      this.build();
    }

    path(rest) {
      return `/api/cards/${this.index}${rest || ""}`;
    }

    field(name) {
      return this.root.querySelector(`[data-field="${name}"]`);
    }

    build() {
      const fact = (label, name) => [el("dt", { text: label }), el("dd", { "data-field": name })];
      const button = (action, text, title) =>
        el("button", { type: "button", "data-action": action, text, title });
      const errorSlot = (group) =>
        el("p", { class: "error", "data-error": group, role: "alert", hidden: true });

      this.progress = el("progress", { max: 5, value: 0 });
      this.progressLabel = el("span", { class: "progress-label" });
      this.progressBox = el(
        "div",
        { class: "progress", "data-role": "progress", hidden: true },
        this.progress,
        this.progressLabel,
      );

      this.personaSelect = el("select", { "data-input": "persona", "aria-label": "persona" });
      this.scenarioSelect = el("select", { "data-input": "scenario", "aria-label": "fault scenario" });

      this.credentialBody = el("tbody");
      this.certificateBody = el("div", { class: "certificates" });
      this.streamBody = el("tbody");
      this.streamCount = el("span", { class: "count", "data-field": "stream-count", text: "0" });

      this.root = el(
        "section",
        { class: "card", "data-reader": this.index, "data-reader-name": this.name },
        el(
          "header",
          { class: "card-head" },
          el("h2", { "data-field": "reader" }),
          el("span", { class: "badge", "data-field": "inserted" }),
          el("span", { class: "badge", "data-field": "powered" }),
          el("span", { class: "badge sm", "data-field": "secure_messaging" }),
        ),
        el(
          "dl",
          { class: "facts" },
          ...fact("persona", "persona"),
          ...fact("氏名 holder", "holder"),
          ...fact("ATR", "atr"),
          ...fact("selected AP", "application"),
          ...fact("verified now", "verified"),
          ...fact("faults", "faults"),
        ),
        el(
          "div",
          { class: "group", "data-group": "reader" },
          el(
            "div",
            { class: "buttons" },
            button("insert", "insert", "put the card into the reader"),
            button("remove", "remove", "take the card out of the reader"),
            button("glitch", "power glitch", "the card loses power for an instant"),
            button("reset", "reset", "warm reset of the card"),
            button("trace", "download trace", "the reader's masked trace (JSON Lines)"),
          ),
          errorSlot("reader"),
        ),
        el(
          "div",
          { class: "group", "data-group": "persona" },
          el(
            "div",
            { class: "buttons" },
            el("label", { class: "inline" }, "persona ", this.personaSelect),
            button("switch-persona", "switch", "replace the card with a new card of this persona"),
            el(
              "label",
              { class: "file", title: "a persona TOML file" },
              "upload TOML…",
              el("input", { type: "file", accept: ".toml,text/plain", "data-action": "upload-persona" }),
            ),
          ),
          this.progressBox,
          errorSlot("persona"),
        ),
        el(
          "div",
          { class: "group", "data-group": "faults" },
          el(
            "div",
            { class: "buttons" },
            el("label", { class: "inline" }, "faults ", this.scenarioSelect),
            button("apply-faults", "apply", "apply the fault scenario"),
            el(
              "label",
              { class: "file", title: "a fault scenario TOML file" },
              "upload TOML…",
              el("input", { type: "file", accept: ".toml,text/plain", "data-action": "upload-faults" }),
            ),
            button("clear-faults", "clear faults", "take the card out of its faults"),
          ),
          errorSlot("faults"),
        ),
        el(
          "div",
          { class: "group", "data-group": "credentials" },
          el(
            "h3",
            {},
            "暗証番号 credentials",
            el(
              "label",
              { class: "toggle", title: "key references whose purpose is unknown" },
              el("input", { type: "checkbox", "data-input": "show-minor" }),
              " all key references",
            ),
          ),
          el(
            "div",
            { class: "scroll-x" },
            el(
              "table",
              { class: "credentials" },
              el(
                "thead",
                {},
                el(
                  "tr",
                  {},
                  el("th", { text: "credential" }),
                  el("th", { text: "tries" }),
                  el("th", { text: "" }),
                ),
              ),
              this.credentialBody,
            ),
          ),
          errorSlot("credentials"),
        ),
        el(
          "div",
          { class: "group", "data-group": "certificates" },
          el("h3", { text: "電子証明書 certificates" }),
          this.certificateBody,
          errorSlot("certificates"),
        ),
        el(
          "div",
          { class: "group", "data-group": "stream" },
          el(
            "h3",
            {},
            "APDU stream ",
            this.streamCount,
            el("button", { type: "button", class: "small", "data-action": "clear-stream", text: "clear" }),
          ),
          el(
            "div",
            { class: "stream-box" },
            el(
              "table",
              { class: "stream", "data-role": "stream" },
              el(
                "thead",
                {},
                el(
                  "tr",
                  {},
                  el("th", { text: "time" }),
                  el("th", { text: "command" }),
                  el("th", { text: "meaning" }),
                  el("th", { text: "SW" }),
                  el("th", { text: "ms" }),
                ),
              ),
              this.streamBody,
            ),
          ),
        ),
      );
      this.root.addEventListener("click", (event) => this.onClick(event));
      this.root.addEventListener("change", (event) => this.onChange(event));
      this.fillPersonas();
      this.fillScenarios();
    }

    // -- applying a state ----------------------------------------------------------------

    apply(state) {
      this.state = state;
      if (state.reader !== this.name) {
        byName.delete(this.name);
        this.name = state.reader;
        byName.set(this.name, this);
        this.root.dataset.readerName = this.name;
      }
      const root = this.root;
      root.classList.toggle("removed", !state.inserted);
      setText(this.field("reader"), `${state.index}: ${state.reader}`);
      const inserted = this.field("inserted");
      setText(inserted, state.inserted ? "inserted 挿入" : "removed 抜去");
      inserted.dataset.state = state.inserted ? "inserted" : "removed";
      const powered = this.field("powered");
      setText(powered, state.powered ? "powered" : "unpowered");
      powered.dataset.state = state.powered ? "on" : "off";
      const sm = this.field("secure_messaging");
      setText(sm, state.secure_messaging ? "secure messaging" : "plain");
      sm.dataset.state = state.secure_messaging ? "on" : "off";
      setText(this.field("persona"), state.persona);
      setText(this.field("holder"), state.holder);
      setText(this.field("atr"), state.atr);
      setText(
        this.field("application"),
        state.application
          ? `${state.application_label || state.application} (${state.application})`
          : "none (issuer security domain)",
      );
      const labels = new Map((state.credentials || []).map((c) => [c.name, c.label]));
      setText(
        this.field("verified"),
        (state.verified || []).map((name) => labels.get(name) || name).join(", ") || "none",
      );
      setText(this.field("faults"), faultsText(state.faults, state.storage_failed));
      this.field("faults").dataset.state = state.faults ? "on" : "off";

      this.setDisabled("insert", state.inserted);
      this.setDisabled("remove", !state.inserted);
      this.setDisabled("glitch", !state.inserted);
      this.setDisabled("reset", !state.inserted);
      this.setDisabled("clear-faults", !state.faults);
      this.applyCredentials(state.credentials || []);
      this.applyCertificates(state.certificates || []);
    }

    setDisabled(action, disabled) {
      for (const node of this.root.querySelectorAll(`[data-action="${action}"]`)) {
        if (!node.closest("[data-busy]")) node.disabled = disabled;
      }
    }

    applyCredentials(credentials) {
      const seen = new Set();
      credentials.forEach((credential, position) => {
        const key = credential.name || `${credential.application}:${credential.fid}`;
        seen.add(key);
        let row = this.credentialRows.get(key);
        if (!row) {
          row = this.credentialRow(credential, key);
          this.credentialRows.set(key, row);
        }
        if (this.credentialBody.children[position] !== row.tr) {
          this.credentialBody.insertBefore(row.tr, this.credentialBody.children[position] || null);
        }
        const blocked = credential.blocked || credential.tries_left === 0;
        row.tr.classList.toggle("minor", isMinor(credential));
        row.tr.classList.toggle("blocked", blocked);
        row.tr.classList.toggle("lowered", !blocked && credential.tries_left < credential.max_tries);
        row.tr.dataset.tries = credential.tries_left;
        row.tr.dataset.max = credential.max_tries;
        setText(row.tries, `${credential.tries_left} / ${credential.max_tries}`);
        row.meter.max = credential.max_tries;
        row.meter.value = credential.tries_left;
        row.flag.hidden = !blocked;
        row.input.max = credential.max_tries;
        row.input.placeholder = `0-${credential.max_tries}`;
        row.lock.disabled = blocked;
      });
      for (const [key, row] of this.credentialRows) {
        if (!seen.has(key)) {
          row.tr.remove();
          this.credentialRows.delete(key);
        }
      }
    }

    credentialRow(credential, key) {
      const tries = el("span", { class: "tries", "data-field": "tries" });
      const meter = el("meter", { min: 0, low: 1, optimum: credential.max_tries });
      const flag = el("span", { class: "flag", text: "blocked", hidden: true });
      const input = el("input", {
        type: "number",
        min: 0,
        step: 1,
        inputMode: "numeric",
        "data-input": "tries",
        "aria-label": `tries left for ${credential.label}`,
      });
      const lock = el("button", { type: "button", "data-action": "lock", text: "lock" });
      const tr = el(
        "tr",
        {
          "data-credential": key,
          "data-application": credential.application,
          "data-fid": credential.fid,
        },
        el(
          "td",
          { class: "label" },
          el("span", { text: credential.label }),
          el("small", { text: ` ${credential.application} ${credential.fid}` }),
        ),
        el("td", { class: "count" }, tries, " ", meter, " ", flag),
        el(
          "td",
          { class: "row-actions" },
          lock,
          el("button", { type: "button", "data-action": "unlock", text: "unlock", title: "refill" }),
          el("span", { class: "set" }, input, el("button", { type: "button", "data-action": "set-tries", text: "set" })),
        ),
      );
      return { tr, tries, meter, flag, input, lock };
    }

    applyCertificates(certificates) {
      const attached = pkiAttached === null ? certificates.some((c) => c.state !== null) : pkiAttached;
      this.root.querySelector('[data-group="certificates"]').hidden = certificates.length === 0;
      const seen = new Set();
      for (const certificate of certificates) {
        seen.add(certificate.tree);
        let row = this.certificateRows.get(certificate.tree);
        if (!row) {
          row = this.certificateRow(certificate.tree);
          this.certificateRows.set(certificate.tree, row);
          this.certificateBody.append(row.tr);
        }
        const state = certificate.state;
        row.tr.dataset.state = state || "none";
        const shown = state ? CERT_STATES[state] || state : "no PKI attached";
        setText(row.status, shown);
        row.status.dataset.state = state || "none";
        const details = [];
        if (certificate.reason) details.push(certificate.reason);
        if (certificate.since) details.push(`since ${certificate.since}`);
        if (certificate.not_after) details.push(`until ${certificate.not_after}`);
        row.detail.textContent = details.join(" · ");
        setText(row.serial, `serial ${certificate.serial}`);
        row.actions.hidden = !attached || state === null;
        const settled = state === "expired" || state === "not_yet_valid" || state === "unrecorded";
        row.revoke.disabled = settled || state === "revoked";
        row.reason.disabled = row.revoke.disabled;
        row.hold.disabled = settled || state !== "valid";
        row.release.disabled = state !== "hold";
      }
      for (const [tree, row] of this.certificateRows) {
        if (!seen.has(tree)) {
          row.tr.remove();
          this.certificateRows.delete(tree);
        }
      }
    }

    certificateRow(tree) {
      const status = el("span", { class: "cert-state", "data-field": "cert-state" });
      const detail = el("small", { class: "detail" });
      const serial = el("small", { class: "serial" });
      const reason = el("select", { "data-input": "reason", "aria-label": "revocation reason" });
      for (const [value, text] of REASONS) reason.append(el("option", { value, text }));
      const revoke = el("button", { type: "button", "data-action": "revoke", text: "revoke 失効" });
      const hold = el("button", { type: "button", "data-action": "hold", text: "hold 一時保留" });
      const release = el("button", { type: "button", "data-action": "release", text: "release 解除" });
      const actions = el("div", { class: "buttons cert-actions" }, reason, revoke, hold, release);
      const tr = el(
        "div",
        { class: "certificate", "data-certificate": tree },
        el(
          "div",
          { class: "cert-line" },
          el("span", { class: "label", text: TREES[tree] || tree }),
          status,
          serial,
          detail,
        ),
        actions,
      );
      return { tr, status, detail, serial, reason, revoke, hold, release, actions };
    }

    // -- actions ---------------------------------------------------------------------------

    onClick(event) {
      const target = event.target.closest("button[data-action]");
      if (!target || target.disabled) return;
      const action = target.dataset.action;
      const credentialRow = target.closest("tr[data-credential]");
      const certificateRow = target.closest("[data-certificate]");
      switch (action) {
        case "insert":
        case "remove":
        case "glitch":
        case "reset":
          this.act(target, "reader", "POST", this.path(`/${action}`));
          break;
        case "trace":
          this.downloadTrace(target);
          break;
        case "switch-persona": {
          const name = this.personaSelect.value;
          if (!name) {
            this.showError("persona", new ApiError(0, "persona", "choose a persona first"));
            break;
          }
          this.switchPersona(target, { persona: name });
          break;
        }
        case "apply-faults": {
          const name = this.scenarioSelect.value;
          if (!name) {
            this.showError("faults", new ApiError(0, "scenario", "choose a scenario first"));
            break;
          }
          this.act(target, "faults", "POST", this.path("/faults"), { scenario: name });
          break;
        }
        case "clear-faults":
          this.act(target, "faults", "DELETE", this.path("/faults"));
          break;
        case "lock":
        case "unlock":
          this.act(target, "credentials", "POST", this.credentialPath(credentialRow), { action });
          break;
        case "set-tries": {
          const input = credentialRow.querySelector('[data-input="tries"]');
          const text = input.value.trim();
          if (!/^\d+$/.test(text)) {
            const range = `0-${credentialRow.dataset.max}`;
            this.showError("credentials", new ApiError(0, "tries", `enter a number ${range}`));
            break;
          }
          this.act(target, "credentials", "POST", this.credentialPath(credentialRow), {
            tries: Number(text),
          }).then((ok) => {
            if (ok) input.value = "";
          });
          break;
        }
        case "revoke": {
          const reason = certificateRow.querySelector('[data-input="reason"]').value;
          const tree = certificateRow.dataset.certificate;
          this.act(target, "certificates", "POST", this.path(`/certificates/${tree}/revoke`), {
            reason,
          });
          break;
        }
        case "hold":
        case "release": {
          const tree = certificateRow.dataset.certificate;
          this.act(target, "certificates", "POST", this.path(`/certificates/${tree}/${action}`), {});
          break;
        }
        case "clear-stream":
          this.streamBody.replaceChildren();
          setText(this.streamCount, "0");
          break;
        default:
          break;
      }
    }

    onChange(event) {
      const target = event.target;
      if (target instanceof HTMLInputElement && target.dataset.input === "show-minor") {
        this.root.classList.toggle("show-minor", target.checked);
        return;
      }
      if (!(target instanceof HTMLInputElement) || target.type !== "file") return;
      const file = target.files && target.files[0];
      const action = target.dataset.action;
      const group = action === "upload-persona" ? "persona" : "faults";
      if (!file) return;
      const done = () => {
        target.value = "";
      };
      if (file.size > TOML_MAX) {
        this.showError(group, new ApiError(0, "toml", `${file.name} is larger than 256 KiB`));
        done();
        return;
      }
      file.text().then(
        (text) => {
          done();
          if (group === "persona") this.switchPersona(target, { toml: text });
          else this.act(target, "faults", "POST", this.path("/faults"), { toml: text });
        },
        (exc) => {
          done();
          this.showError(group, new ApiError(0, "toml", `could not read ${file.name}: ${exc}`));
        },
      );
    }

    credentialPath(row) {
      const application = encodeURIComponent(row.dataset.application);
      const key = row.dataset.credential.includes(":") ? row.dataset.fid : row.dataset.credential;
      return this.path(`/credentials/${application}/${encodeURIComponent(key)}`);
    }

    async act(button, group, method, path, body) {
      const holder = button.closest("label") || button;
      holder.setAttribute("data-busy", "");
      button.disabled = true;
      this.root.classList.add("busy");
      try {
        const state = await api(method, path, body);
        this.showError(group, null);
        if (state && typeof state.index === "number") this.apply(state);
        return true;
      } catch (exc) {
        this.showError(group, exc);
        return false;
      } finally {
        holder.removeAttribute("data-busy");
        button.disabled = false;
        this.root.classList.remove("busy");
        if (this.state) this.apply(this.state);
      }
    }

    async switchPersona(button, body) {
      this.showProgress({ step: 0, steps: 5, label: "asking the console…" });
      const ok = await this.act(button, "persona", "POST", this.path("/persona"), body);
      if (!ok) this.hideProgress(0);
      else this.finishProgress();
    }

    async downloadTrace(button) {
      button.disabled = true;
      try {
        const response = await request("GET", this.path("/trace"));
        const blob = await response.blob();
        const disposition = response.headers.get("Content-Disposition") || "";
        const match = /filename="?([^";]+)"?/.exec(disposition);
        const filename = match ? match[1] : `${this.name}.trace.jsonl`;
        const url = URL.createObjectURL(blob);
        const link = el("a", { href: url, download: filename, hidden: true });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
        this.showError("reader", null);
      } catch (exc) {
        this.showError("reader", exc);
      } finally {
        button.disabled = false;
      }
    }

    showError(group, error) {
      const slot = this.root.querySelector(`[data-error="${group}"]`);
      if (!slot) return;
      if (!error) {
        slot.hidden = true;
        slot.textContent = "";
        delete slot.dataset.field;
        return;
      }
      const field = error.field || null;
      slot.textContent = error instanceof ApiError ? error.toString() : String(error);
      if (field) slot.dataset.field = field;
      else delete slot.dataset.field;
      slot.hidden = false;
    }

    // -- progress of a persona switch -----------------------------------------------------

    showProgress(body) {
      clearTimeout(this.progressTimer);
      const steps = Number(body.steps) || 5;
      const step = Math.min(Number(body.step) || 0, steps);
      this.progress.max = steps;
      this.progress.value = step;
      this.progressBox.dataset.step = step;
      this.progressBox.dataset.steps = steps;
      this.progressLabel.textContent = `${step}/${steps} ${body.label || ""}`;
      this.progressBox.hidden = false;
      this.root.dataset.switching = "";
      if (step >= steps) this.finishProgress();
    }

    finishProgress() {
      this.progress.value = this.progress.max;
      this.hideProgress(1500);
    }

    hideProgress(after) {
      clearTimeout(this.progressTimer);
      this.progressTimer = setTimeout(() => {
        this.progressBox.hidden = true;
        delete this.root.dataset.switching;
      }, after);
    }

    // -- the select lists -----------------------------------------------------------------

    fillPersonas() {
      const select = this.personaSelect;
      const chosen = select.value;
      select.replaceChildren(el("option", { value: "", text: "choose a persona…" }));
      for (const persona of personas) {
        const text = persona.holder ? `${persona.label} — ${persona.holder}` : persona.label;
        select.append(el("option", { value: persona.name, text: text || persona.name }));
      }
      select.value = personas.some((p) => p.name === chosen) ? chosen : "";
    }

    fillScenarios() {
      const select = this.scenarioSelect;
      const chosen = select.value;
      select.replaceChildren(el("option", { value: "", text: "choose a scenario…" }));
      for (const scenario of scenarios) {
        select.append(el("option", { value: scenario.name, text: scenario.name, title: scenario.summary || "" }));
      }
      select.value = scenarios.some((s) => s.name === chosen) ? chosen : "";
    }

    // -- the stream ---------------------------------------------------------------------

    addRow(row) {
      this.streamBody.prepend(row);
      while (this.streamBody.children.length > STREAM_ROWS) this.streamBody.lastElementChild.remove();
      setText(this.streamCount, String(this.streamBody.children.length));
    }

    exchange(body) {
      const sw = typeof body.sw === "string" ? body.sw : "";
      const swClass = /^(90|61)/.test(sw) ? "ok" : /^(62|63)/.test(sw) ? "warn" : sw ? "bad" : "";
      const latency = typeof body.duration_ms === "number" ? body.duration_ms.toFixed(1) : "";
      this.addRow(
        el(
          "tr",
          { class: "exchange", "data-seq": body.seq, "data-sw": sw },
          el("td", { class: "time", text: clock(body.t) }),
          el("td", { class: "command", text: body.command || "", title: body.response || "" }),
          el("td", { class: "meaning", text: body.meaning || "" }),
          el("td", { class: `sw ${swClass}`, text: sw, title: body.response || "" }),
          el("td", { class: "ms", text: latency }),
        ),
      );
      this.scheduleRefresh();
    }

    note(kind, body, text) {
      this.addRow(
        el(
          "tr",
          { class: kind, "data-seq": body.seq },
          el("td", { class: "time", text: clock(body.t) }),
          el("td", { colSpan: 4, class: "note", text }),
        ),
      );
    }

    cardEvent(body) {
      this.note("event", body, `— card ${body.event}`);
      this.scheduleRefresh();
    }

    stateEvent(body) {
      const detail = body.detail && Object.keys(body.detail).length ? ` ${JSON.stringify(body.detail)}` : "";
      this.note("state", body, `▶ ${body.action}${detail}`);
      this.root.dataset.lastAction = body.action;
      if (body.state) this.apply(body.state);
      if (body.action === "switch_persona") this.finishProgress();
    }

    // The card's own traffic changes counters, the selected AP and the verified credentials
    // without an action: fetch the state shortly after the exchanges stop coming.
    scheduleRefresh() {
      if (this.refreshTimer !== null) return;
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = null;
        const seq = ++this.refreshSeq;
        api("GET", this.path()).then(
          (state) => {
            if (seq === this.refreshSeq) this.apply(state);
          },
          () => {},
        );
      }, REFRESH_DELAY);
    }
  }

  // Key references a real-card probe found, whose purpose is unknown: shown on request.
  function isMinor(credential) {
    return credential.name === null || /unknown/.test(credential.label || "");
  }

  function faultsText(faults, storageFailed) {
    const parts = [];
    if (faults) {
      const list = faults.faults && faults.faults.length ? `: ${faults.faults.join(", ")}` : "";
      parts.push(`${faults.scenario}${list} (fired ${faults.fired})`);
    }
    if (storageFailed) parts.push("storage failed");
    return parts.join("; ") || "none";
  }

  // -- the whole page --------------------------------------------------------------------------

  function applyCards(cards) {
    const main = document.getElementById("readers");
    const present = new Set();
    for (const state of cards) {
      present.add(state.index);
      let panel = panels.get(state.index);
      if (!panel) {
        panel = new Panel(state);
        panels.set(state.index, panel);
        byName.set(panel.name, panel);
      }
      panel.apply(state);
    }
    for (const [index, panel] of panels) {
      if (!present.has(index)) {
        panel.root.remove();
        panels.delete(index);
        byName.delete(panel.name);
      }
    }
    const ordered = [...panels.values()].sort((a, b) => a.index - b.index);
    ordered.forEach((panel, position) => {
      if (main.children[position] !== panel.root) main.insertBefore(panel.root, main.children[position] || null);
    });
    document.getElementById("no-readers").hidden = panels.size > 0;
    if (panels.size === 0) main.append(document.getElementById("no-readers"));
    document.body.dataset.readers = String(panels.size);
  }

  function showPki() {
    const node = document.getElementById("pki");
    if (pkiAttached === null) return;
    node.hidden = false;
    node.dataset.pki = pkiAttached ? "attached" : "none";
    node.textContent = pkiAttached ? "PKI attached" : "no PKI";
  }

  async function loadLists() {
    const [cardsAnswer, personasAnswer, scenariosAnswer] = await Promise.allSettled([
      api("GET", "/api/cards"),
      api("GET", "/api/personas"),
      api("GET", "/api/scenarios"),
    ]);
    if (personasAnswer.status === "fulfilled") personas = personasAnswer.value.personas || [];
    if (scenariosAnswer.status === "fulfilled") {
      scenarios = (scenariosAnswer.value.scenarios || []).filter((s) => s.applicable);
    }
    if (cardsAnswer.status === "fulfilled") {
      pkiAttached = Boolean(cardsAnswer.value.pki);
      showPki();
      applyCards(cardsAnswer.value.cards || []);
    }
    for (const panel of panels.values()) {
      panel.fillPersonas();
      panel.fillScenarios();
      if (panel.state) panel.apply(panel.state);
    }
  }

  // -- the event stream: fetch() + a stream reader, reconnecting with backoff -----------------

  let dropped = 0;

  function setConnection(state, text) {
    const node = document.getElementById("connection");
    node.dataset.connection = state;
    node.textContent = text;
  }

  function dispatch(kind, data) {
    let body;
    try {
      body = data ? JSON.parse(data) : {};
    } catch (_) {
      return;
    }
    if (kind === "hello") {
      applyCards(body.cards || []);
      return;
    }
    if (kind === "dropped") {
      dropped += Number(body.count) || 0;
      const node = document.getElementById("dropped");
      node.hidden = false;
      node.textContent = `${dropped} events dropped`;
      for (const panel of panels.values()) panel.scheduleRefresh();
      return;
    }
    const panel = panelFor(body.reader);
    if (!panel) return;
    if (kind === "exchange") panel.exchange(body);
    else if (kind === "card") panel.cardEvent(body);
    else if (kind === "state") panel.stateEvent(body);
    else if (kind === "progress") panel.showProgress(body);
  }

  function parseBlock(block) {
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "event") kind = value;
      else if (name === "data") data.push(value);
    }
    if (data.length) dispatch(kind, data.join("\n"));
  }

  async function streamOnce() {
    const response = await request("GET", "/api/events");
    if (!response.body) throw new Error("no stream");
    setConnection("live", "live");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        parseBlock(block);
      }
    }
  }

  async function streamForever() {
    let backoff = BACKOFF_FIRST;
    for (;;) {
      const started = Date.now();
      try {
        await streamOnce();
      } catch (exc) {
        if (exc instanceof ApiError && exc.status === 401) {
          setConnection("unauthorized", "not authorized");
          return;
        }
      }
      if (Date.now() - started > 5000) backoff = BACKOFF_FIRST; // it was up for a while
      const seconds = Math.round(backoff / 100) / 10;
      setConnection("offline", `reconnecting in ${seconds}s…`);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      setConnection("connecting", "connecting…");
      backoff = Math.min(backoff * 2, BACKOFF_MAX);
      loadLists().catch(() => {});
    }
  }

  function start() {
    if (!token) {
      showPageError(unauthorizedText());
      setConnection("unauthorized", "no token");
      return;
    }
    loadLists().catch((exc) => showPageError(String(exc)));
    streamForever();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
