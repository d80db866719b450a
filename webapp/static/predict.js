// The prediction page: submit over Socket.IO, then wait in the room of our request UUID.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("fd-data").textContent);
  const form = document.getElementById("flight-form");
  const origin = form.elements.Origin, dest = form.elements.Dest;
  const el = (id) => document.getElementById(id);
  const socket = io({ transports: ["websocket", "polling"] });
  let current = null, timer = null, sentAt = 0;

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
    sentAt = performance.now();
    socket.timeout(10000).emit("predict", values, (err, ack) => {
      form.querySelector("button").disabled = false;
      if (err) { el("progress").hidden = true; return showErrors("The server did not answer; please retry.", {}); }
      if (ack.error) { el("result").hidden = true; return showErrors(ack.error, ack.fields); }
      current = ack.uuid;
      el("progress").textContent = "Predicting… (request " + ack.uuid + ")";
      clearTimeout(timer);
      timer = setTimeout(() => onTimeout(ack.uuid), (ack.timeout_s || data.timeout_s) * 1000);
    });
  });

  function onTimeout(uuid) {
    if (uuid !== current) return;
    el("progress").hidden = true;
    const t = el("timeout");
    t.hidden = false;
    t.innerHTML = "No answer yet. The request is safely queued; look it up later: " +
      `<a href="/api/v1/predictions/${uuid}">${uuid}</a>`;
    try { localStorage.setItem("fd-last-uuid", uuid); } catch (e) { /* private mode */ }
  }

  socket.on("prediction", (p) => {
    if (!p || p.UUID !== current) return;
    clearTimeout(timer);
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
  });

  // The streaming job refused a request the page accepted (a safety net: both validate alike).
  function onRejected(r) {
    if (!r || r.uuid !== current) return;
    clearTimeout(timer);
    el("progress").hidden = true;
    el("result").hidden = true;
    showErrors("The prediction service refused this flight: " + (r.reason || "no reason given"), r.fields || {});
  }
  socket.on("rejected", onRejected);

  // A reconnect joins a new socket: re-watch the pending request so its answer still arrives.
  socket.on("connect", () => {
    if (current) socket.emit("watch", { uuid: current }, (ack) => {
      if (ack && ack.status === "done") socket.listeners("prediction").forEach((f) => f(ack.prediction));
      if (ack && ack.status === "rejected") onRejected(ack.rejection);
    });
  });
})();
