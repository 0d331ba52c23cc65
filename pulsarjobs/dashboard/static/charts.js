// The Home page's charts: uPlot fed from /api/home every poll interval.
"use strict";
(() => {
  const poll = Number(document.body.dataset.pollMs) || 3000;
  const colors = { processed: "#2b7a3d", failed: "#c0392b", waiting: "#2c6db5",
                   scheduled: "#8e6bbf", in_flight: "#d48b16", dead: "#c0392b" };
  const charts = {};

  function options(target, series) {
    return {
      width: target.clientWidth || 600,
      height: 220,
      scales: { x: { time: true } },
      axes: [{}, { size: 70 }],
      series: [{}].concat(series.map((name) => ({
        label: name.replace("_", " "), stroke: colors[name], width: 2, points: { show: false },
      }))),
    };
  }

  function draw(id, data, names) {
    const target = document.getElementById(id);
    if (!target) return;
    const columns = [data.at].concat(names.map((name) => data[name]));
    if (!charts[id]) {
      charts[id] = new uPlot(options(target, names), columns, target);
      window.addEventListener("resize", () =>
        charts[id].setSize({ width: target.clientWidth, height: 220 }));
    } else {
      charts[id].setData(columns);
    }
  }

  async function refresh() {
    try {
      if (document.hidden) return;  // a tab in the background asks nothing: it costs nothing
      const response = await fetch("/api/home", { headers: { Accept: "application/json" } });
      if (response.status === 401) {  // the session was lost: log in, and come back here
        const here = window.location.pathname + window.location.search;
        window.location.href = "/login?" + new URLSearchParams({ next: here });
        return;
      }
      if (response.ok) {
        const home = await response.json();
        draw("chart-rates", home.series, ["processed", "failed"]);
        draw("chart-sizes", home.series, ["waiting", "scheduled", "in_flight", "dead"]);
      }
    } finally {
      setTimeout(refresh, poll);
    }
  }

  window.addEventListener("load", refresh);
})();
