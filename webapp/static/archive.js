// The archive page's chart: predictions per flight date, stacked by predicted class (Chart.js,
// served by the web app itself; the data sits in the page as JSON, no second request).
(() => {
  const holder = document.getElementById("archive-data");
  const canvas = document.getElementById("archive-chart");
  if (!holder || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(holder.textContent);
  const days = Object.keys(data.per_day).sort();
  const css = getComputedStyle(document.documentElement);
  const datasets = Object.entries(data.labels).map(([cls, label]) => ({
    label,
    data: days.map((day) => data.per_day[day][cls] || 0),
    backgroundColor: css.getPropertyValue(`--c${cls}`).trim() || undefined,
    borderWidth: 0,
  }));
  canvas.dataset.days = String(days.length);
  new Chart(canvas, {
    type: "bar",
    data: { labels: days, datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, ticks: { autoSkip: true, maxTicksLimit: 16 } },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: "predictions" } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });
  canvas.dataset.ready = "1";
})();
