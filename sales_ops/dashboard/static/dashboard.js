// The live sales page: fetch /api/metrics, draw the numbers and the plotly charts, repeat.
"use strict";

const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const count = new Intl.NumberFormat("en-US");
const PALETTE = ["#2563eb", "#0d9488", "#f59e0b", "#8b5cf6", "#ef4444", "#10b981", "#64748b"];
const CONFIG = { displayModeBar: false, responsive: true };
let refreshSeconds = 5;

function $(id) { return document.getElementById(id); }

// Data as text: Plotly reads tags (<a href>, <span style>, <b>, <br>) in every label, tick, legend
// and hover text, and has no text-only switch; it decodes the entities &amp; &lt; &gt; back to
// characters. So every value from the data goes into a chart through plain().
function plain(value) {
  return String(value === null || value === undefined ? "" : value)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function baseLayout(extra) {
  return Object.assign({
    margin: { l: 48, r: 16, t: 8, b: 36 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, sans-serif", size: 12, color: "#1f2933" },
    showlegend: false,
  }, extra);
}

// A panel's data, or null after showing its "no data yet" / error message in the card.
function panelData(metrics, name, chartId) {
  const panel = metrics.panels[name];
  const chart = chartId && $(chartId);
  const overlay = chart && chart.parentElement.querySelector(".empty");
  if (panel.status === "ok") {
    if (overlay) overlay.remove();
    return panel.data;
  }
  if (chart) {
    const box = overlay || chart.parentElement.appendChild(document.createElement("div"));
    box.className = "empty";
    box.textContent = panel.message;
  }
  return null;
}

function setKpi(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  el.className = "kpi-value" + (cls ? " " + cls : "");
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function ageClass(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return seconds < 60 ? "good" : seconds < 600 ? "warn" : "bad";
}

function renderKpis(m) {
  const total = panelData(m, "total");
  const el = $("total-sales");
  el.dataset.value = total ? total.total_sales : "";
  setKpi("total-sales", total ? money.format(Number(total.total_sales)) : "–");
  $("total-sub").textContent = total
    ? `${count.format(total.orders)} sales · ${count.format(total.units)} units · ${total.products} products`
    : m.panels.total.message;

  const head = panelData(m, "headline");
  setKpi("sales-today", head ? money.format(Number(head.sales_today)) : "–");
  $("today-sub").textContent = head ? `${count.format(head.orders_today)} sales` : m.panels.headline.message;
  setKpi("sales-hour", head ? money.format(Number(head.sales_last_hour)) : "–");
  $("hour-sub").textContent = head ? `${count.format(head.orders_last_hour)} sales` : "";
  setKpi("live-orders", head ? count.format(head.live_orders) : "–");
  $("live-sub").textContent = head ? "incl. cancelled and returned" : "";

  const failed = panelData(m, "failed_records");
  setKpi("failed-records", failed ? count.format(failed.count) : "–", failed ? (failed.count ? "bad" : "good") : "");
  $("failed-sub").textContent = failed ? (failed.count ? "see errors/processing-failed/" : "none")
    : m.panels.failed_records.message;

  const fresh = panelData(m, "freshness");
  const raw = panelData(m, "raw_freshness");
  const age = fresh ? fresh.age_seconds : null;
  setKpi("event-age", ago(age), ageClass(age));
  $("raw-age").textContent = raw ? `newest raw object ${ago(raw.age_seconds)}` : m.panels.raw_freshness.message;
  const chip = $("freshness");
  chip.textContent = "newest event " + ago(age);
  chip.className = "chip " + ageClass(age);
}

function renderOrdersPerMinute(m) {
  const d = panelData(m, "orders_per_minute", "chart-orders_per_minute");
  if (!d) return Plotly.purge("chart-orders_per_minute");
  const x = d.minutes.map((t) => new Date(t));
  Plotly.react("chart-orders_per_minute", [
    { type: "bar", x, y: d.orders, name: "orders", marker: { color: PALETTE[0] },
      hovertemplate: "%{x|%H:%M}: %{y} orders<extra></extra>" },
    { type: "scatter", mode: "lines", x, y: d.sales, name: "sales", yaxis: "y2",
      line: { color: PALETTE[2], width: 2 }, hovertemplate: "%{x|%H:%M}: %{y:,.2f}<extra></extra>" },
  ], baseLayout({
    showlegend: true, legend: { orientation: "h", x: 0, y: 1.12 },
    margin: { l: 48, r: 64, t: 24, b: 36 },
    // Half a minute of room on each side, so the first and the current minute's bars show whole.
    xaxis: { type: "date", tickformat: "%H:%M",
      range: [new Date(x[0].getTime() - 30000), new Date(x[x.length - 1].getTime() + 30000)] },
    yaxis: { title: { text: "orders" }, rangemode: "tozero" },
    yaxis2: { title: { text: "sales" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
  }), CONFIG);
}

function renderCustomers(m) {
  const d = panelData(m, "customers", "chart-customers");
  if (!d) return Plotly.purge("chart-customers");
  const segments = ["new", "returning"];
  const headline = m.panels.headline;
  const active = headline && headline.status === "ok" ? headline.data.customers_last_hour : null;
  // Counted by a sketch (within ~1.6 %) where the open dates are read a slice at a time.
  const about = active !== null && headline.data.customers_approximate ? "≈ " : "";
  Plotly.react("chart-customers", [{
    type: "pie", hole: 0.55, sort: false,
    labels: segments, values: segments.map((s) => d[s].customers),
    marker: { colors: [PALETTE[1], PALETTE[3]] },
    customdata: segments.map((s) => d[s].orders),
    texttemplate: "%{label}<br>%{value}", insidetextorientation: "horizontal",
    hovertemplate: "%{label}: %{value} customers<br>%{customdata} orders<extra></extra>",
  }], baseLayout({
    margin: { l: 8, r: 8, t: 8, b: 8 },
    // Who ordered in the last hour is live (the headline's statement); the segments are hourly.
    annotations: active === null ? [] : [{ text: `${about}${active}<br>active<br>last hour`,
      showarrow: false, font: { size: 13 } }],
  }), CONFIG);
}

function hbar(id, labels, values, colors, hover, extraLayout) {
  Plotly.react(id, [{
    type: "bar", orientation: "h", y: labels, x: values,
    marker: { color: colors }, hovertemplate: hover,
  }], baseLayout(Object.assign({
    margin: { l: 150, r: 16, t: 8, b: 32 },
    yaxis: { autorange: "reversed", automargin: true },
  }, extraLayout || {})), CONFIG);
}

function renderTopProducts(m) {
  const d = panelData(m, "top_products", "chart-top_products");
  if (!d) return Plotly.purge("chart-top_products");
  hbar("chart-top_products", d.map((p) => plain(p.product_name)), d.map((p) => p.total_sales), PALETTE[0],
    "%{y}: %{x:,.2f}<extra></extra>");
}

function renderDimension(m, name, kind) {
  const id = "chart-" + name;
  const d = panelData(m, name, id);
  if (!d) return Plotly.purge(id);
  const labels = d.map((r) => plain(r.value));
  const values = d.map((r) => r.total_sales);
  if (kind === "pie") {
    Plotly.react(id, [{
      type: "pie", hole: 0.5, labels, values, sort: false, marker: { colors: PALETTE },
      textposition: "inside", texttemplate: "%{percent:.0%}", insidetextorientation: "horizontal",
      hovertemplate: "%{label}: %{value:,.2f}<extra></extra>",
    }], baseLayout({
      margin: { l: 8, r: 8, t: 8, b: 8 }, showlegend: true,
      legend: { orientation: "h", x: 0.5, xanchor: "center", y: -0.05 },
    }), CONFIG);
  } else {
    Plotly.react(id, [{
      type: "bar", x: labels, y: values, marker: { color: PALETTE[kind === "alt" ? 1 : 0] },
      hovertemplate: "%{x}: %{y:,.2f}<extra></extra>",
    }], baseLayout({ yaxis: { rangemode: "tozero" } }), CONFIG);
  }
}

function renderInventory(m) {
  const d = panelData(m, "inventory", "chart-inventory");
  if (!d) { $("inventory-sub").textContent = "lowest stock left"; return Plotly.purge("chart-inventory"); }
  const asOf = d.as_of ? ` · rollup of ${new Date(d.as_of).toLocaleTimeString("en-GB", { hour12: false })}` : "";
  $("inventory-sub").textContent = `lowest stock left · ${d.low_stock} low (< 20 % of opening), `
    + `${d.out_of_stock} out of stock, of ${d.products} products${asOf}`;
  const rows = d.lowest;
  hbar("chart-inventory", rows.map((r) => plain(r.product_name)), rows.map((r) => r.stock_left),
    rows.map((r) => (r.stock_left <= 0 ? "#dc2626" : r.low ? "#f59e0b" : "#0d9488")),
    "%{y}: %{x} left<extra></extra>",
    { margin: { l: 170, r: 16, t: 8, b: 32 } });
}

function render(m) {
  refreshSeconds = m.refresh_seconds || refreshSeconds;
  $("source").textContent = `${m.target} · ${m.engine} · queries ${m.seconds.toFixed(2)} s`;
  renderKpis(m);
  renderOrdersPerMinute(m);
  renderCustomers(m);
  renderTopProducts(m);
  renderDimension(m, "by_category", "bar");
  renderDimension(m, "by_channel", "pie");
  renderDimension(m, "by_region", "alt");
  renderInventory(m);
  $("updated").textContent = new Date(m.generated_at).toLocaleTimeString("en-GB", { hour12: false });
}

let timer = null;

async function refresh() {
  const dot = $("status");
  if (document.hidden) {
    // No polling from a hidden tab: on Athena every refresh is billed (visibilitychange resumes it).
    return;
  }
  try {
    const response = await fetch("/api/metrics", { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    render(body);
    dot.className = "dot good";
    dot.title = "last refresh succeeded";
  } catch (error) {
    dot.className = "dot bad";
    dot.title = "last refresh failed: " + error.message;
    $("source").textContent = "refresh failed: " + error.message;
  } finally {
    clearTimeout(timer);
    timer = setTimeout(refresh, refreshSeconds * 1000);
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) {
    clearTimeout(timer);
    refresh();
  }
});

refresh();
