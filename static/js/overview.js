/* The overview page, kept fresh without a reload.
 *
 * The server renders everything first (the page works without JavaScript); this script then
 * - polls the overview's fragments (GET /overview/fragments?account=..., every 5 s): the parts of the page
 *   that change (last synced, the sync progress line, the "broker unreachable" / "stale" banners, the
 *   figures, the open positions, the recent fills), rendered by the server from the very templates the
 *   page includes (templates/portfolio/_overview_*.html), and swaps in the parts that changed
 *   (Live.swap: an unchanged part is not repainted);
 * - turns "Sync now" into a request to the API, then follows the sync through the same fragments every
 *   1.5 s until the server says none is running, and shows the server's wording of how it ended; and
 * - draws the equity curve and drawdown charts with Plotly from the history API (decimal strings turned
 *   into numbers for plotting only; Plotly formats the axes and the hover text).
 *
 * It formats no amount, quantity or time itself (the template filters in portfolio/templatetags/ are the
 * one formatter) and reads no run message: the server decides which banner shows and what progress says.
 */
(function () {
  "use strict";

  const root = document.getElementById("overview");
  if (!root || !window.Live) return;
  const Live = window.Live;
  const data = root.dataset;
  const PARTS = ["last_synced", "banners", "cards", "positions", "risk", "fills"]; // "progress" is handled apart
  const FOLLOW_EVERY = 1500;
  const FOLLOW_AT_MOST = 120000;

  const form = document.getElementById("sync-form");
  const button = form && form.querySelector("button");
  const state = {
    following: false, // a "Sync now" from this page is being followed
    said: false, // the progress line holds this script's words (an outcome, an error): kept until a sync runs
  };

  function progress() {
    return root.querySelector('[data-fragment="progress"]');
  }

  function say(text) {
    Live.setText(progress(), text);
    state.said = true;
  }

  function render(body) {
    const fragments = body.fragments || {};
    const parts = {};
    for (const name of PARTS) parts[name] = fragments[name];
    // The server's progress line ("Syncing… (running since 14:05)" or nothing), unless this script is
    // following a sync or showing how one ended and no other has started since.
    if (!state.following && (body.in_progress || !state.said)) {
      parts.progress = fragments.progress;
      state.said = false;
    }
    Live.swap(root, parts);
  }

  // --- "Sync now" ------------------------------------------------------------------------------
  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function follow() {
    const started = Date.now();
    while (Date.now() - started < FOLLOW_AT_MOST) {
      let body;
      try {
        body = await Live.getJSON(data.fragmentsUrl);
      } catch (error) {
        await sleep(FOLLOW_EVERY);
        continue;
      }
      render(body);
      const fragments = body.fragments || {};
      if (!body.in_progress) {
        Live.swap(root, { progress: fragments.outcome }); // "Synced at 14:05: 1 new, ..." or why not
        state.said = true;
        return finish();
      }
      Live.swap(root, { progress: fragments.progress });
      await sleep(FOLLOW_EVERY);
    }
    say("Still syncing after two minutes: the worker may be busy. The figures update when it ends.");
    finish();
  }

  function finish() {
    state.following = false;
    if (button) button.disabled = false;
  }

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (state.following) return;
      state.following = true;
      button.disabled = true;
      say("Requesting a sync…");
      try {
        await Live.postJSON(data.syncUrl, { account: data.account });
      } catch (error) {
        finish();
        if (!error.data) return form.submit(); // network trouble: the plain form still works
        const detail = error.data.detail || (error.data.account || []).join(" ") || error.message;
        say("Sync not started: " + detail);
        return;
      }
      say("Syncing…");
      follow();
    });
  }

  // --- charts ----------------------------------------------------------------------------------
  function chartMessage(element, text) {
    element.classList.add("is-empty");
    element.replaceChildren();
    const message = document.createElement("p");
    message.className = "muted chart-msg";
    message.textContent = text;
    element.appendChild(message);
  }

  async function drawCharts() {
    const equity = document.getElementById("chart-equity");
    const drawdown = document.getElementById("chart-drawdown");
    let points;
    try {
      points = ((await Live.getJSON(data.historyUrl)).points || []).filter((p) => p.twr_index !== null);
    } catch (error) {
      chartMessage(equity, "The history could not be loaded.");
      chartMessage(drawdown, "The history could not be loaded.");
      return;
    }
    if (!points.length) {
      const text = "No performance history yet: it is computed after each market close.";
      chartMessage(equity, text);
      chartMessage(drawdown, text);
      return;
    }
    if (!window.Plotly) {
      chartMessage(equity, "The chart library did not load.");
      chartMessage(drawdown, "The chart library did not load.");
      return;
    }
    const number = (value) => (value === null || value === undefined ? null : Number(value));
    const x = points.map((p) => p.as_of);
    const mode = points.length < 3 ? "lines+markers" : "lines";
    const config = { responsive: true, displayModeBar: false };
    // No height: Plotly takes the container's, which the stylesheet sets (lower on phones).
    const layout = (yaxis) => ({
      autosize: true,
      margin: { l: 52, r: 12, t: 8, b: 32 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2330" },
      xaxis: { type: "date", gridcolor: "#eef0f3", linecolor: "#e5e7eb", fixedrange: true },
      yaxis: Object.assign({ gridcolor: "#eef0f3", zerolinecolor: "#d1d5db", fixedrange: true }, yaxis),
      showlegend: false,
      hoverlabel: { bgcolor: "#111827", font: { color: "#fff" } },
    });
    equity.replaceChildren();
    drawdown.replaceChildren();
    window.Plotly.newPlot(equity, [{
      x, y: points.map((p) => number(p.twr_index)), type: "scatter", mode,
      line: { color: "#2457d6", width: 2 },
      customdata: points.map((p) => number(p.twr)),
      hovertemplate: "%{x|%b %d, %Y}<br>Index %{y:.4f} (%{customdata:+.2%})<extra></extra>",
    }], layout({ tickformat: ".2f" }), config);
    window.Plotly.newPlot(drawdown, [{
      x, y: points.map((p) => (p.drawdown === null ? null : Number(p.drawdown) * 100)), type: "scatter", mode,
      fill: "tozeroy", line: { color: "#c0262d", width: 1.5 }, fillcolor: "rgba(192,38,45,0.15)",
      hovertemplate: "%{x|%b %d, %Y}<br>%{y:.2f}%<extra></extra>",
    }], layout({ ticksuffix: "%", rangemode: "tozero" }), config);
  }

  // --- start -----------------------------------------------------------------------------------
  Live.poll(data.fragmentsUrl, render, { every: 5000 });
  drawCharts();
})();
