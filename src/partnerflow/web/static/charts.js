// Draws the daily chart from the JSON block the server rendered next to it. Without
// JavaScript the same numbers are in the table below the chart.
(function () {
  "use strict";
  var holder = document.getElementById("chart");
  var data = document.getElementById("chart-data");
  if (!holder || !data || typeof uPlot === "undefined") { return; }
  var s = JSON.parse(data.textContent);
  if (!s.x.length) { return; }
  var currency = holder.getAttribute("data-currency") || "";
  var money = function (v) { return v == null ? "" : Number(v).toFixed(2) + " " + currency; };
  var width = function () { return Math.max(280, holder.clientWidth || 600); };
  var opts = {
    width: width(), height: 260,
    series: [
      {},
      { label: "Clicks", stroke: "#2453d6", width: 2, scale: "n" },
      { label: "Conversions", stroke: "#137a3a", width: 2, scale: "c" },
      { label: "Revenue", stroke: "#b45309", width: 2, scale: "m", value: function (u, v) { return money(v); } }
    ],
    // Three scales: conversions are a few per hundred clicks, so on the clicks scale
    // their line would lie flat on the axis. Each axis is drawn in its series' colour.
    axes: [
      {},
      { scale: "n", stroke: "#2453d6" },
      { scale: "c", side: 1, stroke: "#137a3a", grid: { show: false }, size: 40 },
      { scale: "m", side: 1, stroke: "#b45309", grid: { show: false }, size: 60 }
    ]
  };
  // Revenue arrives as exact decimal strings; the chart only needs to draw it.
  var plot = new uPlot(opts, [s.x, s.clicks, s.conversions, s.revenue.map(Number)], holder);
  window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 260 }); });
})();
