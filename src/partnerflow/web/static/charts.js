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
      { label: "Conversions", stroke: "#137a3a", width: 2, scale: "n" },
      { label: "Revenue", stroke: "#b45309", width: 2, scale: "m", value: function (u, v) { return money(v); } }
    ],
    axes: [
      {},
      { scale: "n" },
      { scale: "m", side: 1, grid: { show: false } }
    ]
  };
  // Revenue arrives as exact decimal strings; the chart only needs to draw it.
  var plot = new uPlot(opts, [s.x, s.clicks, s.conversions, s.revenue.map(Number)], holder);
  window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 260 }); });
})();
