/* Small helpers every page shares: polling the database-backed API and formatting.
 *
 * Live.poll(url, render, {every: 5000}) fetches JSON now and every few seconds (paused while the tab is
 * hidden) and calls render(data). Live.setText(el, text) touches the DOM only when the text changed, so
 * a poll that brings nothing new repaints nothing.
 */
(function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.json();
  }

  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign(new Error("request failed: " + response.status), { data: data });
    return data;
  }

  function poll(url, render, options) {
    const every = (options && options.every) || 5000;
    let timer = null;
    async function tick() {
      if (document.hidden) return schedule();
      try {
        render(await getJSON(typeof url === "function" ? url() : url));
      } catch (error) {
        console.warn(error);
      }
      schedule();
    }
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(tick, every);
    }
    document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
    tick();
    return { stop: () => clearTimeout(timer), now: tick };
  }

  function setText(element, text) {
    if (element && element.textContent !== text) element.textContent = text;
  }

  const moneyFormats = {};
  function money(value, currency) {
    if (value === null || value === undefined || value === "") return "–";
    const key = currency || "USD";
    moneyFormats[key] = moneyFormats[key] || new Intl.NumberFormat(undefined, { style: "currency", currency: key });
    return moneyFormats[key].format(Number(value));
  }

  function percent(value, digits) {
    if (value === null || value === undefined || value === "") return "–";
    return (Number(value) * 100).toFixed(digits === undefined ? 2 : digits) + "%";
  }

  const exchangeTime = new Intl.DateTimeFormat(undefined, {
    timeZone: document.documentElement.dataset.exchangeTz || "America/New_York",
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
  function when(iso) {
    return iso ? exchangeTime.format(new Date(iso)) + " ET" : "–";
  }

  function ago(iso) {
    if (!iso) return "never";
    const minutes = Math.round((Date.now() - new Date(iso).getTime()) / 60000);
    if (minutes < 1) return "just now";
    if (minutes < 60) return minutes + (minutes === 1 ? " minute ago" : " minutes ago");
    const hours = Math.round(minutes / 60);
    return hours < 48 ? hours + (hours === 1 ? " hour ago" : " hours ago") : Math.round(hours / 24) + " days ago";
  }

  window.Live = { getJSON, postJSON, poll, setText, money, percent, when, ago, csrfToken };
})();
