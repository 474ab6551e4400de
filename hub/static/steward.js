// The stewards' page's charts, drawn with the vendored Apache ECharts from /steward/data:
// numbers already disclosure-controlled on the server, each also in the table under its
// chart. Drawn as SVG, so every label is text in the page (for the browser test, too). A suppressed value (null) is a gap in a line and a grey "suppressed" square in
// the heatmap, never a number. Decal patterns and ECharts' aria descriptions are on, so
// no chart needs colour alone. Without JavaScript the tables still show every number.
"use strict";
(function () {
  var status = document.getElementById("charts-status");
  if (!window.echarts || !window.fetch) { return; }
  // Colours of 4.5:1 or more on white, and a different marker shape per line, so no
  // line is told from another by colour alone.
  var palette = ["#1d4ed8", "#b35900", "#00703c", "#6f2c91", "#b10e1e", "#0b0c0c"];
  var symbols = ["circle", "rect", "triangle", "diamond", "pin", "arrow"];
  var base = { animation: false, color: palette, textStyle: { color: "#0b0c0c" },
               aria: { enabled: true, decal: { show: true } } };

  function option(extra) {
    return Object.assign({}, base, extra);
  }

  // Ticks at multiples of 5 from 0 to at least 5: an axis of small numbers would show
  // counts the rule never published.
  function axisOfCounts(name) {
    return { type: "value", name: name, min: 0, minInterval: 5,
             max: function (extent) { return Math.max(5, Math.ceil(extent.max / 5) * 5); } };
  }

  function draw(node, extra) {
    var chart = window.echarts.init(node, null, { renderer: "svg" });
    chart.setOption(option(extra));
    window.addEventListener("resize", function () { chart.resize(); });
    return chart;
  }

  // Lines over windows, each with its own marker; `more` adds to the n-th line's series.
  function lines(node, chart, windowName, top, more) {
    return draw(node, {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 48, right: 16, top: top, bottom: 32 },
      xAxis: { type: "category", data: chart.windows, name: windowName },
      yAxis: axisOfCounts("people"),
      series: chart.lines.map(function (line, n) {
        return more({ name: line.name, type: "line", data: line.values, connectNulls: false,
                      symbol: symbols[n % symbols.length], symbolSize: 10 }, line, n);
      })
    });
  }

  function trend(node, chart) {
    return lines(node, chart, "week starting", 40, function (series) { return series; });
  }

  // A matrix of counts (row, column, count): published cells on one colour scale with
  // their number; suppressed ones grey and in words, never a colour on the scale (their
  // value 0 only places the cell: ECharts draws no cell for "-"). `axes` lays it out.
  function heatmap(node, matrix, name, axes) {
    var counts = matrix.values.map(function (v) { return v[2]; });
    return draw(node, {
      tooltip: { position: "top" },
      grid: axes.grid,
      xAxis: axes.xAxis,
      yAxis: axes.yAxis,
      visualMap: { min: 0, max: Math.max.apply(null, counts.concat([5])), calculable: false,
                   orient: "horizontal", left: "center", bottom: 0, seriesIndex: 0,
                   inRange: { color: ["#deebf7", "#08306b"] } },
      series: [
        { name: name, type: "heatmap", data: matrix.values,
          label: { show: true, color: "#ffffff", backgroundColor: "#0b0c0c", padding: 2 } },
        { name: "suppressed", type: "heatmap",
          data: matrix.suppressed.map(function (v) { return [v[0], v[1], 0]; }),
          itemStyle: { color: "#b1b4b6" },
          tooltip: { formatter: "suppressed" },
          label: { show: true, formatter: "suppressed", color: "#0b0c0c" } }
      ]
    });
  }

  function coOccurrence(node, co) {
    return heatmap(node, co, "people with both", {
      grid: { left: 96, right: 16, top: 16, bottom: 96 },
      xAxis: { type: "category", data: co.domains, splitArea: { show: true } },
      yAxis: { type: "category", data: co.domains, splitArea: { show: true } }
    });
  }

  function health(node, rows) {
    var books = [["received", "received"], ["in_view", "in views"],
                 ["held_in_quarantine", "in quarantine"], ["dead_lettered", "dead-lettered"]];
    return draw(node, {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 48, right: 16, top: 40, bottom: 64 },
      xAxis: { type: "category", data: rows.map(function (r) { return r.partner; }),
               axisLabel: { interval: 0, rotate: 20 } },
      yAxis: axisOfCounts("records"),
      series: books.map(function (book) {
        return { name: book[1], type: "bar",
                 data: rows.map(function (r) { return r[book[0]]; }) };
      })
    });
  }

  // The flows: from a partner (row, y, top down as in the table) to another (column, x);
  // 0 (nobody) is left blank.
  function flowMatrix(node, flows) {
    return heatmap(node, flows, "people", {
      grid: { left: 160, right: 16, top: 32, bottom: 128 },
      xAxis: { type: "category", data: flows.partners, name: "to", splitArea: { show: true },
               axisLabel: { interval: 0, rotate: 30 } },
      yAxis: { type: "category", data: flows.partners, name: "from", splitArea: { show: true },
               axisLabel: { interval: 0 }, inverse: true, nameLocation: "start" }
    });
  }

  // Referrals by receiving partner, one bar per step (made, accepted, completed); a
  // suppressed count is a missing bar, the table says "suppressed".
  function referrals(node, flows) {
    return draw(node, {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 48, right: 16, top: 40, bottom: 64 },
      xAxis: { type: "category", data: flows.receivers, axisLabel: { interval: 0 } },
      yAxis: axisOfCounts("people"),
      series: flows.referral_steps.map(function (step) {
        return { name: step.name, type: "bar", data: step.values };
      })
    });
  }

  // A response's pattern before and after: its areas' lines solid, comparison areas dashed,
  // the whole place dotted, and a vertical line at the window holding its first day.
  var dashes = { response: "solid", comparison: "dashed", place: "dotted" };

  function response(node, chart) {
    var marker = chart.from_window === null ? [] : [{ xAxis: chart.from_window }];
    return lines(node, chart, "window starting", 56, function (series, line, n) {
      series.lineStyle = { type: dashes[line.role] || "solid" };
      if (n === 0) {
        series.markLine = { symbol: "none", silent: true, data: marker,
                            label: { formatter: "response from" },
                            lineStyle: { color: "#0b0c0c", type: "solid" } };
      }
      return series;
    });
  }

  // The same window of flows as the page (the query names it).
  fetch("/steward/data" + window.location.search, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (reply) {
      if (!reply.ok) { throw new Error("the page's data answered " + reply.status); }
      return reply.json();
    })
    .then(function (data) {
      document.querySelectorAll(".chart[data-chart=trend]").forEach(function (node) {
        trend(node, data.trends[Number(node.getAttribute("data-index"))]);
      });
      var co = document.getElementById("co-occurrence");
      if (co) { coOccurrence(co, data.co_occurrence); }
      var matrix = document.getElementById("flow-matrix");
      if (matrix) { flowMatrix(matrix, data.flows); }
      var referred = document.getElementById("flow-referrals");
      if (referred) { referrals(referred, data.flows); }
      var books = document.getElementById("health");
      if (books) { health(books, data.health); }
      document.querySelectorAll(".chart[data-chart=response]").forEach(function (node) {
        response(node, data.responses[Number(node.getAttribute("data-index"))].chart);
      });
      document.body.setAttribute("data-charts", "drawn");
    })
    .catch(function (error) {
      status.textContent = "The charts could not be drawn (" + error.message +
        "); the tables show every number.";
      document.body.setAttribute("data-charts", "failed");
    });
})();
