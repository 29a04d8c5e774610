/* Linli safety: camera wall refresh and the zone/line editor (vanilla JS, no dependencies).
   Coordinates are fractions (0..1) of the picture, like linli.vision.analytics expects. */
(function () {
  "use strict";

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || ""; }
    catch (e) { return ""; }
  }

  // -- camera wall: reload each tile's picture every few seconds (only when visible)
  function wall() {
    var box = document.querySelector(".cam-wall");
    if (!box) return;
    var every = parseInt(box.getAttribute("data-refresh") || "3000", 10);
    box.querySelectorAll("img.cam-live").forEach(function (img) {
      img.addEventListener("error", function () { img.classList.add("no-frame"); });
      if (img.complete && !img.naturalWidth) img.classList.add("no-frame");
    });
    setInterval(function () {
      if (document.hidden) return;
      box.querySelectorAll("img.cam-live").forEach(function (img) {
        img.classList.remove("no-frame");
        img.src = img.getAttribute("data-src") + "?t=" + Date.now();
      });
    }, every);
  }

  // -- geometry (same rules as the server: inside the frame, simple polygons)
  function cross(o, a, b) { return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]); }
  function segX(p1, p2, q1, q2) {
    var d1 = cross(q1, q2, p1), d2 = cross(q1, q2, p2), d3 = cross(p1, p2, q1), d4 = cross(p1, p2, q2);
    return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0));
  }
  function simple(poly) {
    var n = poly.length;
    for (var i = 0; i < n; i++) {
      for (var j = i + 1; j < n; j++) {
        if (Math.abs(i - j) <= 1 || (i === 0 && j === n - 1)) continue;
        if (segX(poly[i], poly[(i + 1) % n], poly[j], poly[(j + 1) % n])) return false;
      }
    }
    return true;
  }
  function r4(v) { return Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000; }

  function editor(root) {
    var t = JSON.parse(root.getAttribute("data-i18n") || "{}");
    var editable = root.getAttribute("data-editable") === "true";
    var data = JSON.parse(root.querySelector(".zone-data").textContent || "{}") || {};
    var zones = (data.zones || []).map(function (z) { z.polygon = z.polygon || z.points; return z; });
    var lines = data.lines || [];
    var anchor = data.anchor || "bottom";
    var canvas = root.querySelector("canvas"), ctx2 = canvas.getContext("2d");
    var status = root.querySelector(".zone-status");
    var closeBtn = root.querySelector('[data-action="close"]');
    var img = new Image(), haveImg = false, mode = null, pts = [];

    function say(text, bad) { status.textContent = text; status.className = "zone-status" + (bad ? " error" : ""); }
    function W() { return canvas.width; } function H() { return canvas.height; }
    function px(p) { return [p[0] * W(), p[1] * H()]; }

    function draw() {
      ctx2.clearRect(0, 0, W(), H());
      if (haveImg) ctx2.drawImage(img, 0, 0, W(), H());
      else { ctx2.fillStyle = "#444"; ctx2.fillRect(0, 0, W(), H()); }
      ctx2.lineWidth = 2; ctx2.font = "14px sans-serif";
      zones.forEach(function (z) {
        ctx2.beginPath();
        z.polygon.forEach(function (p, i) { var q = px(p); if (i) ctx2.lineTo(q[0], q[1]); else ctx2.moveTo(q[0], q[1]); });
        ctx2.closePath();
        ctx2.fillStyle = "rgba(220,38,38,.18)"; ctx2.fill(); ctx2.strokeStyle = "#dc2626"; ctx2.stroke();
        var c = px(z.polygon[0]); ctx2.fillStyle = "#fff"; ctx2.fillText(z.id, c[0] + 4, c[1] + 14);
      });
      lines.forEach(function (l) {
        var a = px(l.a), b = px(l.b);
        ctx2.strokeStyle = "#2563eb"; ctx2.beginPath(); ctx2.moveTo(a[0], a[1]); ctx2.lineTo(b[0], b[1]); ctx2.stroke();
        var ang = Math.atan2(b[1] - a[1], b[0] - a[0]);
        ctx2.beginPath(); ctx2.moveTo(b[0], b[1]);
        ctx2.lineTo(b[0] - 12 * Math.cos(ang - 0.4), b[1] - 12 * Math.sin(ang - 0.4));
        ctx2.lineTo(b[0] - 12 * Math.cos(ang + 0.4), b[1] - 12 * Math.sin(ang + 0.4));
        ctx2.closePath(); ctx2.fillStyle = "#2563eb"; ctx2.fill();
        ctx2.fillStyle = "#fff"; ctx2.fillText(l.id, a[0] + 4, a[1] - 4);
      });
      if (pts.length) {
        ctx2.strokeStyle = "#f59e0b"; ctx2.beginPath();
        pts.forEach(function (p, i) { var q = px(p); if (i) ctx2.lineTo(q[0], q[1]); else ctx2.moveTo(q[0], q[1]); });
        ctx2.stroke();
        pts.forEach(function (p) { var q = px(p); ctx2.fillStyle = "#f59e0b"; ctx2.fillRect(q[0] - 3, q[1] - 3, 6, 6); });
      }
    }

    function newId(prefix) {
      var used = zones.map(function (z) { return z.id; }).concat(lines.map(function (l) { return l.id; }));
      var n = 1; while (used.indexOf(prefix + n) >= 0) n++;
      var v = window.prompt(t.name || "Name", prefix + n);
      if (v === null) return null;
      v = v.trim();
      if (!/^[A-Za-z0-9_.\-]{1,64}$/.test(v) || used.indexOf(v) >= 0) { say(t.name || "Name", true); return null; }
      return v;
    }

    function finishZone() {
      if (pts.length < 3) { say(t.needs3, true); return; }
      if (!simple(pts)) { say(t.failed, true); return; }
      var id = newId("zone-"); if (!id) return;
      zones.push({ id: id, polygon: pts.slice() }); pts = []; mode = null; closeBtn.hidden = true;
      list(); draw();
    }

    canvas.addEventListener("click", function (ev) {
      if (!editable || !mode) return;
      var r = canvas.getBoundingClientRect();
      var x = (ev.clientX - r.left) / r.width, y = (ev.clientY - r.top) / r.height;
      if (x < 0 || x > 1 || y < 0 || y > 1) { say(t.outside, true); return; }
      pts.push([r4(x), r4(y)]);
      if (mode === "line" && pts.length === 2) {
        var id = newId("line-");
        if (id) lines.push({ id: id, a: pts[0], b: pts[1] });
        pts = []; mode = null; list();
      }
      draw();
    });

    root.querySelectorAll("[data-mode]").forEach(function (b) {
      b.addEventListener("click", function () {
        mode = b.getAttribute("data-mode"); pts = [];
        closeBtn.hidden = mode !== "zone"; say((mode === "zone" ? t.zone : t.line) + " …"); draw();
      });
    });
    if (closeBtn) closeBtn.addEventListener("click", finishZone);
    var undo = root.querySelector('[data-action="undo"]');
    if (undo) undo.addEventListener("click", function () {
      if (pts.length) pts.pop(); else if (lines.length && (!zones.length || mode === "line")) lines.pop(); else zones.pop();
      list(); draw();
    });

    function hoursOf(v) { v = (v || "").trim(); return v ? [v] : []; }
    function hoursText(r) {
      if (!r || !r.hours || !r.hours.length) return "";
      var h = r.hours[0]; return typeof h === "string" ? h : ((h.from || "") + "-" + (h.to || ""));
    }

    function list() {
      var body = root.querySelector(".zone-list tbody"); body.textContent = "";
      function row(item, kind) {
        var tr = document.createElement("tr");
        var td1 = document.createElement("td"); td1.textContent = item.id; tr.appendChild(td1);
        var td2 = document.createElement("td"); td2.textContent = kind === "zone" ? t.zone : t.line; tr.appendChild(td2);
        var td3 = document.createElement("td");
        var tpl = root.querySelector(kind === "zone" ? "template.zone-rules" : "template.line-rules");
        td3.appendChild(tpl.content.cloneNode(true));
        td3.querySelectorAll("[data-rule]").forEach(function (cb) {
          var k = cb.getAttribute("data-rule"); cb.checked = !!item[k]; cb.disabled = !editable;
          cb.addEventListener("change", function () {
            if (cb.checked) item[k] = item[k] || (k === "tailgating" ? { direction: "in" } : {}); else delete item[k];
            sync(item, td3);
          });
        });
        var f = function (name) { return td3.querySelector('[data-field="' + name + '"]'); };
        if (f("intrusion_hours")) f("intrusion_hours").value = hoursText(item.intrusion);
        if (f("motion_hours")) f("motion_hours").value = hoursText(item.motion);
        if (f("loitering_seconds") && item.loitering) f("loitering_seconds").value = item.loitering.seconds || 60;
        if (f("gathering_max") && item.gathering) f("gathering_max").value = item.gathering.max_people || 5;
        td3.querySelectorAll("[data-field]").forEach(function (inp) {
          inp.disabled = !editable; inp.addEventListener("change", function () { sync(item, td3); });
        });
        tr.appendChild(td3);
        var td4 = document.createElement("td");
        if (editable) {
          var del = document.createElement("button"); del.type = "button"; del.className = "btn secondary"; del.textContent = "✕";
          del.addEventListener("click", function () {
            if (kind === "zone") zones.splice(zones.indexOf(item), 1); else lines.splice(lines.indexOf(item), 1);
            list(); draw();
          });
          td4.appendChild(del);
        }
        tr.appendChild(td4); body.appendChild(tr);
      }
      zones.forEach(function (z) { row(z, "zone"); });
      lines.forEach(function (l) { row(l, "line"); });
    }

    function sync(item, td) {
      var f = function (name) { return td.querySelector('[data-field="' + name + '"]'); };
      if (item.intrusion) item.intrusion = { hours: hoursOf(f("intrusion_hours").value) };
      if (item.motion) item.motion = { hours: hoursOf(f("motion_hours").value) };
      if (item.loitering) item.loitering = { seconds: parseFloat(f("loitering_seconds").value) || 60 };
      if (item.gathering) item.gathering = { max_people: parseInt(f("gathering_max").value, 10) || 5 };
    }

    var save = root.querySelector('[data-action="save"]');
    if (save) save.addEventListener("click", function () {
      say("…");
      fetch(root.getAttribute("data-save"), {
        method: "PUT", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify({ zones: zones, lines: lines, anchor: anchor })
      }).then(function (r) {
        return r.json().then(function (body) {
          if (r.ok) { say(t.saved); return; }
          var msg = body.detail || t.failed;
          if (body.errors && body.errors.length) msg += " " + body.errors.map(function (e) { return e.message; }).join(" ");
          say(msg, true);
        });
      }).catch(function () { say(t.failed, true); });
    });

    img.onload = function () {
      haveImg = true;
      var w = Math.min(640, img.naturalWidth), h = Math.round(w * img.naturalHeight / img.naturalWidth);
      canvas.width = w; canvas.height = h; draw();
    };
    img.onerror = function () { say(t.nopicture, true); draw(); };
    img.src = root.getAttribute("data-frame") + "?t=" + Date.now();
    list(); draw();
  }

  document.addEventListener("DOMContentLoaded", function () {
    wall();
    document.querySelectorAll(".zone-editor").forEach(editor);
  });
})();
