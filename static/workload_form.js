// Progressive enhancement for the workload form: a live traffic chart, presets, and length previews.
// Without JavaScript the form still works: the textarea takes 24 numbers and the CSV upload is server-side.
(function () {
  "use strict";

  var PRESETS = {
    // Shapes normalised to a peak of 1; scaled by the peak field.
    "business-hours": [0.05, 0.05, 0.05, 0.05, 0.05, 0.08, 0.15, 0.35, 0.7, 0.95, 1, 1, 0.9, 0.95, 1, 1, 0.95, 0.8, 0.5, 0.3, 0.2, 0.12, 0.08, 0.06],
    "flat": Array.apply(null, Array(24)).map(function () { return 1; }),
    "follow-the-sun": [0.75, 0.7, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1, 1, 0.95, 0.9, 0.9, 0.95, 1, 1, 0.95, 0.9, 0.85, 0.85, 0.8, 0.8, 0.75, 0.75],
    // A batch that runs at night (UTC) and stops by morning: no traffic at all by day.
    "nightly-batch": [1, 1, 1, 1, 1, 0.8, 0.3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.2, 0.6, 1]
  };
  // Presets that leave hours without traffic may scale to zero then (the planner's min_replicas 0).
  var SCALE_TO_ZERO = {"nightly-batch": true};

  function parseRates(text) {
    return text.split(/[\s,;]+/).filter(function (p) { return p.length; }).map(Number);
  }

  function drawTraffic(el, rates, title) {
    if (!window.Plotly || !el) return;
    var ok = rates.length === 24 && rates.every(function (r) { return isFinite(r) && r >= 0; });
    Plotly.react(el, [{
      type: "bar", x: rates.map(function (_, i) { return i; }), y: rates,
      marker: {color: ok ? "#0a58ca" : "#b3261e"}, hovertemplate: "%{x}:00 UTC: %{y} req/s<extra></extra>"
    }], {
      title: {text: ok ? (title || "Traffic by hour (UTC)") : "Traffic: " + rates.length + " of 24 values"},
      height: 220, margin: {t: 36, r: 10, b: 36, l: 50},
      xaxis: {dtick: 2, title: {text: "hour (UTC)"}}, yaxis: {title: {text: "req/s"}, rangemode: "tozero"}
    }, {displayModeBar: false, responsive: true});
  }

  // The planner draws lengths from a lognormal fitted to p50 and p95 and cut at max: show that shape.
  function drawLengths(el, prefix, title) {
    if (!window.Plotly || !el) return;
    var get = function (name) { var f = document.getElementById("id_" + prefix + "_" + name); return f ? Number(f.value) : NaN; };
    var p50 = get("p50"), p95 = get("p95"), max = get("max");
    if (!(p50 > 0 && p95 >= p50 && max >= p95)) { Plotly.purge(el); el.textContent = "Enter p50 ≤ p95 ≤ max to preview the " + title.toLowerCase() + "."; return; }
    el.textContent = "";
    var mu = Math.log(p50), sigma = Math.max((Math.log(p95) - Math.log(p50)) / 1.6449, 0.01);
    var xs = [], ys = [];
    for (var i = 1; i <= 80; i++) {
      var x = max * i / 80;
      xs.push(Math.round(x));
      ys.push(Math.exp(-Math.pow(Math.log(x) - mu, 2) / (2 * sigma * sigma)) / (x * sigma * Math.sqrt(2 * Math.PI)));
    }
    Plotly.react(el, [{type: "scatter", mode: "lines", fill: "tozeroy", x: xs, y: ys, line: {color: "#6f42c1"}, hoverinfo: "x"}], {
      title: {text: title + " (lognormal fit, cut at max)"}, height: 180, margin: {t: 32, r: 10, b: 32, l: 40},
      xaxis: {title: {text: "tokens"}}, yaxis: {showticklabels: false}, showlegend: false
    }, {displayModeBar: false, responsive: true});
  }

  document.addEventListener("DOMContentLoaded", function () {
    var area = document.getElementById("id_hourly_rates");
    if (!area) return;
    var chart = document.getElementById("traffic-editor-chart");
    var tools = document.getElementById("traffic-tools");
    if (tools) tools.hidden = false;
    var redraw = function () { drawTraffic(chart, parseRates(area.value)); };
    area.addEventListener("input", redraw);
    document.querySelectorAll("[data-preset]").forEach(function (button) {
      button.addEventListener("click", function () {
        var peak = Number(document.getElementById("preset-peak").value) || 1;
        area.value = PRESETS[button.dataset.preset].map(function (v) { return +(v * peak).toFixed(3); }).join(", ");
        area.dispatchEvent(new Event("input", {bubbles: true}));
        var minReplicas = document.getElementById("id_min_replicas");
        var note = document.getElementById("preset-note");
        if (minReplicas && SCALE_TO_ZERO[button.dataset.preset]) {
          minReplicas.value = "0";
          minReplicas.dispatchEvent(new Event("input", {bubbles: true}));
          if (note) note.textContent = "Min replicas set to 0: no replica runs in the hours without traffic, so nothing is paid for then; the first request after an idle hour waits for a cold start (the plan says how long).";
        } else if (note) {
          note.textContent = "";
        }
      });
    });
    // A chosen CSV is read by the server the way saving reads it, and its curve is drawn before saving.
    var upload = document.getElementById("id_traffic_csv");
    if (upload) upload.addEventListener("change", function () {
      var note = document.getElementById("traffic-upload-note");
      if (!note) return;
      if (!upload.files.length) { note.textContent = ""; redraw(); return; }
      note.textContent = "Reading " + upload.files[0].name + "…";
      var body = new FormData();
      body.append("traffic_csv", upload.files[0]);
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      fetch(note.dataset.previewUrl, {method: "POST", body: body, headers: headers, credentials: "same-origin"})
        .then(function (response) { return response.json().then(function (data) { return {ok: response.ok, data: data}; }); })
        .then(function (answer) {
          if (!answer.ok) { note.textContent = "This CSV cannot be used: " + answer.data.error; note.className = "help error"; return; }
          var rates = answer.data.hourly_requests_per_s;
          note.className = "help";
          note.textContent = "Preview of " + upload.files[0].name + ": peak " + Number(answer.data.peak_requests_per_s.toPrecision(3)).toLocaleString("en-US") + " req/s, " +
            Math.round(answer.data.requests_per_day).toLocaleString("en-US") + " requests/day. It replaces the numbers above when you save.";
          drawTraffic(chart, rates, "CSV preview: traffic by hour (UTC)");
        })
        .catch(function () { note.textContent = "The CSV could not be previewed; it is still read when you save."; });
    });
    redraw();
    ["prompt", "output"].forEach(function (prefix) {
      var el = document.getElementById(prefix + "-length-chart");
      var draw = function () { drawLengths(el, prefix, prefix === "prompt" ? "Prompt lengths" : "Output lengths"); };
      ["p50", "p95", "max"].forEach(function (n) {
        var f = document.getElementById("id_" + prefix + "_" + n);
        if (f) f.addEventListener("input", draw);
      });
      draw();
    });
  });
})();
