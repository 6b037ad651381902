"use strict";
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat("en-US");
// Every value from the summary goes through esc() before it reaches innerHTML: product ids,
// reasons and currencies come from events that anyone who can place an order can shape.
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
let latest = null, drawn = true;

function money(cents, currency) {
  return (cents / 100).toLocaleString("en-US", { style: "currency", currency: currency || "USD", maximumFractionDigits: 0 });
}

function chart(canvas, series, opts = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const pad = { l: 48, r: 8, t: 8, b: 20 };
  const n = Math.max(...series.map((s) => s.values.length), 1);
  const max = Math.max(1, ...series.flatMap((s) => s.values.filter((v) => v != null)));
  const x = (i) => pad.l + (i * (w - pad.l - pad.r)) / Math.max(n - 1, 1);
  const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);
  g.strokeStyle = "#26303b"; g.fillStyle = "#8b98a5"; g.font = "11px system-ui"; g.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4, yy = y(v);
    g.beginPath(); g.moveTo(pad.l, yy); g.lineTo(w - pad.r, yy); g.stroke();
    g.fillText(opts.label ? opts.label(v) : fmt.format(Math.round(v)), 4, yy + 4);
  }
  g.fillText("-60 min", pad.l, h - 4); g.fillText("now", w - pad.r - 22, h - 4);
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = 2; g.beginPath();
    let started = false;
    s.values.forEach((v, i) => {
      if (v == null) { started = false; return; }
      if (!started) { g.moveTo(x(i), y(v)); started = true; } else { g.lineTo(x(i), y(v)); }
    });
    g.stroke();
    g.fillStyle = s.color;
    s.values.forEach((v, i) => {
      const lone = v != null && s.values[i - 1] == null && s.values[i + 1] == null;
      if (lone) { g.beginPath(); g.arc(x(i), y(v), 2.5, 0, 2 * Math.PI); g.fill(); }
    });
  }
}

function flow(s) {
  const f = s.flow;
  const nodes = {
    created: [70, 60, "created"], reserved: [320, 60, "reserved"], paid: [570, 60, "paid"], confirmed: [860, 60, "confirmed"],
    rejected: [320, 165, "rejected"], failed: [570, 165, "payment failed"], cancelled: [860, 165, "cancelled"],
  };
  const edges = [
    ["created", "reserved", f.reserved, "var(--accepted)"], ["reserved", "paid", f.paid, "var(--accepted)"],
    ["paid", "confirmed", f.confirmed, "var(--confirmed)"], ["created", "rejected", f.rejected, "var(--cancelled)"],
    ["reserved", "failed", f.payment_failed, "var(--cancelled)"], ["rejected", "cancelled", f.rejected, "var(--cancelled)"],
    ["failed", "cancelled", f.released, "var(--cancelled)"],
  ];
  const total = Math.max(1, f.created);
  let out = '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="12" markerHeight="12" orient="auto"><path d="M0,0L10,5L0,10z" fill="#8b98a5"/></marker></defs>';
  for (const [from, to, n, color] of edges) {
    const [x1, y1] = nodes[from], [x2, y2] = nodes[to];
    const width = 1.5 + 10 * Math.sqrt((n || 0) / total);
    const attrs = `stroke="${color}" stroke-width="${width.toFixed(1)}" stroke-opacity=".55" fill="none" marker-end="url(#a)"`;
    let lx, ly;
    if (from === "rejected" && to === "cancelled") {
      // Under the payment-failed box, not through it.
      out += `<path d="M${x1} ${y1 + 22} Q ${(x1 + x2) / 2} ${y1 + 95} ${x2} ${y2 + 22}" ${attrs}/>`;
      [lx, ly] = [(x1 + x2) / 2, y1 + 66];
    } else {
      const sx = x1 + (y1 === y2 ? 60 : 30), ex = x2 - (y1 === y2 ? 60 : 30);
      const sy = y1 + (y1 === y2 ? 0 : 22), ey = y2 - (y1 === y2 ? 0 : 22);
      out += `<line x1="${sx}" y1="${sy}" x2="${ex}" y2="${ey}" ${attrs}/>`;
      [lx, ly] = [(sx + ex) / 2 + (y1 === y2 ? 0 : -18), (sy + ey) / 2 - 8];
    }
    out += `<text class="count" x="${lx}" y="${ly}" text-anchor="middle" data-edge="${from}-${to}">${fmt.format(n || 0)}</text>`;
  }
  const counts = { created: f.created, reserved: f.reserved, paid: f.paid, confirmed: f.confirmed, rejected: f.rejected, failed: f.payment_failed, cancelled: f.cancelled };
  for (const [key, [x, y, label]] of Object.entries(nodes)) {
    out += `<rect x="${x - 60}" y="${y - 22}" width="120" height="44" rx="8" fill="#0f1419" stroke="#26303b"/>`;
    out += `<text x="${x}" y="${y - 4}" text-anchor="middle">${label}</text>`;
    out += `<text class="count" x="${x}" y="${y + 14}" text-anchor="middle" data-step="${key}">${fmt.format(counts[key] || 0)}</text>`;
  }
  $("flow").innerHTML = out;
}

