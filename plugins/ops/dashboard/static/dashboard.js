// The modelway dashboard: renders the gateway's JSON snapshot and polls for a fresh one.
// No framework, no CDN: plain DOM building (text only, never HTML from the data) and SVG.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const GUARD_COLORS = { pass: "#16a34a", modified: "#2563eb", reject: "#dc2626", error: "#a16207" };

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = cell instanceof Node ? cell : el("td", cell);
    if (!(cell instanceof Node) && typeof cell === "number") td.className = "num";
    tr.appendChild(td);
  }
  return tr;
}

function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  return digits === undefined ? value.toLocaleString("en-US") : value.toFixed(digits);
}

function renderRoutes(data) {
  const body = document.querySelector("#routes tbody");
  body.replaceChildren();
  for (const route of data.routes) {
    route.backends.forEach((b, i) => {
      const state = el("td", b.state, b.state);
      body.appendChild(row([
        i === 0 ? route.name : "", i === 0 ? route.models.join(", ") : "", b.backend, b.role,
        b.weight === null ? "–" : fmt(b.weight * 100, 0) + "%", b.provider, state, b.ejections,
      ]));
    });
  }
}

const VARIANT_ROWS = [
  ["requests", (v) => fmt(v.requests)],
  ["share", (v) => fmt(v.share * 100, 1) + "%"],
  ["errors", (v) => fmt(v.errors)],
  ["error rate", (v) => fmt(v.error_rate * 100, 1) + "%"],
  ["latency p50 (ms)", (v) => fmt(v.latency_ms.p50)],
  ["latency p95 (ms)", (v) => fmt(v.latency_ms.p95)],
  ["TTFT p50 (ms)", (v) => fmt(v.ttft_ms.p50)],
  ["TTFT p95 (ms)", (v) => fmt(v.ttft_ms.p95)],
  ["prompt tokens", (v) => fmt(v.prompt_tokens)],
  ["completion tokens", (v) => fmt(v.completion_tokens)],
  ["cost (USD)", (v) => fmt(v.cost_usd, 6)],
];

function renderVariants(data) {
  const box = document.getElementById("variants");
  box.replaceChildren();
  if (!data.stats) {
    box.appendChild(el("p", "Enable the stats plugin to see per-variant numbers.", "empty"));
    return;
  }
  const routes = Object.entries(data.stats.routes);
  if (!routes.length) box.appendChild(el("p", "No requests yet.", "empty"));
  for (const [name, route] of routes) {
    const variants = Object.entries(route.variants);
    box.appendChild(el("h3", `${name}: ${fmt(route.requests)} requests`));
    const table = el("table");
    table.dataset.route = name;
    const head = row([el("th", "")].concat(variants.map(([label]) => el("th", label))));
    table.appendChild(head);
    for (const [title, get] of VARIANT_ROWS) {
      table.appendChild(row([el("th", title)].concat(variants.map(([, v]) => {
        const td = el("td", get(v), "num");
        td.dataset.metric = title;
        return td;
      }))));
    }
    box.appendChild(table);
  }
}

function bars(series, colors, minutes) {
  // Stacked bars, one per minute; series: [[name, values]], colors: name -> fill.
  const width = 600, height = 120, pad = 18;
  const count = minutes.length;
  const totals = minutes.map((_, i) => series.reduce((sum, [, values]) => sum + values[i], 0));
  const top = Math.max(1, ...totals);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const step = (width - pad) / count;
  minutes.forEach((start, i) => {
    let y = height - pad;
    for (const [name, values] of series) {
      const value = values[i];
      if (!value) continue;
      const h = ((height - 2 * pad) * value) / top;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(pad + i * step + 1));
      rect.setAttribute("y", String(y - h));
      rect.setAttribute("width", String(Math.max(1, step - 2)));
      rect.setAttribute("height", String(h));
      rect.setAttribute("fill", colors[name]);
      rect.dataset.series = name;
      rect.dataset.value = String(value);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${new Date(start * 1000).toISOString().slice(11, 16)} ${name}: ${value}`;
      rect.appendChild(title);
      svg.appendChild(rect);
      y -= h;
    }
  });
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", "2");
  label.setAttribute("y", "12");
  label.setAttribute("font-size", "11");
  label.textContent = `max ${top}`;
  svg.appendChild(label);
  return svg;
}

function renderCharts(data) {
  const t = data.timeline;
  const failovers = document.getElementById("failovers");
  failovers.replaceChildren(bars([["failovers", t.failovers]], { failovers: "#f59e0b" }, t.minutes));
  failovers.dataset.total = String(t.failovers.reduce((a, b) => a + b, 0));
  const guards = document.getElementById("guards");
  const series = Object.entries(t.guards);
  guards.replaceChildren(bars(series, GUARD_COLORS, t.minutes));
  const legend = document.getElementById("guards-legend");
  legend.replaceChildren();
  for (const [name, values] of series) {
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = GUARD_COLORS[name];
    item.append(swatch, `${name} ${values.reduce((a, b) => a + b, 0)}`);
    item.dataset.action = name;
    legend.appendChild(item);
  }
}

function renderErrors(data) {
  const body = document.querySelector("#errors tbody");
  body.replaceChildren();
  const errors = data.timeline.last_errors;
  if (!errors.length) {
    const td = el("td", "No errors.", "empty");
    td.colSpan = 7;
    body.appendChild(row([td]));
  }
  for (const e of errors) {
    body.appendChild(row([e.time.slice(11, 19), e.status, e.code || "", e.route || "",
      e.backend || "", e.attempts, e.request_id]));
  }
}

function render(data) {
  renderRoutes(data);
  renderVariants(data);
  renderCharts(data);
  renderErrors(data);
  const total = data.stats ? Object.values(data.stats.routes).reduce((s, r) => s + r.requests, 0) : 0;
  document.getElementById("summary").textContent =
    `${data.routes.length} routes · ${fmt(total)} requests` +
    (data.stats ? ` · up ${fmt(Math.round(data.stats.uptime_seconds))} s` : "");
  const status = document.getElementById("status");
  status.textContent = `updated ${data.generated.slice(11, 19)} UTC`;
  status.classList.remove("offline");
  document.body.dataset.generated = data.generated;
}

async function poll() {
  try {
    // From the origin: a page opened with credentials in its URL cannot fetch relative URLs.
    const url = new URL("/modelway/dashboard/data", window.location.origin);
    const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    render(await answer.json());
    document.body.dataset.polls = String(Number(document.body.dataset.polls) + 1);
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = `offline (${error.message}); retrying`;
    status.classList.add("offline");
  }
}

render(JSON.parse(document.getElementById("initial").textContent));
poll();
setInterval(poll, Number(document.body.dataset.pollMs) || 2000);
