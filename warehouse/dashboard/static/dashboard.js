// coinstream dashboard: plain SVG, no external library or CDN, so it works offline.
"use strict";
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function frame(svg) {
  svg.innerHTML = "";
  const w = svg.clientWidth || 600, h = svg.clientHeight || 240;
  return { w, h, left: 46, right: w - 46, top: 10, bottom: h - 22 };
}

function scale(values, lo, hi) {
  const nums = values.filter((v) => v !== null && !Number.isNaN(v));
  let min = Math.min(...nums), max = Math.max(...nums);
  if (!nums.length) { min = 0; max = 1; }
  if (min === max) { min -= 1; max += 1; }
  return { min, max, at: (v) => hi - ((v - min) / (max - min)) * (hi - lo) };
}

function line(svg, f, values, y, cls, series, color) {
  const x = (i) => f.left + (i / Math.max(values.length - 1, 1)) * (f.right - f.left);
  let d = "", n = 0, pen = false;
  values.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    d += (pen ? "L" : "M") + x(i).toFixed(1) + "," + y.at(v).toFixed(1);
    pen = true; n += 1;
  });
  const p = el("path", { d, class: cls, "data-series": series, "data-points": n }, svg);
  if (color) p.setAttribute("style", `fill:none;stroke:${color};stroke-width:1.2`);
  return p;
}

function axisLabels(svg, f, y, side) {
  const x = side === "left" ? 2 : f.right + 4;
  [y.min, (y.min + y.max) / 2, y.max].forEach((v) => {
    const t = el("text", { x, y: y.at(v) + 3, class: "tick" }, svg);
    t.textContent = Math.abs(v) >= 1e6 ? (v / 1e6).toFixed(2) + "M" : Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(2);
  });
}

function timeLabels(svg, f, minutes) {
  if (!minutes.length) return;
  [0, minutes.length - 1].forEach((i, k) => {
    const t = el("text", { x: k ? f.right - 90 : f.left, y: f.bottom + 16, class: "tick" }, svg);
    t.textContent = minutes[i].replace("T", " ").slice(0, 16) + " UTC";
  });
}

function drawActivity(data) {
  const svg = document.getElementById("chart-activity"), f = frame(svg);
  const sources = Object.keys(data.posts).sort();
  const all = sources.flatMap((s) => data.posts[s]);
  const yl = scale(all.length ? all : [0], f.top, f.bottom), yr = scale(data.volume, f.top, f.bottom);
  sources.forEach((s, i) => line(svg, f, data.posts[s], yl, "posts", "posts-" + s, COLORS[i % COLORS.length]));
  line(svg, f, data.volume, yr, "vol", "volume");
  axisLabels(svg, f, yl, "left"); axisLabels(svg, f, yr, "right"); timeLabels(svg, f, data.minutes);
  const legend = el("text", { x: f.left + 4, y: f.top + 10, class: "legend" }, svg);
  legend.textContent = sources.map((s) => "posts " + s).join(" · ") + " · BTC volume (orange)";
}

function drawPrice(data) {
  const svg = document.getElementById("chart-price"), f = frame(svg);
  const y = scale(data.high.concat(data.low), f.top, f.bottom);
  const x = (i) => f.left + (i / Math.max(data.high.length - 1, 1)) * (f.right - f.left);
  const traded = data.high.map((v, i) => i).filter((i) => data.high[i] !== null);  // no band where nobody traded
  const top = traded.map((i) => x(i).toFixed(1) + "," + y.at(data.high[i]).toFixed(1));
  const bottom = traded.map((i) => x(i).toFixed(1) + "," + y.at(data.low[i]).toFixed(1)).reverse();
  el("polygon", { points: top.concat(bottom).join(" "), class: "band", "data-series": "high-low", "data-points": traded.length }, svg);
  line(svg, f, data.close, y, "close", "close");
  axisLabels(svg, f, y, "left"); timeLabels(svg, f, data.minutes);
}

