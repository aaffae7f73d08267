// The test page's behaviour: each button sends the Go original's request to the broker and
// shows exactly what went out and what came back; the log view polls the broker's `logs`
// action. Text from the network is only ever set with textContent, never parsed as HTML.
// Each answer's `Server-Timing` (the broker's hops) is drawn as a small waterfall beside it,
// with the trace id of its `traceresponse`; a click on a log entry shows the entry's trace id.
"use strict";

(() => {
  const brokerUrl = document.body.dataset.brokerUrl;
  const POLL_MS = 2000;
  const LOG_LIMIT = 15;
  const TIMEOUT_MS = 10000;
  const MAX_DATA_CHARS = 240;
  const MAX_OUTPUT_LINES = 50;

  // The access token from the last Test Auth, kept in memory only (never in storage) and sent
  // as `Authorization: Bearer` with every later request; the broker protects `logs` and `mail`.
  let token = null;
  const SIGN_IN_HINT = "click Test Auth first: it signs in and the page then sends its token";

  const $ = (id) => document.getElementById(id);
  const els = {
    output: $("output"),
    sent: $("sent"),
    sentTarget: $("sent-target"),
    received: $("received"),
    status: $("status"),
    logs: $("logs"),
    logsState: $("logs-state"),
    timing: $("timing"),
    traceId: $("trace-id"),
    entryTrace: $("entry-trace"),
  };

  // The bodies of the Go original's test page; `event` carries its payload under `log`.
  const REQUESTS = {
    broker: { label: "broker", path: "/", body: null },
    auth: {
      label: "auth",
      path: "/handle",
      body: { action: "auth", auth: { email: "admin@example.com", password: "verysecret" } },
    },
    log: {
      label: "log",
      path: "/handle",
      body: { action: "log", log: { name: "event", data: "Some kind of data" } },
    },
    event: {
      label: "event",
      path: "/handle",
      body: { action: "event", log: { name: "event", data: "Some kind of data" } },
    },
    mail: {
      label: "mail",
      path: "/handle",
      body: {
        action: "mail",
        mail: { from: "me@example.com", to: "you@there.com", subject: "Test email", message: "Hello world!" },
      },
    },
  };

  const REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
    415: "Unsupported Media Type", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
  };

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function timeOf(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }

  // POST to the broker; resolves with the status and the raw body, rejects on network failure.
  async function post(path, bodyText) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    const init = { method: "POST", signal: controller.signal, cache: "no-store", headers: {} };
    if (bodyText !== null) {
      init.headers["Content-Type"] = "application/json";
      init.body = bodyText;
    }
    if (token !== null) init.headers.Authorization = `Bearer ${token}`;
    try {
      const response = await fetch(brokerUrl + path, init);
      return {
        status: response.status,
        text: await response.text(),
        // Readable across origins because the broker's CORS exposes them.
        timing: response.headers.get("server-timing"),
        traceresponse: response.headers.get("traceresponse"),
      };
    } catch (error) {
      if (error.name === "AbortError") throw new Error(`no answer within ${TIMEOUT_MS / 1000} s`);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  function parse(text) {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  }

  // A 2xx is a success; a mail the broker queued on RabbitMQ because the mailer is down (202,
  // "Message queued for …") is accepted but not sent yet: its own kind, not an error.
  function kindOf(status, body) {
    if (status < 200 || status >= 300) return "error";
    const queued = body && body.error === false && typeof body.message === "string" && body.message.startsWith("Message queued for ");
    return queued ? "queued" : "ok";
  }

  function setStatus(kind, text) {
    els.status.className = `badge badge-${kind}`;
    els.status.textContent = text;
  }

  function addOutput(kind, label, status, message) {
    els.output.querySelector(".placeholder")?.remove();
    const line = element("li", null, `line line-${kind}`);
    line.append(
      element("span", timeOf(new Date()), "line-time"),
      element("span", label, "line-action"),
      element("span", status, `line-status badge badge-${kind}`),
      element("span", message, "line-message"),
    );
    els.output.prepend(line);
    while (els.output.children.length > MAX_OUTPUT_LINES) els.output.lastElementChild.remove();
  }

  // `auth;dur=231.4, event;dur=1.2, total;dur=233.0` → [{ name, dur }]; an entry without a
  // duration has `dur` null.
  function parseServerTiming(header) {
    if (!header) return [];
    return header.split(",").map((entry) => {
      const [name, ...params] = entry.split(";").map((part) => part.trim());
      const dur = params.map((param) => /^dur=([0-9.]+)$/.exec(param)).find(Boolean);
      return { name, dur: dur ? Number(dur[1]) : null };
    }).filter((hop) => hop.name);
  }

  // `00-<trace_id>-<span_id>-<flags>` → the trace id, or null.
  function traceIdOf(traceresponse) {
    const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(String(traceresponse ?? "").trim());
    return match ? match[1] : null;
  }

  function showTrace(traceId) {
    els.traceId.textContent = traceId ?? "none (the answer has no traceresponse)";
    els.traceId.classList.toggle("muted", traceId === null);
    if (traceId === null) delete els.traceId.dataset.traceId;
    else els.traceId.dataset.traceId = traceId;
  }

  // One row per hop: its name, a bar as wide as its share of the total, and its duration.
  function renderTiming(header) {
    const hops = parseServerTiming(header);
    if (hops.length === 0) {
      els.timing.replaceChildren(element("li", "no Server-Timing in the answer", "muted placeholder"));
      return;
    }
    const total = hops.find((hop) => hop.name === "total")?.dur ?? Math.max(...hops.map((hop) => hop.dur ?? 0));
    els.timing.replaceChildren(...hops.map((hop) => {
      const row = element("li", null, hop.name === "total" ? "hop hop-total" : "hop");
      row.dataset.hop = hop.name;
      const bar = element("span", null, "hop-bar");
      bar.setAttribute("aria-hidden", "true");
      const fill = element("span", null, "hop-fill");
      // Set through the CSSOM, which the page's CSP (no inline style) allows.
      // The total is the whole bar, also when it rounds to 0.0 ms (`POST /` in a release build).
      const share = hop.name === "total" ? 100
        : hop.dur !== null && total > 0 ? Math.min(100, (hop.dur / total) * 100) : 0;
      fill.style.width = `${share}%`;
      bar.append(fill);
      row.append(
        element("span", hop.name, "hop-name"),
        bar,
        element("span", hop.dur === null ? "—" : `${hop.dur.toFixed(1)} ms`, "hop-ms"),
      );
      return row;
    }));
  }

  async function send(key, button) {
    const request = REQUESTS[key];
    const bodyText = request.body === null ? null : JSON.stringify(request.body, null, 2);
    els.sentTarget.textContent = `POST ${brokerUrl}${request.path}`;
    els.sent.textContent = bodyText === null ? "(empty body)" : bodyText;
    els.received.textContent = "waiting for the broker…";
    delete els.received.dataset.action;
    els.timing.replaceChildren(element("li", "waiting…", "muted placeholder"));
    showTrace(null);
    setStatus("pending", "sending…");
    button.disabled = true;
    try {
      const { status, text, timing, traceresponse } = await post(request.path, bodyText);
      const body = parse(text);
      const kind = kindOf(status, body);
      renderTiming(timing);
      showTrace(traceIdOf(traceresponse));
      els.received.textContent = body === undefined ? text : JSON.stringify(body, null, 2);
      els.received.dataset.action = key;
      setStatus(kind, kind === "queued" ? `${status} queued` : `${status} ${REASONS[status] ?? ""}`.trim());
      if (key === "auth" && kind === "ok" && body && body.data && typeof body.data.token === "string") {
        token = body.data.token;
      }
      let message = body && typeof body.message === "string" ? body.message : "(no JSON message in the answer)";
      if (status === 401 && key !== "auth") message = `${message} (${SIGN_IN_HINT})`;
      addOutput(kind, request.label, String(status), message);
      if (key === "log" || key === "event" || key === "auth") refreshLogs();
    } catch (error) {
      const hint = `Is the broker running at ${brokerUrl}, and does it allow requests from ${location.origin}?`;
      els.received.textContent = `Request failed: ${error.message}\n${hint}`;
      els.timing.replaceChildren(element("li", "no answer", "muted placeholder"));
      els.received.dataset.action = key;
      setStatus("error", "network error");
      addOutput("error", request.label, "—", `could not reach the broker: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // --- the live log view ------------------------------------------------------------------

  let shownIds = null; // ids in the previous render; new ones are highlighted
  let selectedId = null; // the entry whose trace id is shown, kept across re-renders
  let inFlight = false;
  let again = false;

  function setLogsState(kind, text) {
    els.logsState.className = kind === "error" ? "state-error" : "muted";
    els.logsState.textContent = text;
  }

  function logRow(entry) {
    const row = element("tr", null, `level-${String(entry.level).toLowerCase()}`);
    row.dataset.id = entry.id;
    if (shownIds !== null && !shownIds.has(entry.id)) row.classList.add("fresh");

    const created = new Date(entry.created_at);
    const time = element("td", Number.isNaN(created.getTime()) ? entry.created_at : timeOf(created), "col-time");
    time.title = entry.created_at;

    const level = element("td", null, "col-level");
    level.append(element("span", entry.level, `pill pill-${String(entry.level).toLowerCase()}`));

    const name = element("td", null, "col-name");
    const entryName = element("span", entry.name, "entry-name");
    entryName.title = entry.name;
    name.append(entryName);
    if (entry.event_id) {
      const tag = element("span", "via RabbitMQ", "tag");
      tag.title = `event ${entry.event_id}`;
      name.append(tag);
    }

    const fullData = String(entry.data ?? "");
    const data = element(
      "td",
      fullData.length > MAX_DATA_CHARS ? `${fullData.slice(0, MAX_DATA_CHARS)}…` : fullData,
      "col-data",
    );
    if (fullData.length > MAX_DATA_CHARS) data.title = fullData;

    row.append(time, level, name, data);
    // A click (or Enter) shows the entry's trace id below the table.
    row.tabIndex = 0;
    row.title = "Show this entry's trace id";
    if (entry.id === selectedId) row.classList.add("selected");
    row.addEventListener("click", () => selectEntry(entry, row));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        selectEntry(entry, row);
      }
    });
    return row;
  }

  // Stored entries carry the trace id of the request that caused them (`trace_id`), when the
  // logger stores one.
  function selectEntry(entry, row) {
    selectedId = entry.id;
    for (const other of els.logs.querySelectorAll("tr.selected")) other.classList.remove("selected");
    row.classList.add("selected");
    const traceId = typeof entry.trace_id === "string" && entry.trace_id !== "" ? entry.trace_id : null;
    els.entryTrace.className = "entry-trace";
    els.entryTrace.dataset.entryId = entry.id;
    const what = `${entry.name} at ${row.querySelector(".col-time")?.textContent ?? ""}: `;
    const id = element("code", traceId ?? "no trace id", traceId === null ? "muted" : "");
    id.id = "entry-trace-id";
    els.entryTrace.replaceChildren(document.createTextNode(`${what}trace `), id);
  }

  function renderLogs(entries) {
    if (entries.length === 0) {
      const row = element("tr", null, "empty");
      row.append(element("td", "No entries yet: press Test Log or Test Event.", "muted"));
      row.firstChild.colSpan = 4;
      els.logs.replaceChildren(row);
    } else {
      els.logs.replaceChildren(...entries.map(logRow));
    }
    shownIds = new Set(entries.map((entry) => entry.id));
  }

  async function refreshLogs() {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    try {
      const { status, text } = await post("/handle", JSON.stringify({ action: "logs", logs: { limit: LOG_LIMIT } }));
      const body = parse(text);
      if (status === 200 && body && Array.isArray(body.data)) {
        renderLogs(body.data);
        setLogsState("ok", `updated ${timeOf(new Date())}`);
      } else {
        const reason = status === 401 ? SIGN_IN_HINT : body && typeof body.message === "string" ? body.message : text.slice(0, 120);
        setLogsState("error", `broker answered ${status}: ${reason}`);
      }
    } catch (error) {
      setLogsState("error", `broker unreachable: ${error.message}`);
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        refreshLogs();
      }
    }
  }

  function poll() {
    setTimeout(async () => {
      if (!document.hidden) await refreshLogs();
      poll();
    }, POLL_MS);
  }

  // --- wiring -----------------------------------------------------------------------------

  for (const key of Object.keys(REQUESTS)) {
    const button = $(`btn-${key}`);
    button.addEventListener("click", () => send(key, button));
  }

  $("btn-clear").addEventListener("click", () => {
    els.output.replaceChildren(element("li", "Output shows here…", "muted placeholder"));
    els.sentTarget.textContent = "";
    els.sent.replaceChildren(element("span", "Nothing sent yet…", "muted"));
    els.received.replaceChildren(element("span", "Nothing received yet…", "muted"));
    delete els.received.dataset.action;
    els.timing.replaceChildren(element("li", "No request yet.", "muted placeholder"));
    els.traceId.textContent = "none yet";
    els.traceId.classList.add("muted");
    delete els.traceId.dataset.traceId;
    setStatus("idle", "no request yet");
  });

  refreshLogs();
  poll();
  document.body.dataset.ready = "true";
})();
