/* The Performance page's charts: equity curve (TWR index), drawdown and monthly P&L, with Plotly.
 *
 * The data is embedded in the page (json_script "performance-data"), numbers as strings: they are
 * turned into numbers here, for drawing only. The hover labels that show an amount or a percentage come
 * already written by the server's template filters (twr_text, pnl_text); nothing is formatted here.
 */
(function () {
  "use strict";

  const source = document.getElementById("performance-data");
  if (!source || !window.Plotly) return;
  const data = JSON.parse(source.textContent);
  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => (css.getPropertyValue(name) || fallback).trim();
  const accent = color("--accent", "#2457d6");
  const pos = color("--pos", "#0a7a3d");
  const neg = color("--neg", "#c0262d");
  const muted = color("--muted", "#6b7280");
  const line = color("--line", "#e5e7eb");

  const num = (value) => (value === null || value === undefined || value === "" ? null : Number(value));
  const points = data.points || [];
  const dates = points.map((p) => p.date);

  function layout(extra) {
    return Object.assign(
      {
        margin: { l: 56, r: 12, t: 12, b: 36 },
        paper_bgcolor: "rgba(0,0,0,0)",
        plot_bgcolor: "rgba(0,0,0,0)",
        font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: muted },
        xaxis: { type: "date", gridcolor: line, linecolor: line, zeroline: false },
        yaxis: { gridcolor: line, linecolor: line, zerolinecolor: line },
        hovermode: "x unified",
        showlegend: false,
      },
      extra,
    );
  }
  const config = { responsive: true, displaylogo: false, displayModeBar: false };

  function draw(id, traces, extraLayout) {
    const element = document.getElementById(id);
    if (!element) return;
    window.Plotly.newPlot(element, traces, layout(extraLayout), config);
  }

  // Equity curve: the index itself, with the cumulative TWR in the hover text.
  draw(
    "chart-equity",
    [
      {
        x: dates,
        y: points.map((p) => num(p.twr_index)),
        customdata: points.map((p) => p.twr_text),
        type: "scatter",
        mode: points.length > 1 ? "lines" : "markers",
        line: { color: accent, width: 2 },
        hovertemplate: "Index %{y:.4f}<br>TWR %{customdata}<extra></extra>",
        connectgaps: false,
      },
    ],
    { yaxis: { gridcolor: line, linecolor: line, tickformat: ".2f" } },
  );

  draw(
    "chart-drawdown",
    [
      {
        x: dates,
        y: points.map((p) => num(p.drawdown)),
        type: "scatter",
        mode: points.length > 1 ? "lines" : "markers",
        fill: "tozeroy",
        line: { color: neg, width: 1.5 },
        fillcolor: "rgba(192, 38, 45, 0.15)",
        hovertemplate: "Drawdown %{y:.2%}<extra></extra>",
      },
    ],
    { yaxis: { gridcolor: line, linecolor: line, tickformat: ".0%", rangemode: "tozero" } },
  );

  const months = data.monthly_pnl || [];
  const pnl = months.map((m) => num(m.pnl));
  draw(
    "chart-monthly",
    [
      {
        x: months.map((m) => m.month + "-01"),
        y: pnl,
        customdata: months.map((m) => m.pnl_text),
        type: "bar",
        marker: { color: pnl.map((v) => (v < 0 ? neg : pos)) },
        hovertemplate: "%{x|%b %Y}: %{customdata}<extra></extra>",
      },
    ],
    {
      hovermode: "closest",
      // A label per month where there is room for it, per quarter on a phone.
      xaxis: { type: "date", tickformat: "%b %Y", dtick: window.innerWidth >= 700 ? "M1" : "M3", gridcolor: line, linecolor: line },
      yaxis: { gridcolor: line, linecolor: line, zerolinecolor: muted, tickformat: ",.0f", title: { text: data.currency } },
    },
  );
})();
