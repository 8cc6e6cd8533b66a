/* Small helpers every page shares: polling, JSON requests, and swapping in HTML the server rendered.
 *
 * Nothing here formats a number, an amount or a time. The template filters (portfolio/templatetags/)
 * are the only formatter: a page that refreshes itself asks the server for its parts already rendered.
 *
 * Live.poll(url, render, {every: 5000}) fetches JSON now and every few seconds (paused while the tab is
 * hidden) and calls render(data). Live.setText(el, text) touches the DOM only when the text changed.
 * Live.swap(scope, {name: html}) brings each element marked data-fragment="name" under scope in line
 * with the server's HTML for it, changing only the nodes that differ, so an unchanged part repaints
 * nothing (and a table keeps its scroll position when one cell changes).
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

  // Make the live node `from` equal to the parsed node `to`, reusing what already matches.
  function morph(from, to) {
    if (from.isEqualNode(to)) return;
    if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName) {
      from.replaceWith(to);
      return;
    }
    if (from.nodeType !== Node.ELEMENT_NODE) {
      from.nodeValue = to.nodeValue; // text or comment
      return;
    }
    for (const { name } of Array.from(from.attributes)) {
      if (!to.hasAttribute(name)) from.removeAttribute(name);
    }
    for (const { name, value } of Array.from(to.attributes)) {
      if (from.getAttribute(name) !== value) from.setAttribute(name, value);
    }
    const current = Array.from(from.childNodes);
    const wanted = Array.from(to.childNodes);
    wanted.forEach((child, index) => {
      if (index < current.length) morph(current[index], child);
      else from.appendChild(child);
    });
    current.slice(wanted.length).forEach((child) => child.remove());
  }

  // Returns the names of the parts that changed.
  function swap(scope, fragments) {
    const changed = [];
    for (const [name, html] of Object.entries(fragments)) {
      const live = scope.querySelector('[data-fragment="' + name + '"]');
      if (!live || typeof html !== "string") continue;
      const template = document.createElement("template");
      template.innerHTML = html;
      const next = template.content.firstElementChild;
      if (!next || live.isEqualNode(next)) continue;
      morph(live, next);
      changed.push(name);
    }
    return changed;
  }

  window.Live = { getJSON, postJSON, poll, setText, swap, csrfToken };
})();
