// The model page's live charts (Chart.js, served by the web app itself): live accuracy per flight
// date and per wall-time window, one line per model version, its holdout accuracy dashed beside it.
// The data sits in the page as JSON (templates/outcomes/_model.html), no second request.
(() => {
  const holder = document.getElementById("live-data");
  if (!holder || typeof Chart === "undefined") return;
  const data = JSON.parse(holder.textContent);
  const palette = ["#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285"];

  function draw(canvasId, points, label) {
    const canvas = document.getElementById(canvasId);
    if (!canvas) return;
    const times = [...new Set(points.map((p) => p.t))].sort((a, b) => a - b);
    const versions = [...new Set(points.map((p) => p.version))].sort();
    const datasets = [];
    versions.forEach((version, i) => {
      const color = palette[i % palette.length];
      const byTime = new Map(points.filter((p) => p.version === version).map((p) => [p.t, p]));
      datasets.push({
        label: `version ${version}, live`,
        data: times.map((t) => (byTime.has(t) ? byTime.get(t).accuracy : null)),
        borderColor: color, backgroundColor: color, spanGaps: true, pointRadius: 2,
      });
      const holdout = data.holdout[version];
      if (holdout !== null && holdout !== undefined) {
        datasets.push({
          label: `version ${version}, holdout`, data: times.map(() => holdout),
          borderColor: color, borderDash: [6, 4], pointRadius: 0, borderWidth: 1.5,
        });
      }
    });
    canvas.dataset.points = String(points.length);
    new Chart(canvas, {
      type: "line",
      data: { labels: times.map(label), datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { min: 0, max: 1, title: { display: true, text: "accuracy" } },
                  x: { ticks: { autoSkip: true, maxTicksLimit: 16 } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
    canvas.dataset.ready = "1";
  }

  const day = (t) => new Date(t).toISOString().slice(0, 10);
  const clock = (t) => new Date(t).toISOString().slice(11, 16) + " UTC";
  draw("live-by-date", data.flight_date, day);
  draw("live-by-wall", data.wall, clock);
})();
