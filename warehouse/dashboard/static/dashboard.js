// coinstream dashboard: Apache ECharts (served by the dashboard itself from vendor/, never a CDN).
"use strict";
const COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];
const charts = {};

function chart(id) {
  if (!charts[id]) charts[id] = echarts.init(document.getElementById(id), null, { renderer: "canvas" });
  return charts[id];
}

const minuteLabel = (m) => m.replace("T", " ").slice(0, 16);
// zoom with the wheel, pan by dragging; a slider under the time charts shows where you are
const zoom = [{ type: "inside", xAxisIndex: 0 }, { type: "slider", xAxisIndex: 0, height: 18, bottom: 4 }];
const grid = { left: 56, right: 64, top: 28, bottom: 56 };

function drawActivity(data) {
  const sources = Object.keys(data.posts).sort();
  const series = sources.map((s, i) => ({
    name: "posts " + s, type: "line", yAxisIndex: 0, data: data.posts[s], showSymbol: false,
    lineStyle: { width: 1.2 }, color: COLORS[i % COLORS.length],
  }));
  series.push({ name: "volume", type: "line", yAxisIndex: 1, data: data.volume, showSymbol: false, color: "#e07b00" });
  chart("chart-activity").setOption({
    animation: false, grid, dataZoom: zoom, legend: { top: 0 },
    tooltip: {
      trigger: "axis", className: "tip",
      formatter: (items) => {
        const i = items[0].dataIndex;
        const rows = sources.map((s) => `<tr><td>posts ${s}</td><td class="num">${data.posts[s][i] ?? "not collected"}</td></tr>`);
        rows.push(`<tr><td>volume</td><td class="num" data-tip="volume">${data.volume_text[i]}</td></tr>`);
        if (!data.traded[i]) rows.push('<tr><td colspan="2">no trade this minute</td></tr>');
        return `<b data-tip="minute">${data.minutes[i]}</b><table>${rows.join("")}</table>`;
      },
    },
    xAxis: { type: "category", data: data.minutes.map(minuteLabel) },
    yAxis: [{ type: "value", name: "posts/min" }, { type: "value", name: "volume/min", position: "right" }],
    series,
  }, true);
}

function drawPrice(data) {
  // ECharts candlesticks take [open, close, low, high]; a minute without trades has none
  const ohlc = data.open.map((o, i) => (o === null ? "-" : [o, data.close[i], data.low[i], data.high[i]]));
  chart("chart-price").setOption({
    animation: false, grid, dataZoom: zoom,
    tooltip: {
      trigger: "axis", className: "tip",
      formatter: (items) => {
        const i = items[0].dataIndex;
        if (data.open[i] === null) return `<b>${data.minutes[i]}</b><br>no trade this minute`;
        return `<b>${data.minutes[i]}</b><table>` +
          ["open", "high", "low", "close"].map((k) => `<tr><td>${k}</td><td class="num">${data[k][i]}</td></tr>`).join("") +
          "</table>";
      },
    },
    xAxis: { type: "category", data: data.minutes.map(minuteLabel) },
    yAxis: { type: "value", scale: true },
    series: [{
      name: "OHLC", type: "candlestick", data: ohlc,
      itemStyle: { color: "#d62728", color0: "#1f77b4", borderColor: "#d62728", borderColor0: "#1f77b4" },
    }],
  }, true);
}

function drawRolling(data) {
  chart("chart-rolling").setOption({
    animation: false, grid, dataZoom: zoom,
    tooltip: { trigger: "axis", className: "tip", valueFormatter: (v) => (v === null || v === undefined ? "-" : v.toFixed(3)) },
    xAxis: { type: "category", data: data.minutes.map(minuteLabel) },
    yAxis: { type: "value", min: -1, max: 1 },
    series: [{ name: `r over ${data.window} min`, type: "line", data: data.rolling, showSymbol: false, color: "#6a51a3" }],
  }, true);
}

function drawCross(data) {
  const { lags, r, best } = data.cross;
  const el = document.getElementById("chart-cross");
  el.setAttribute("data-best-lag", best);
  chart("chart-cross").setOption({
    animation: false, grid: { ...grid, bottom: 36 },
    title: {
      text: best === null ? "not enough data" : `strongest at ${best > 0 ? "+" : ""}${best} min, r = ${r[lags.indexOf(best)]}`,
      textStyle: { fontSize: 12, fontWeight: "normal" }, left: "center", top: 0,
    },
    tooltip: { trigger: "axis", className: "tip", formatter: (items) => `lag ${items[0].name} min: r = ${items[0].value}` },
    xAxis: { type: "category", data: lags.map(String), name: "lag (min)", nameLocation: "middle", nameGap: 24 },
    yAxis: { type: "value", min: -1, max: 1 },
    series: [{
      type: "bar", data: r.map((v, i) => ({ value: v, itemStyle: { color: lags[i] === best ? "#d62728" : "#bbb" } })),
    }],
  }, true);
}

