/* The position page's price chart: stored bars as candlesticks (Plotly, vendored from the pinned plotly
 * package), the position's fills at their time and price (buys: upward triangles, sells: downward
 * triangles) and its other lifecycle events. The data is embedded in the page (json_script
 * "position-chart-data"), numbers as strings, turned into numbers here for drawing only.
 */
(function () {
  "use strict";

  const source = document.getElementById("position-chart-data");
  const element = document.getElementById("position-chart");
  if (!source || !element || !window.Plotly) return;
  const data = JSON.parse(source.textContent);
  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => (css.getPropertyValue(name) || fallback).trim();
  const pos = color("--pos", "#0a7a3d");
  const neg = color("--neg", "#c0262d");
  const muted = color("--muted", "#6b7280");
  const line = color("--line", "#e5e7eb");
  const num = (value) => (value === null || value === undefined || value === "" ? null : Number(value));

  const bars = data.bars;
  const traces = [
    {
      type: "candlestick",
      name: data.bar_size + " bars",
      x: bars.x,
      open: bars.open.map(num),
      high: bars.high.map(num),
      low: bars.low.map(num),
      close: bars.close.map(num),
      increasing: { line: { color: pos } },
      decreasing: { line: { color: neg } },
    },
  ];
  for (const [side, symbol, fill] of [
    ["BUY", "triangle-up", pos],
    ["SELL", "triangle-down", neg],
  ]) {
    const fills = data.fills.filter((f) => f.side === side);
    if (!fills.length) continue;
    traces.push({
      type: "scatter",
      mode: "markers",
      name: side === "BUY" ? "Buys" : "Sells",
      x: fills.map((f) => f.x),
      y: fills.map((f) => num(f.price)),
      text: fills.map((f) => f.label),
      marker: { symbol: symbol, size: 13, color: fill, line: { color: "#fff", width: 1 } },
      hovertemplate: "%{text}<br>%{y}<extra>" + (side === "BUY" ? "Buy" : "Sell") + "</extra>",
    });
  }
  const events = data.events.filter((e) => e.price !== null);
  if (events.length) {
    traces.push({
      type: "scatter",
      mode: "markers",
      name: "Other events",
      x: events.map((e) => e.x),
      y: events.map((e) => num(e.price)),
      text: events.map((e) => e.label),
      marker: { symbol: "diamond-open", size: 10, color: muted },
      hovertemplate: "%{text}<br>%{y}<extra></extra>",
    });
  }
  const shapes = data.events
    .filter((e) => e.price === null)
    .map((e) => ({ type: "line", xref: "x", yref: "paper", x0: e.x, x1: e.x, y0: 0, y1: 1, line: { color: muted, dash: "dot", width: 1 } }));
  const breaks = data.bar_size === "1d" ? [{ bounds: ["sat", "mon"] }] : [{ bounds: ["sat", "mon"] }, { bounds: [16, 9.5], pattern: "hour" }];
  window.Plotly.newPlot(
    element,
    traces,
    {
      margin: { l: 56, r: 12, t: 12, b: 36 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: muted },
      xaxis: { type: "date", gridcolor: line, linecolor: line, rangeslider: { visible: false }, rangebreaks: breaks },
      yaxis: { gridcolor: line, linecolor: line, zeroline: false },
      showlegend: true,
      legend: { orientation: "h", y: 1.08 },
      shapes: shapes,
    },
    { responsive: true, displaylogo: false, displayModeBar: false },
  );
})();
