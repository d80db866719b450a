// The prediction page: submit over Socket.IO, then wait in the room of our request UUID.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("fd-data").textContent);
  const form = document.getElementById("flight-form");
  const origin = form.elements.Origin, dest = form.elements.Dest;
  const el = (id) => document.getElementById(id);
  const socket = io({ transports: ["websocket", "polling"] });
  // current: the UUID whose answer the page shows or waits for. A result can reach the page
  // before the ack that names its UUID (the server joins the room before producing, and the
  // answer may be pushed first): results arriving while a submit awaits its ack wait in `early`.
  let current = null, timer = null, sentAt = 0, awaitingAck = false, answered = false, reasking = null;
  const early = new Map();

  // Only offer destinations the model knows from the chosen origin.
  function filterDestinations() {
    const allowed = new Set(data.routes[origin.value] || []);
    for (const opt of dest.options) {
      if (!opt.value) continue;
      opt.hidden = opt.disabled = origin.value !== "" && !allowed.has(opt.value);
    }
    if (dest.selectedOptions[0] && dest.selectedOptions[0].disabled) dest.value = "";
  }
  origin.addEventListener("change", filterDestinations);
  filterDestinations();

  function clearErrors() {
    form.querySelectorAll(".field-error").forEach((s) => (s.textContent = ""));
    form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
    el("form-error").textContent = "";
  }

  function showErrors(message, fields) {
    el("form-error").textContent = message || "";
    for (const [name, text] of Object.entries(fields || {})) {
      const slot = form.querySelector(`.field-error[data-for="${name}"]`);
      if (slot) slot.textContent = text;
      if (form.elements[name]) form.elements[name].setAttribute("aria-invalid", "true");
    }
  }

  // Helpful checks before the round trip; the server validates again with the shared schema.
  function browserChecks(values) {
    const fields = {};
    for (const name of ["Carrier", "Origin", "Dest", "FlightDate", "CRSDepTime", "CRSArrTime", "DepDelay"]) {
      if (!values[name]) fields[name] = "required";
    }
    for (const name of ["CRSDepTime", "CRSArrTime"]) {
      const v = values[name];
      if (v && (!/^\d{3,4}$/.test(v) || +v.slice(-2) > 59 || +v.slice(0, -2) > 23)) fields[name] = "use HHMM, e.g. 0930";
    }
    return fields;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors();
    const values = Object.fromEntries(new FormData(form).entries());
    const fields = browserChecks(values);
    if (Object.keys(fields).length) return showErrors("Please correct the highlighted fields.", fields);
    form.querySelector("button").disabled = true;
    el("result").hidden = false;
    el("answer").hidden = true;
    el("timeout").hidden = true;
    el("progress").hidden = false;
    el("progress").textContent = "Sending your flight…";
    el("result").scrollIntoView({ block: "nearest", behavior: "smooth" });
    sentAt = performance.now();
    current = null; answered = false; awaitingAck = true; early.clear();
    // The server answers once Kafka has the request, which may take a broker failover.
    socket.timeout((data.publish_timeout_s + 5) * 1000).emit("predict", values, (err, ack) => {
      awaitingAck = false;
      form.querySelector("button").disabled = false;
      if (err) { el("progress").hidden = true; return showErrors(lostMessage || "The server did not answer; please retry.", {}); }
      if (ack.error) { el("result").hidden = true; return showErrors(ack.error, ack.fields); }
      current = ack.uuid;
      el("progress").textContent = "Predicting… (request " + ack.uuid + ")";
      startTimer(ack.timeout_s);
      const first = early.get(ack.uuid);
      early.clear();
      if (first) first.kind === "prediction" ? showPrediction(first.body) : onRejected(first.body);
    });
  });

  function startTimer(seconds) {
    clearTimeout(timer);
    const uuid = current;
    timer = setTimeout(() => onTimeout(uuid), (seconds || data.timeout_s) * 1000);
  }

  // Remember a result for a UUID the page does not know yet (see `early`); true if kept.
  function keptForLater(kind, uuid, body) {
    if (!awaitingAck || !uuid || uuid === current) return false;
    if (early.size < 20) early.set(uuid, { kind, body });
    return true;
  }

  function onTimeout(uuid) {
    if (uuid !== current || answered) return;
    clearInterval(reasking);
    el("progress").hidden = true;
    const t = el("timeout");
    t.hidden = false;
    t.innerHTML = "No answer yet. The request is safely queued; look it up later: " +
      `<a href="/api/v1/predictions/${uuid}">${uuid}</a>`;
    try { localStorage.setItem("fd-last-uuid", uuid); } catch (e) { /* private mode */ }
  }

  function showPrediction(p) {
    if (!p || p.UUID !== current || answered) return;
    answered = true;
    clearTimeout(timer);
    clearInterval(reasking);
    el("progress").hidden = true;
    el("timeout").hidden = true;
    el("answer").hidden = false;
    el("answer-label").textContent = p.label;
    el("answer-label").dataset.cls = p.prediction;
    el("answer-uuid").textContent = p.UUID;
    el("answer-model").textContent = `${p.model_name} ${/^\d+$/.test(p.model_version) ? "v" + p.model_version : p.model_version}`;
    el("answer-latency").textContent = `${Math.round(performance.now() - sentAt)} ms`;
    const rows = (p.probabilities || []).map((prob, cls) =>
      `<tr${cls === p.prediction ? ' class="chosen"' : ""}><th>${data.labels[cls]}</th>` +
      `<td><meter min="0" max="1" value="${prob}"></meter></td><td>${(prob * 100).toFixed(1)}%</td></tr>`);
    el("answer-probs").innerHTML = rows.join("");
    el("result").scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
  socket.on("prediction", (p) => {
    if (p && keptForLater("prediction", p.UUID, p)) return;
    showPrediction(p);
  });

  // The streaming job refused a request the page accepted (a safety net: both validate alike).
  function onRejected(r) {
    if (!r || r.uuid !== current || answered) return;
    answered = true;
    clearTimeout(timer);
    clearInterval(reasking);
    el("progress").hidden = true;
    el("result").hidden = true;
    showErrors("The prediction service refused this flight: " + (r.reason || "no reason given"), r.fields || {});
  }
  socket.on("rejected", (r) => {
    if (r && keptForLater("rejected", r.uuid, r)) return;
    onRejected(r);
  });

  // The connection dropped (a web app restart, the network, or the server closing a socket
  // whose message was too large): the wait pauses and the page says so; on reconnecting it
  // asks for its pending answer again, and keeps asking every 2 s, since a new web process
  // only hears answers produced after it started (the stored prediction is found by UUID).
  let lostMessage = null;
  socket.on("disconnect", (reason, details) => {
    const code = details && details.description && details.description.code;
    lostMessage = "The connection to the server was lost (" + reason + (code ? ", code " + code : "") +
      (code === 1009 ? ": a message was too large" : "") + "); reconnecting…";
    if (current && !answered) {
      clearTimeout(timer);
      clearInterval(reasking);
      el("progress").textContent = lostMessage;
    }
  });

  function askAgain() {
    if (!current || answered) return clearInterval(reasking);
    socket.emit("watch", { uuid: current }, (ack) => {
      if (ack && ack.status === "done") showPrediction(ack.prediction);
      if (ack && ack.status === "rejected") onRejected(ack.rejection);
    });
  }

  socket.on("connect", () => {
    const wasLost = lostMessage !== null;
    lostMessage = null;
    if (!current || answered) return;
    if (wasLost) {
      el("progress").textContent = "Reconnected; asking for the answer to request " + current + "…";
      startTimer();
      clearInterval(reasking);
      reasking = setInterval(askAgain, 2000);
    }
    askAgain();
  });
})();
