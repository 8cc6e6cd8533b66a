// The Sentiment page's chart: hourly weighted sentiment and mentions beside the stored daily closes.
(function () {
  const node = document.getElementById("sentiment-data");
  const target = document.getElementById("chart-sentiment");
  if (!node || !target || !window.Plotly) return;
  const d = JSON.parse(node.textContent);
  const traces = [
    { x: d.hours, y: d.sentiment, name: "Weighted sentiment", type: "scatter", mode: "lines+markers", yaxis: "y" },
    { x: d.hours, y: d.mentions, name: "Mentions", type: "bar", yaxis: "y3", opacity: 0.3 },
    { x: d.days, y: d.closes, name: "Close", type: "scatter", mode: "lines", yaxis: "y2" },
  ];
  if (d.confluence.length) {
    traces.push({ x: d.confluence_hours, y: d.confluence.map((v) => v / 100), name: "Confluence / 100", type: "scatter", mode: "lines", yaxis: "y", line: { dash: "dot" } });
  }
  window.Plotly.newPlot(target, traces, {
    margin: { t: 10, r: 60, b: 40, l: 50 },
    yaxis: { title: "compound", range: [-1, 1] },
    yaxis2: { title: "close", overlaying: "y", side: "right" },
    yaxis3: { overlaying: "y", visible: false },
    legend: { orientation: "h" },
  }, { displayModeBar: false, responsive: true });
})();
