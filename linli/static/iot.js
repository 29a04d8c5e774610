// Facility monitoring and work orders: charts (ECharts) and live updates over SSE.
// No inline scripts (CSP script-src 'self'): everything comes in data-* attributes or from the
// JSON API. Every page still works without this file, just without live updates and charts.
(function () {
  "use strict";

  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // -- live connection ---------------------------------------------------------------------

  function setLive(on) {
    document.querySelectorAll("[data-live-indicator]").forEach(function (el) {
      el.classList.toggle("on", on);
      el.classList.toggle("off", !on);
      el.textContent = on ? el.dataset.on : el.dataset.off;
    });
  }

  function subscribe(el, handler) {
    if (!window.EventSource || !el.dataset.liveStream) return;
    var es = new EventSource(el.dataset.liveStream, { withCredentials: true });
    (el.dataset.liveEvents || "").split(/\s+/).filter(Boolean).forEach(function (name) {
      es.addEventListener(name, function (ev) { handler(name, ev); });
    });
    es.onopen = function () { setLive(true); };
    es.onerror = function () { setLive(false); };
    window.addEventListener("pagehide", function () { es.close(); });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  // Regions redrawn by the server on every event: the alarm table, the work-order board.
  document.querySelectorAll("[data-live-src][data-live-stream]").forEach(function (el) {
    var refresh = debounce(function () {
      fetch(el.dataset.liveSrc, { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var before = {};
          el.querySelectorAll("[data-alarm]").forEach(function (x) { before[x.dataset.alarm] = true; });
          el.innerHTML = html;
          el.querySelectorAll("[data-alarm]").forEach(function (x) {
            if (!before[x.dataset.alarm]) x.classList.add("flash-new");
          });
          if (window.htmx) window.htmx.process(el);
        })
        .catch(function () { /* the next event tries again */ });
    }, 250);
    subscribe(el, refresh);
  });

  // -- facility map -------------------------------------------------------------------------

  var plan = document.querySelector("[data-live-map]");
  if (plan) {
    var labels = {};
    try { labels = JSON.parse(plan.dataset.stateLabels || "{}"); } catch (e) { labels = {}; }
    var update = debounce(function () {
      fetch(plan.dataset.liveMap, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          var shown = plan.querySelectorAll("[data-device]").length;
          var missing = data.devices.length !== shown;
          data.devices.forEach(function (d) {
            var g = plan.querySelector('[data-device="' + d.id + '"]');
            if (!g) { missing = true; return; }
            g.setAttribute("class", "dev state-" + d.status);
            var title = g.querySelector("title");
            if (title) title.textContent = d.name + " · " + (labels[d.status] || d.status);
            document.querySelectorAll('[data-device-state="' + d.id + '"]').forEach(function (s) {
              s.className = "state state-" + d.status;
              s.textContent = labels[d.status] || d.status;
            });
          });
          Object.keys(data.counts).forEach(function (k) {
            var c = document.querySelector('[data-count="' + k + '"]');
            if (c) c.textContent = data.counts[k];
          });
          if (missing) window.location.reload();  // a device came or went: redraw the plan
        })
        .catch(function () {});
    }, 300);
    subscribe(plan, update);
  }

  // -- device chart -------------------------------------------------------------------------

  var box = document.getElementById("device-chart");
  if (box && window.echarts) {
    var metrics = [];
    try { metrics = JSON.parse(box.dataset.metrics || "[]"); } catch (e) { metrics = []; }
    var select = document.querySelector("[data-chart-metric]");
    var range = "24h";
    box.innerHTML = "";
    var chart = window.echarts.init(box, null, { locale: box.dataset.lang === "zh_CN" ? "ZH" : "EN" });
    var fmt = function (v) { return v === null || v === undefined ? "—" : (Math.round(v * 1000) / 1000).toString(); };

    var message = function (text) {
      chart.clear();
      chart.setOption({
        title: { text: text, left: "center", top: "middle", textStyle: { color: "#616e7c", fontSize: 14, fontWeight: "normal" } },
      });
    };

    var load = function () {
      var key = select ? select.value : (metrics[0] && metrics[0].key);
      if (!key) { message(box.dataset.empty); return; }
      var spec = metrics.filter(function (m) { return m.key === key; })[0] || { key: key, unit: "", title: key, kind: "number" };
      var url = box.dataset.seriesUrl + "?metric=" + encodeURIComponent(key) + "&range=" + encodeURIComponent(range);
      chart.showLoading();
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
        .then(function (data) {
          chart.hideLoading();
          var pts = data.points || [];
          if (!pts.length) { message(box.dataset.empty); return; }
          var rolled = data.resolution !== "raw";
          var series = [];
          if (rolled) {
            series.push({
              name: box.dataset.labelMin, type: "line", stack: "band", symbol: "none",
              lineStyle: { opacity: 0 }, areaStyle: { opacity: 0 }, silent: true,
              data: pts.map(function (p) { return [p[0], p[2]]; }),
            });
            series.push({
              name: box.dataset.labelMax, type: "line", stack: "band", symbol: "none",
              lineStyle: { opacity: 0 }, areaStyle: { color: "rgba(15,118,110,0.15)" }, silent: true,
              data: pts.map(function (p) { return [p[0], p[3] - p[2]]; }),
            });
          }
          series.push({
            name: box.dataset.labelAvg, type: "line", color: "#0f766e",
            showSymbol: pts.length < 60, step: spec.kind === "bool" ? "end" : false,
            data: pts.map(function (p) { return [p[0], p[1]]; }),
          });
          chart.setOption({
            title: { show: false },
            grid: { left: 56, right: 20, top: 30, bottom: 56 },
            tooltip: {
              trigger: "axis",
              formatter: function (items) {
                var p = pts[items[0].dataIndex];
                var unit = spec.unit ? " " + esc(spec.unit) : "";
                var out = esc(new Date(p[0]).toLocaleString()) + "<br>" + esc(box.dataset.labelAvg) + ": " + fmt(p[1]) + unit;
                if (rolled) out += "<br>" + esc(box.dataset.labelMin) + ": " + fmt(p[2]) + unit + " · " + esc(box.dataset.labelMax) + ": " + fmt(p[3]) + unit;
                return out;
              },
            },
            xAxis: { type: "time" },
            yAxis: { type: "value", name: spec.unit || "", scale: true },
            dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 12 }],
            series: series,
          }, true);
        })
        .catch(function () { chart.hideLoading(); message(box.dataset.error); });
    };

    document.querySelectorAll("[data-chart-range]").forEach(function (b) {
      b.addEventListener("click", function () {
        range = b.dataset.chartRange;
        document.querySelectorAll("[data-chart-range]").forEach(function (x) {
          x.setAttribute("aria-pressed", x === b ? "true" : "false");
        });
        load();
      });
    });
    if (select) select.addEventListener("change", load);
    window.addEventListener("resize", debounce(function () { chart.resize(); }, 150));
    setInterval(function () { if (range === "1h" || range === "24h") load(); }, 60000);
    load();
  }
})();
