// The Metrics page's charts: uPlot on an asinh ("symlog") y axis, so that a line of 20,000 runs
// does not flatten one of 20 and zeros still draw; the figures come with the page.
"use strict";
(() => {
  const palette = ["#2c6db5", "#2b7a3d", "#c0392b", "#8e6bbf", "#d48b16", "#16a085",
                   "#7f8c8d", "#e84393", "#6c5ce7", "#00838f"];

  const decade = (v) => v === 0 || (v >= 1 && Number.isInteger(Math.log10(v)));

  // sizes: one point a minute at most, minutes without a report left out (spanned)
  function draw(id, at, lines, sizes) {
    const target = document.getElementById(id);
    const names = Object.keys(lines).sort();
    if (!target || names.length === 0) return;
    const options = {
      width: target.clientWidth || 600,
      height: 220,
      scales: { x: { time: true },
                y: { distr: 4, asinh: 1, range: (u, min, max) => [0, Math.max(max, 1)] } },
      // labels at 0 and powers of ten only: none below 0, which the asinh axis would place
      axes: [{}, { size: 70, filter: (u, splits) => splits.map((v) => (decade(v) ? v : null)) }],
      series: [{}].concat(names.map((name, i) => ({
        label: name, stroke: palette[i % palette.length], width: 2, spanGaps: !!sizes,
        points: { show: !!sizes, size: 5 },
      }))),
    };
    const chart = new uPlot(options, [at].concat(names.map((name) => lines[name])), target);
    window.addEventListener("resize", () =>
      chart.setSize({ width: target.clientWidth, height: 220 }));
  }

  window.addEventListener("load", () => {
    const holder = document.getElementById("metric-charts");
    if (!holder) return;
    const series = JSON.parse(holder.dataset.series);
    draw("chart-types", series.at, series.types);
    draw("chart-queues", series.at, series.queues);
    draw("chart-sizes", series.at, series.sizes, true);
    draw("chart-oldest", series.at, series.oldest, true);
  });
})();
