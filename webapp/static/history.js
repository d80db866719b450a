// Show each prediction's request time in the reader's local time zone.
document.querySelectorAll("td.ts").forEach((td) => {
  const ms = Number(td.dataset.ms);
  if (ms) td.textContent = new Date(ms).toLocaleString();
});