function drawRolling(data) {
  const svg = document.getElementById("chart-rolling"), f = frame(svg);
  const y = { min: -1, max: 1, at: (v) => f.bottom - ((v + 1) / 2) * (f.bottom - f.top) };
  el("line", { x1: f.left, x2: f.right, y1: y.at(0), y2: y.at(0), class: "axis" }, svg);
  line(svg, f, data.rolling, y, "roll", "rolling");
  axisLabels(svg, f, y, "left"); timeLabels(svg, f, data.minutes);
}

function drawCross(data) {
  const svg = document.getElementById("chart-cross"), f = frame(svg);
  const { lags, r, best } = data.cross;
  const y = { min: -1, max: 1, at: (v) => f.bottom - ((v + 1) / 2) * (f.bottom - f.top) };
  const width = (f.right - f.left) / Math.max(lags.length, 1);
  lags.forEach((lag, i) => {
    if (r[i] === null) return;
    const y0 = y.at(0), y1 = y.at(r[i]);
    el("rect", { x: f.left + i * width + 1, y: Math.min(y0, y1), width: Math.max(width - 2, 1), height: Math.abs(y1 - y0),
                 class: lag === best ? "bar best" : "bar", "data-lag": lag, "data-r": r[i] }, svg);
  });
  svg.setAttribute("data-best-lag", best);
  const t = el("text", { x: f.left + 4, y: f.top + 10, class: "legend" }, svg);
  t.textContent = best === null ? "not enough data" : `strongest at ${best > 0 ? "+" : ""}${best} min, r = ${r[lags.indexOf(best)]}`;
  axisLabels(svg, f, y, "left");
}

function drawFreshness(data) {
  const dl = document.getElementById("fresh");
  dl.innerHTML = "";
  const add = (k, v, id) => {
    const dt = document.createElement("dt"); dt.textContent = k; dl.appendChild(dt);
    const dd = document.createElement("dd"); dd.textContent = v ?? "unknown"; if (id) dd.id = id; dl.appendChild(dd);
  };
  const fresh = data.freshness || {};
  for (const [s, t] of Object.entries(fresh.candles || {})) add("newest candle, " + s, t, "fresh-candle-" + s);
  for (const [s, t] of Object.entries(fresh.posts || {})) add("newest post, " + s, t, "fresh-post-" + s);
  const stack = data.stack || {};
  add("consumer lag (records behind, warehouse app)", stack.consumer_lag, "fresh-lag");
  add("dead-lettered records", stack.dead_letters, "fresh-dead");
  add("live app, newest minute", stack.live_newest, "fresh-live");
}

function fillSeries(data) {
  const select = document.getElementById("series"), chosen = data.selected || {};
  const want = (chosen.exchange || "") + "|" + (chosen.market || "");
  select.innerHTML = "";
  for (const s of data.series || []) {
    const o = document.createElement("option");
    o.value = s.exchange + "|" + s.market; o.textContent = s.exchange + " " + s.market;
    o.selected = o.value === want; select.appendChild(o);
  }
}

async function refresh() {
  const range = document.getElementById("range").value, win = document.getElementById("window").value;
  const [exchange, market] = (document.getElementById("series").value || "|").split("|");
  const body = document.body;
  body.setAttribute("data-ready", "false");
  try {
    let data = window.COINSTREAM_DATA;  // set in a saved report (`coinstream analyze --html`): no server
    if (!data) {
      const q = new URLSearchParams({ range, window: win, exchange, market });
      const res = await fetch(`/api/data?${q}`, { cache: "no-store" });
      data = await res.json();
      if (!res.ok) throw new Error(data.error || res.statusText);
    }
    fillSeries(data);
    document.getElementById("empty").hidden = !data.empty;
    document.getElementById("charts").hidden = !!data.empty && !Object.keys((data.freshness || {}).posts || {}).length;
    if (!data.empty) { drawActivity(data); drawPrice(data); drawRolling(data); drawCross(data); }
    drawFreshness(data);
    document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  } catch (err) {
    document.getElementById("updated").textContent = "could not refresh: " + err.message;
  }
  body.setAttribute("data-ready", "true");
}

document.getElementById("range").addEventListener("change", refresh);
document.getElementById("series").addEventListener("change", refresh);
document.getElementById("window").addEventListener("change", refresh);
if (!window.COINSTREAM_DATA) setInterval(refresh, 60000);
refresh();
