// chatledger console: the page's only script (no inline script is allowed by the CSP).
// It draws the charts from their canvas' data-chart attribute (JSON the server escaped) and
// submits a filter form when one of its selects changes. Pages work without it.
"use strict";

(function () {
  const palette = ["#1f4e79", "#b42318", "#8250df", "#1a7f37", "#9a6700", "#0969da"];

  function drawCharts() {
    if (typeof window.Chart === "undefined") {
      return;
    }
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      let spec;
      try {
        spec = JSON.parse(canvas.dataset.chart);
      } catch (error) {
        return;
      }
      const datasets = spec.series.map(function (series, index) {
        return {
          label: series.label,
          data: series.data,
          backgroundColor: palette[index % palette.length],
          borderColor: palette[index % palette.length],
        };
      });
      // Exact decimal costs (strings from the server): a line on its own axis, the exact value
      // in the tooltip.
      const costs = spec.cost || null;
      const scales = {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, title: { display: Boolean(spec.unit), text: spec.unit || "" } },
      };
      if (costs) {
        datasets.push({
          type: "line",
          label: "cost ($)",
          data: costs.map(Number),
          yAxisID: "cost",
          borderColor: "#9a6700",
          backgroundColor: "#9a6700",
        });
        scales.cost = {
          position: "right",
          beginAtZero: true,
          grid: { drawOnChartArea: false },
          title: { display: true, text: "cost ($)" },
        };
      }
      // eslint-disable-next-line no-new
      new window.Chart(canvas, {
        type: canvas.dataset.kind || "bar",
        data: { labels: spec.labels, datasets: datasets },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          scales: scales,
          plugins: {
            tooltip: {
              callbacks: {
                footer: function (items) {
                  // Exact decimal cost, as the server computed it.
                  return costs && items.length ? "cost $" + costs[items[0].dataIndex] : "";
                },
              },
            },
          },
        },
      });
    });
  }

  function autoSubmitFilters() {
    document.querySelectorAll("form.filters select").forEach(function (select) {
      select.addEventListener("change", function () {
        select.form.requestSubmit();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    autoSubmitFilters();
    document.documentElement.dataset.consoleReady = "1";
  });
})();
