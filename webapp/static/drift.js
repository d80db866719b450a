// The model page's drift chart (Chart.js, served by the web app itself): each monitor window's
// largest PSI, one line per model version, the moderate and significant thresholds dashed.
// The data sits in the page as JSON (templates/outcomes/_drift.html), no second request.
(() => {
  const holder = document.getElementById("drift-data");
  const canvas = document.getElementById("drift-psi");
  if (!holder || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(holder.textContent);
  const palette = ["#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285"];
  const points = data.points.filter((p) => p.max_psi !== null);
  const times = [...new Set(points.map((p) => p.t))].sort((a, b) => a - b);
  const versions = [...new Set(points.map((p) => p.version))].sort();
  const datasets = versions.map((version, i) => {
    const byTime = new Map(points.filter((p) => p.version === version).map((p) => [p.t, p]));
    const color = palette[i % palette.length];
    return {
      label: `version ${version}, largest PSI`, spanGaps: true, borderColor: color, backgroundColor: color,
      data: times.map((t) => (byTime.has(t) ? byTime.get(t).max_psi : null)),
      pointRadius: times.map((t) => (byTime.has(t) && byTime.get(t).alert ? 5 : 2)),
    };
  });
  for (const [name, value, color] of [["moderate", data.moderate, "#e67700"], ["significant", data.significant, "#c92a2a"]]) {
    datasets.push({ label: `${name} (${value})`, data: times.map(() => value), borderColor: color,
                    borderDash: [6, 4], pointRadius: 0, borderWidth: 1.5 });
  }
  canvas.dataset.points = String(points.length);
  new Chart(canvas, {
    type: "line",
    data: { labels: times.map((t) => new Date(t).toISOString().slice(11, 19) + " UTC"), datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: { y: { min: 0, title: { display: true, text: "PSI" } },
                x: { ticks: { autoSkip: true, maxTicksLimit: 16 } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
  canvas.dataset.ready = "1";
})();