function drawFreshness(data) {
  const dl = document.getElementById("fresh");
  dl.innerHTML = "";
  const add = (k, v, id, stale) => {
    const dt = document.createElement("dt"); dt.textContent = k; dl.appendChild(dt);
    const dd = document.createElement("dd"); dd.textContent = v ?? "unknown"; if (id) dd.id = id;
    if (stale) { dd.className = "stale"; dd.setAttribute("data-stale", stale); }  // older than its schedule allows
    dl.appendChild(dd);
  };
  const fresh = data.freshness || {}, stale = fresh.stale || {};
  for (const [s, t] of Object.entries(fresh.candles || {})) add("newest candle, " + s, t, "fresh-candle-" + s, (stale.candles || {})[s]);
  for (const [s, t] of Object.entries(fresh.posts || {})) add("newest post, " + s, t, "fresh-post-" + s, (stale.posts || {})[s]);
  const stack = data.stack || {};
  add("consumer lag (records behind, warehouse app)", stack.consumer_lag, "fresh-lag");
  add("dead-lettered records", stack.dead_letters, "fresh-dead");
  add("live app, newest minute", stack.live_newest, "fresh-live");
}

function cell(row, text, tag = "td") {
  const c = document.createElement(tag); c.textContent = text; row.appendChild(c); return c;
}

function drawReport(data) {
  // the verdict of each pair of the selected series (each post source against it), with the checks behind it
  const report = data.analysis;
  const verdicts = report ? report.verdicts : [];
  document.getElementById("report").hidden = !verdicts.length;
  document.getElementById("report-series").textContent = report ? report.series : "";
  const verdict = document.getElementById("verdict"), checks = document.getElementById("checks");
  verdict.innerHTML = ""; checks.innerHTML = "";
  for (const v of verdicts) {
    const p = document.createElement("p");
    p.textContent = verdicts.length > 1 ? `${v.posts} posts: ${v.verdict}` : v.verdict;
    verdict.appendChild(p);
    for (const c of v.checks) {
      const dt = document.createElement("dt"); dt.textContent = verdicts.length > 1 ? `${c.name} (${v.posts})` : c.name;
      const dd = document.createElement("dd"); dd.textContent = c.outcome;
      checks.appendChild(dt); checks.appendChild(dd);
    }
  }
  // every pair of the family, adjusted together: the selected series' rows marked
  const pairs = data.pairs || [];
  document.getElementById("family").hidden = !pairs.length;
  document.getElementById("family-title").textContent = data.title || "";
  const body = document.getElementById("pairs");
  body.innerHTML = "";
  for (const r of pairs) {
    const row = document.createElement("tr");
    if (report && r.series === report.series) row.className = "selected";
    for (const k of ["pair", "together", "peak", "p", "adjusted", "halves", "lead"]) cell(row, r[k]);
    row.title = r.verdict;
    body.appendChild(row);
  }
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

let judgeAgain = null;

async function refresh() {
  const range = document.getElementById("range").value, win = document.getElementById("window").value;
  const [exchange, market] = (document.getElementById("series").value || "|").split("|");
  const body = document.body;
  body.setAttribute("data-ready", "false");
  try {
    if (typeof echarts === "undefined") throw new Error("the chart library is missing: run `make setup` (or npm ci) and restart the dashboard");
    const saved = window.COINSTREAM_DATA;  // set in a saved report (`coinstream analyze --html`): no server
    let data = saved && (saved.pages[`${exchange}|${market}`] || saved.pages[saved.first]);
    if (saved) for (const id of ["range", "window"]) document.getElementById(id).closest("label").hidden = true;  // fixed in a report
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
    drawReport(data);
    // the server judges the family again after new rows, in the background: ask again soon for its verdicts
    body.setAttribute("data-judging", data.judging ? "true" : "false");
    document.getElementById("judging").hidden = !data.judging;
    clearTimeout(judgeAgain);
    if (data.judging) judgeAgain = setTimeout(refresh, 2000);
    document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  } catch (err) {
    document.getElementById("updated").textContent = "could not refresh: " + err.message;
  }
  body.setAttribute("data-ready", "true");
}

for (const id of ["range", "window", "series"]) document.getElementById(id).addEventListener("change", refresh);
window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
if (!window.COINSTREAM_DATA) setInterval(refresh, 60000);
refresh();
