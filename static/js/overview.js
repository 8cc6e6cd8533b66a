/* The overview page, kept fresh without a reload.
 *
 * The server renders everything first (the page works without JavaScript); this script then
 * - polls the summary and the sync status every 5 s and rewrites only the text that changed,
 * - shows or hides the "broker unreachable" / "stale" banner and the "Last synced" text,
 * - re-fetches the open positions and the recent fills whenever a sync has finished,
 * - turns "Sync now" into a request to the API followed by live progress, and
 * - draws the equity curve and drawdown charts with Plotly.
 *
 * Numbers are formatted from their decimal strings exactly as portfolio/templatetags/ledger_format.py
 * does (half-up, no floats), and times as portfolio/templatetags/money.py does, so a poll that brings
 * nothing new repaints nothing.
 */
(function () {
  "use strict";

  const root = document.getElementById("overview");
  if (!root || !window.Live) return;
  const Live = window.Live;
  const data = root.dataset;
  const account = data.account;
  const baseCurrency = data.currency || "USD";
  const zone = document.documentElement.dataset.exchangeTz || "America/New_York";
  const fillsLimit = Number(data.fillsLimit) || 15;
  const BROKER_DOWN = ["broker unreachable", "broker request failed"];
  const ANOTHER_RUNNING = "another sync is running";
  const FOLLOW_EVERY = 1500;
  const FOLLOW_AT_MOST = 120000;

  // --- formats ---------------------------------------------------------------------------------
  const EMPTY = "–";
  const SYMBOLS = { USD: "$", EUR: "€", GBP: "£", JPY: "¥", CAD: "CA$", AUD: "A$", HKD: "HK$", CHF: "CHF " };
  const ZERO_DECIMAL = new Set(["JPY", "KRW", "HUF"]);

  function parse(value) {
    if (value === null || value === undefined || value === "") return null;
    let text = String(value).trim();
    if (/e/i.test(text)) {
      const number = Number(text);
      if (!Number.isFinite(number)) return null;
      text = number.toFixed(12);
    }
    const match = /^([-+]?)(\d*)(?:\.(\d*))?$/.exec(text);
    if (!match || (match[2] === "" && !match[3])) return null;
    const whole = match[2] || "0";
    const fraction = match[3] || "";
    return { negative: match[1] === "-", whole, fraction, nonzero: /[1-9]/.test(whole + fraction) };
  }

  // |value| x 10^shift rounded half-up to `places` decimals, with thousands separators.
  function fixed(parsed, places, shift) {
    let whole = parsed.whole;
    let fraction = parsed.fraction;
    if (shift) {
      fraction = fraction.padEnd(shift, "0");
      whole += fraction.slice(0, shift);
      fraction = fraction.slice(shift);
    }
    let scaled = BigInt(whole + (fraction + "0".repeat(places + 1)).slice(0, places + 1));
    const up = scaled % 10n >= 5n;
    scaled = scaled / 10n + (up ? 1n : 0n);
    const digits = scaled.toString().padStart(places + 1, "0");
    const head = digits.slice(0, digits.length - places).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return {
      text: places ? head + "." + digits.slice(digits.length - places) : head,
      negative: parsed.negative && scaled !== 0n,
    };
  }

  function decimals(parsed) {
    return parsed.fraction.replace(/0+$/, "").length;
  }

  function money(value, currency) {
    const parsed = parse(value);
    if (!parsed) return EMPTY;
    const code = (currency || "USD").toUpperCase();
    const result = fixed(parsed, ZERO_DECIMAL.has(code) ? 0 : 2, 0);
    const sign = result.negative ? "-" : "";
    const symbol = SYMBOLS[code];
    return symbol ? sign + symbol + result.text : sign + result.text + " " + code;
  }

  function signed(text, value) {
    const parsed = parse(value);
    return parsed && !parsed.negative && parsed.nonzero && text !== EMPTY && text[0] !== "-" ? "+" + text : text;
  }

  function signedMoney(value, currency) {
    return signed(money(value, currency), value);
  }

  function percent(value, places) {
    const parsed = parse(value);
    if (!parsed) return EMPTY;
    const result = fixed(parsed, places === undefined ? 2 : places, 2);
    return (result.negative ? "-" : "") + result.text + "%";
  }

  function signedPercent(value, places) {
    return signed(percent(value, places), value);
  }

  function quantity(value) {
    const parsed = parse(value);
    if (!parsed) return EMPTY;
    const result = fixed(parsed, decimals(parsed), 0);
    return (result.negative ? "-" : "") + result.text;
  }

  function price(value) {
    const parsed = parse(value);
    if (!parsed) return EMPTY;
    const result = fixed(parsed, Math.min(8, Math.max(2, decimals(parsed))), 0);
    return (result.negative ? "-" : "") + result.text;
  }

  function pnlClass(element, value) {
    const parsed = parse(value);
    const sign = !parsed || !parsed.nonzero ? "" : parsed.negative ? "neg" : "pos";
    if (element.classList.contains("pos") !== (sign === "pos")) element.classList.toggle("pos");
    if (element.classList.contains("neg") !== (sign === "neg")) element.classList.toggle("neg");
  }

  const clockFormat = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  function parts(date) {
    const out = {};
    for (const part of clockFormat.formatToParts(date)) out[part.type] = part.value;
    return out;
  }
  // "14:05", or "14:05 on Nov 19" when that is not today at the exchange (money.py's clock).
  function clock(iso) {
    if (!iso) return EMPTY;
    const at = parts(new Date(iso));
    const now = parts(new Date());
    const text = at.hour + ":" + at.minute;
    return at.year === now.year && at.month === now.month && at.day === now.day
      ? text : text + " on " + at.month + " " + at.day;
  }
  // "Nov 20, 09:32:15" (the template's date:"M j, H:i:s").
  function stamp(iso) {
    if (!iso) return EMPTY;
    const at = parts(new Date(iso));
    return at.month + " " + at.day + ", " + at.hour + ":" + at.minute + ":" + at.second;
  }

  function show(element, visible) {
    if (element && element.hidden === visible) element.hidden = !visible;
  }

  // --- state -----------------------------------------------------------------------------------
  const state = {
    lastSynced: data.lastSynced || null,
    outageSince: data.outageSince || null,
    stale: data.stale === "true",
    following: null,
  };
  const lastSyncedText = root.querySelector('[data-field="last-synced"]');
  const outageBanner = root.querySelector('[data-banner="outage"]');
  const staleBanner = root.querySelector('[data-banner="stale"]');
  const progress = document.getElementById("sync-progress");
  const form = document.getElementById("sync-form");
  const button = form && form.querySelector("button");

  function isBrokerDown(run) {
    return run && run.status === "SKIPPED" && BROKER_DOWN.some((prefix) => (run.message || "").startsWith(prefix));
  }

  function renderSyncTexts() {
    const ago = state.lastSynced ? Live.ago(state.lastSynced) : null;
    Live.setText(lastSyncedText, ago ? "Last synced " + ago : "Never synced");
    if (state.outageSince) {
      Live.setText(outageBanner, "Broker unreachable since " + clock(state.outageSince)
        + " - showing last known positions. " + (ago ? "Last synced " + ago + "." : "Never synced yet."));
    }
    show(outageBanner, Boolean(state.outageSince));
    if (state.stale && !state.outageSince) {
      Live.setText(staleBanner, "Data is stale: " + (ago ? "last synced " + ago + "." : "never synced yet."));
    }
    show(staleBanner, state.stale && !state.outageSince);
  }

  // A sync finished since we last looked: the positions and the fills may have changed too. (The page
  // and the API write the same instant differently, so compare instants, not strings.)
  function noteLastSynced(iso) {
    if (iso === undefined) return;
    const instant = (value) => (value ? new Date(value).getTime() : null);
    if (instant(iso) === instant(state.lastSynced)) return;
    state.lastSynced = iso;
    refreshTables();
  }

  // --- summary ---------------------------------------------------------------------------------
  function renderSummary(summary) {
    const currency = summary.currency || baseCurrency;
    root.querySelectorAll("[data-kpi]").forEach((element) => {
      const value = summary[element.dataset.kpi];
      const format = element.dataset.format;
      if (format === "percent") Live.setText(element, percent(value, 1));
      else if (format === "count") Live.setText(element, value === null || value === undefined ? EMPTY : String(value));
      else if ("signed" in element.dataset) {
        Live.setText(element, signedMoney(value, currency));
        pnlClass(element, value);
      } else Live.setText(element, money(value, currency));
    });
    state.stale = Boolean(summary.stale);
    noteLastSynced(summary.last_synced_at);
    renderSyncTexts();
  }

  // --- sync status -----------------------------------------------------------------------------
  function mineOf(body) {
    return (body.results || []).find((row) => row.account === account) || null;
  }

  function renderStatus(body) {
    const mine = mineOf(body);
    if (!mine) return;
    const run = mine.latest_run;
    if (run && run.status === "SUCCESS") state.outageSince = null;
    else if (isBrokerDown(run)) state.outageSince = state.outageSince || run.started_at;
    state.stale = Boolean(mine.stale);
    noteLastSynced(mine.last_success_at);
    renderSyncTexts();
    if (state.following) return;
    // A scheduled sync (or one started elsewhere) in progress.
    if (mine.in_progress && run && run.status === "RUNNING") {
      Live.setText(progress, "Syncing… (running since " + clock(run.started_at) + ")");
    } else if (progress.textContent.startsWith("Syncing…")) {
      Live.setText(progress, "");
    }
  }

  function outcome(run) {
    if (!run || run.message === ANOTHER_RUNNING) return "Sync finished.";
    if (run.status === "SUCCESS") {
      return "Synced at " + clock(run.finished_at) + ": " + run.created + " new, " + run.updated + " updated, "
        + run.closed + " closed, " + run.unchanged + " unchanged.";
    }
    return "Sync " + run.status.toLowerCase() + ": " + (run.message || "no details") + ".";
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function follow(run) {
    state.following = run;
    const started = Date.now();
    Live.setText(progress, "Syncing… (" + run.status.toLowerCase() + ")");
    while (Date.now() - started < FOLLOW_AT_MOST) {
      await sleep(FOLLOW_EVERY);
      let body;
      try {
        body = await Live.getJSON(data.statusUrl);
      } catch (error) {
        continue;
      }
      const mine = mineOf(body);
      renderStatus(body);
      const latest = mine && mine.latest_run;
      if (mine && !mine.in_progress && latest && latest.status !== "RUNNING") {
        Live.setText(progress, outcome(latest));
        return finishFollowing(true);
      }
      if (latest) Live.setText(progress, "Syncing… (" + latest.status.toLowerCase() + ")");
    }
    Live.setText(progress, "Still syncing after two minutes: the worker may be busy. The figures update when it ends.");
    finishFollowing(false);
  }

  function finishFollowing(refresh) {
    state.following = null;
    if (button) button.disabled = false;
    if (refresh) {
      summaryPoll.now();
      refreshTables();
    }
  }

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (state.following) return;
      button.disabled = true;
      Live.setText(progress, "Requesting a sync…");
      let body;
      try {
        body = await Live.postJSON(data.syncUrl, { account });
      } catch (error) {
        if (!error.data) return form.submit(); // network trouble or CSRF: the plain form still works
        const detail = error.data.detail || (error.data.account || []).join(" ") || error.message;
        Live.setText(progress, "Sync not started: " + detail);
        button.disabled = false;
        return;
      }
      const run = (body.runs || [])[0];
      if (run && (run.status === "RUNNING" || run.message === ANOTHER_RUNNING)) {
        follow(run);
      } else {
        Live.setText(progress, "Sync not started: " + ((run && run.message) || "no run was created") + ".");
        button.disabled = false;
      }
    });
  }

  // --- tables ----------------------------------------------------------------------------------
  function cell(row, name) {
    return row.querySelector('[data-cell="' + name + '"]');
  }

  // Keyed by id: existing rows get their text updated, new ones are built, gone ones removed.
  function syncRows(table, items, build, fill) {
    const body = table.tBodies[0];
    const existing = new Map(Array.from(body.rows, (row) => [row.dataset.id, row]));
    const wanted = new Set(items.map((item) => String(item.id)));
    existing.forEach((row, id) => { if (!wanted.has(id)) row.remove(); });
    items.forEach((item, index) => {
      let row = existing.get(String(item.id));
      if (!row) row = build(item);
      fill(row, item);
      if (body.rows[index] !== row) body.insertBefore(row, body.rows[index] || null);
    });
    show(table, items.length > 0);
    show(root.querySelector('[data-empty="' + table.dataset.kind + '"]'), items.length === 0);
  }

  function newRow(item, cells) {
    const row = document.createElement("tr");
    row.dataset.id = String(item.id);
    if (item.currency) row.dataset.currency = item.currency;
    for (const [tag, name, numeric] of cells) {
      const element = document.createElement(tag);
      if (tag === "th") element.scope = "row";
      if (numeric) element.className = "num";
      element.dataset.cell = name;
      row.appendChild(element);
    }
    return row;
  }

  const positionsLimit = Number(root.dataset.positionsLimit) || 50;
  const positionsTable = document.getElementById("positions-table");
  const fillsTable = document.getElementById("fills-table");
  positionsTable.dataset.kind = "positions";
  fillsTable.dataset.kind = "fills";

  function buildPosition(item) {
    const row = newRow(item, [["th", "name", false], ["td", "quantity", true], ["td", "average_price", true],
      ["td", "current_price", true], ["td", "market_value", true], ["td", "unrealized_pnl", true],
      ["td", "unrealized_pnl_pct", true]]);
    const name = cell(row, "name");
    name.removeAttribute("data-cell");
    const link = document.createElement("a");
    link.dataset.cell = "description";
    link.href = data.detailUrl.replace("/0/", "/" + item.id + "/");
    const badge = document.createElement("span");
    badge.className = "badge badge-warn";
    badge.dataset.cell = "missing";
    badge.textContent = "missing at broker";
    name.append(link, badge);
    return row;
  }

  function fillPosition(row, item) {
    const currency = item.currency || row.dataset.currency || baseCurrency;
    Live.setText(cell(row, "description"), item.description);
    show(cell(row, "missing"), Boolean(item.missing_since));
    Live.setText(cell(row, "quantity"), quantity(item.quantity));
    Live.setText(cell(row, "average_price"), price(item.average_price));
    Live.setText(cell(row, "current_price"), price(item.current_price));
    Live.setText(cell(row, "market_value"), money(item.market_value, currency));
    Live.setText(cell(row, "unrealized_pnl"), signedMoney(item.unrealized_pnl, currency));
    pnlClass(cell(row, "unrealized_pnl"), item.unrealized_pnl);
    Live.setText(cell(row, "unrealized_pnl_pct"), signedPercent(item.unrealized_pnl_pct));
    pnlClass(cell(row, "unrealized_pnl_pct"), item.unrealized_pnl_pct);
  }

  function buildFill(item) {
    const row = newRow(item, [["td", "executed_at", false], ["td", "description", false], ["td", "side", false],
      ["td", "quantity", true], ["td", "price", true], ["td", "commission", true], ["td", "realized_pnl", true]]);
    const side = document.createElement("span");
    cell(row, "side").appendChild(side);
    return row;
  }

  function fillFill(row, item) {
    const currency = item.currency || row.dataset.currency || baseCurrency;
    Live.setText(cell(row, "executed_at"), stamp(item.executed_at));
    Live.setText(cell(row, "description"), item.description);
    const side = cell(row, "side").firstElementChild;
    Live.setText(side, item.side === "BUY" ? "Buy" : "Sell");
    const sideClass = "side side-" + String(item.side).toLowerCase();
    if (side.className !== sideClass) side.className = sideClass;
    Live.setText(cell(row, "quantity"), quantity(item.quantity));
    Live.setText(cell(row, "price"), price(item.price));
    Live.setText(cell(row, "commission"), money(item.commission, item.commission_currency));
    Live.setText(cell(row, "realized_pnl"), signedMoney(item.realized_pnl, currency));
    pnlClass(cell(row, "realized_pnl"), item.realized_pnl);
  }

  let refreshing = null;
  function refreshTables() {
    if (refreshing) return refreshing;
    refreshing = Promise.all([
      Live.getJSON(data.positionsUrl).then((body) => {
        syncRows(positionsTable, (body.results || []).slice(0, positionsLimit), buildPosition, fillPosition);
        const count = body.count === undefined ? (body.results || []).length : body.count;
        Live.setText(root.querySelector('[data-field="positions-count"]'), String(count));
      }),
      Live.getJSON(data.fillsUrl).then((body) => {
        syncRows(fillsTable, (body.results || []).slice(0, fillsLimit), buildFill, fillFill);
      }),
    ]).catch((error) => console.warn(error)).finally(() => { refreshing = null; });
    return refreshing;
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
      x, y: points.map((p) => Number(p.twr_index)), type: "scatter", mode,
      line: { color: "#2457d6", width: 2 },
      customdata: points.map((p) => signedPercent(p.twr)),
      hovertemplate: "%{x|%b %d, %Y}<br>Index %{y:.4f} (%{customdata})<extra></extra>",
    }], layout({ tickformat: ".2f" }), config);
    window.Plotly.newPlot(drawdown, [{
      x, y: points.map((p) => (p.drawdown === null ? null : Number(p.drawdown) * 100)), type: "scatter", mode,
      fill: "tozeroy", line: { color: "#c0262d", width: 1.5 }, fillcolor: "rgba(192,38,45,0.15)",
      hovertemplate: "%{x|%b %d, %Y}<br>%{y:.2f}%<extra></extra>",
    }], layout({ ticksuffix: "%", rangemode: "tozero" }), config);
  }

  // --- start -----------------------------------------------------------------------------------
  const summaryPoll = Live.poll(data.summaryUrl, renderSummary, { every: 5000 });
  Live.poll(data.statusUrl, renderStatus, { every: 5000 });
  drawCharts();
})();