function render() {
  drawn = true;
  const s = latest;
  if (!s) return;
  $("k-accepted").textContent = fmt.format(s.totals.accepted);
  $("k-confirmed").textContent = fmt.format(s.totals.confirmed);
  $("k-cancelled").textContent = fmt.format(s.totals.cancelled);
  $("k-inflight").textContent = fmt.format(s.in_flight);
  const minutes = s.per_minute;
  // The current minute once 10 s of it have passed, else the one before, as a rate.
  const secs = new Date(s.as_of).getUTCSeconds();
  const current = minutes[minutes.length - 1], prev = minutes[minutes.length - 2];
  const rate = secs >= 10 ? current.accepted / secs : (prev ? prev.accepted / 60 : 0);
  $("k-rate").textContent = fmt.format(Math.round(rate));
  const l = s.latency_ms;
  $("k-latency").textContent = l.p50 == null ? "–" : `${fmt.format(l.p50)} / ${fmt.format(l.p99)}`;
  const currencies = Object.keys(s.revenue_cents);
  $("k-revenue").textContent = currencies.length ? currencies.map((c) => money(s.revenue_cents[c], c)).join(" · ") : "–";
  $("asof").textContent = "as of " + s.as_of;
  flow(s);
  chart($("c-orders"), [
    { color: "#58a6ff", values: minutes.map((m) => m.accepted) },
    { color: "#3fb950", values: minutes.map((m) => m.confirmed) },
    { color: "#f85149", values: minutes.map((m) => m.cancelled) },
  ]);
  chart($("c-latency"), [
    { color: "#58a6ff", values: minutes.map((m) => m.latency_ms.p50) },
    { color: "#d29922", values: minutes.map((m) => m.latency_ms.p99) },
  ]);
  const palette = ["#a371f7", "#58a6ff", "#3fb950", "#d29922"];
  const revenueCurrencies = [...new Set(minutes.flatMap((m) => Object.keys(m.revenue_cents)).concat(currencies))];
  chart($("c-revenue"), revenueCurrencies.map((c, i) => ({ color: palette[i % palette.length], values: minutes.map((m) => (m.revenue_cents[c] || 0) / 100) })),
    { label: (v) => fmt.format(Math.round(v)) });
  $("revenue-legend").innerHTML = revenueCurrencies.map((c, i) => `<span><i style="background:${palette[i % palette.length]}"></i>${esc(c)}</span>`).join("");
  const reasons = Object.entries(s.cancelled_by_reason).sort((a, b) => b[1] - a[1]);
  const most = Math.max(1, ...reasons.map((r) => r[1]));
  $("reasons").innerHTML = reasons.length ? reasons.map(([r, n]) =>
    `<div><span class="name">${esc(r)}</span><span class="bar" style="width:${(180 * n) / most}px"></span><span class="n" data-reason="${esc(r)}">${fmt.format(n)}</span></div>`).join("")
    : '<div style="color:var(--muted)">none yet</div>';
  $("products").innerHTML = s.top_products.map((p) =>
    `<tr><td>${esc(p.product_id)}</td><td class="r">${fmt.format(p.quantity)}</td><td class="r">${fmt.format(p.orders)}</td></tr>`).join("");
}

// One render per animation frame at most: a burst of events never queues work in the page.
function connect() {
  const source = new EventSource("/analytics/stream");
  source.addEventListener("summary", (e) => {
    latest = JSON.parse(e.data);
    $("status").textContent = "live"; $("status").className = "live";
    if (drawn) { drawn = false; requestAnimationFrame(render); }
  });
  source.onerror = () => {
    $("status").textContent = "reconnecting…"; $("status").className = "";
    // The browser retries by itself after a dropped connection, but gives up for good on an
    // error answer (503 when too many watchers): then start over a little later.
    if (source.readyState === EventSource.CLOSED) { setTimeout(connect, 5000); }
  };
}
connect();
window.addEventListener("resize", () => requestAnimationFrame(render));

async function gateway(method, body) {
  const headers = { "Content-Type": "application/json" };
  const token = $("token").value.trim() || sessionStorage.getItem("orderflow-admin-token") || "";
  if (token) { headers.Authorization = "Bearer " + token; sessionStorage.setItem("orderflow-admin-token", token); }
  try {
    const res = await fetch("/analytics/gateway/faults", { method, headers, body: body ? JSON.stringify(body) : undefined });
    const json = await res.json();
    if (!res.ok) { $("gateway-state").textContent = String(json.detail || res.statusText); $("gateway-state").className = "down"; return; }
    $("gateway-state").textContent = json.outage ? "OUTAGE: every charge fails" : "healthy";
    $("gateway-state").className = json.outage ? "down" : "";
  } catch (e) { $("gateway-state").textContent = "gateway unreachable"; }
}
$("outage-on").onclick = () => gateway("PUT", { outage: true });
$("outage-off").onclick = () => gateway("PUT", { outage: false });
gateway("GET");
setInterval(() => gateway("GET"), 5000);
