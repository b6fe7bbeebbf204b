/* posemb's table explorer (posemb/analysis/explorer.py): draws the numbers embedded in the
   page on <canvas> elements. No request of any kind: the data are the page's own
   <script type="application/json">, read once. Every element it uses carries data-role. */
(function () {
  "use strict";

  // -- data ------------------------------------------------------------------------------------
  function unpack(p) {
    // 16-bit little-endian steps from p.lo to p.hi (or integers when p.int), base64
    var bin = atob(p.b64), k = bin.length >> 1, out = new Float64Array(k);
    var scale = p.int ? 1 : (p.hi - p.lo) / 65535, lo = p.int ? 0 : p.lo;
    for (var i = 0; i < k; i++) {
      out[i] = lo + (bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8)) * scale;
    }
    return out;
  }

  function palette(hex) {
    var out = [];
    for (var i = 0; i < hex.length; i += 6) {
      out.push([0, 2, 4].map(function (k) { return parseInt(hex.substr(i + k, 2), 16); }));
    }
    return out;
  }

  function pick(pal, t) {
    return pal[Math.max(0, Math.min(255, Math.round(t * 255)))];
  }

  function rgb(c) { return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")"; }
  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function count(k) { return k.toLocaleString("en-US"); }

  // -- drawing ---------------------------------------------------------------------------------
  function prepare(canvas) {
    // the canvas's logical size is its width/height attributes; sharp on any pixel ratio
    if (!canvas.w0) {
      canvas.w0 = canvas.width;
      canvas.h0 = canvas.height;
      canvas.style.width = canvas.w0 + "px";
    }
    var r = window.devicePixelRatio || 1, ctx = canvas.getContext("2d");
    canvas.width = Math.round(canvas.w0 * r);
    canvas.height = Math.round(canvas.h0 * r);
    ctx.setTransform(r, 0, 0, r, 0, 0);
    ctx.font = "11px system-ui, sans-serif";
    return ctx;
  }

  function pointer(canvas, ev) {
    // the pointer in the canvas's logical pixels (inside its border, at any CSS scale)
    var b = canvas.getBoundingClientRect();
    return [
      (ev.clientX - b.left - canvas.clientLeft) / canvas.clientWidth * canvas.w0,
      (ev.clientY - b.top - canvas.clientTop) / canvas.clientHeight * canvas.h0,
    ];
  }

  function ticks(lo, hi, want) {
    var span = hi - lo;
    if (!(span > 0)) return [lo];
    var step = Math.pow(10, Math.floor(Math.log10(span / want))), out = [];
    [1, 2, 5, 10].some(function (f) { if (span / (step * f) <= want) { step *= f; return true; } return false; });
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(v);
    return out;
  }

  function label(v) {
    if (Math.abs(v - Math.round(v)) < 1e-9) return count(Math.round(v));
    return String(Number(v.toPrecision(2)));  // 0.05, not 0.050
  }

  function chart(canvas, xr, yr, xname, yname) {
    // axes for x in xr = [lo, hi] and y in yr; returns the mappings between values and pixels
    var ctx = prepare(canvas), W = canvas.w0, H = canvas.h0, L = 52, R = 8, T = 8, B = 30;
    var w = W - L - R, h = H - T - B, dx = xr[1] - xr[0] || 1, dy = yr[1] - yr[0] || 1;
    var c = {
      ctx: ctx, left: L, right: L + w, top: T, bottom: T + h,
      x: function (v) { return L + (v - xr[0]) / dx * w; },
      y: function (v) { return T + (1 - (v - yr[0]) / dy) * h; },
      xv: function (px) { return xr[0] + (px - L) / w * dx; },
      yv: function (py) { return yr[0] + (1 - (py - T) / h) * dy; },
    };
    ctx.clearRect(0, 0, W, H);
    ctx.strokeStyle = "#999";
    ctx.lineWidth = 1;
    ctx.strokeRect(L + 0.5, T + 0.5, w, h);
    ctx.fillStyle = "#333";
    ctx.textAlign = "center";
    ticks(xr[0], xr[1], 6).forEach(function (v) { ctx.fillText(label(v), c.x(v), T + h + 13); });
    ctx.fillText(xname, L + w / 2, H - 3);
    ctx.textAlign = "right";
    ticks(yr[0], yr[1], 4).forEach(function (v) { ctx.fillText(label(v), L - 4, c.y(v) + 4); });
    ctx.save();
    ctx.translate(11, T + h / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText(yname, 0, 0);
    ctx.restore();
    return c;
  }

  function vline(c, x, colour, dash) {
    var ctx = c.ctx;
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.setLineDash(dash || []);
    ctx.beginPath();
    ctx.moveTo(c.x(x), c.top);
    ctx.lineTo(c.x(x), c.bottom);
    ctx.stroke();
    ctx.restore();
  }

  function polyline(c, xs, ys, colour, width) {
    var ctx = c.ctx;
    ctx.strokeStyle = colour;
    ctx.lineWidth = width || 1;
    ctx.beginPath();
    for (var i = 0; i < xs.length; i++) ctx[i ? "lineTo" : "moveTo"](c.x(xs[i]), c.y(ys[i]));
    ctx.stroke();
  }

  function bounds(arrays, pad) {
    var lo = Infinity, hi = -Infinity;
    arrays.forEach(function (a) { for (var i = 0; i < a.length; i++) { lo = Math.min(lo, a[i]); hi = Math.max(hi, a[i]); } });
    var p = (hi - lo) * pad || 1;
    return [lo - p, hi + p];
  }

  function nearest(c, xs, ys, px, py) {
    var best = -1, bd = Infinity;
    for (var i = 0; i < xs.length; i++) {
      var d = Math.pow(c.x(xs[i]) - px, 2) + Math.pow(c.y(ys[i]) - py, 2);
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }

  function split(xy) {
    var k = xy.length / 2, xs = new Float64Array(k), ys = new Float64Array(k);
    for (var i = 0; i < k; i++) { xs[i] = xy[2 * i]; ys[i] = xy[2 * i + 1]; }
    return [xs, ys];
  }

  // -- one explorer: a context shared by its views ------------------------------------------------
  // Each view draws one part and answers the pointer and keys there; picking a position
  // (x.select) redraws every view registered in x.views.
  function context(root) {
    var data = JSON.parse(root.querySelector("[data-role=data]").textContent);
    var x = {
      root: root, data: data, n: data.n, m: data.map.m, b: data.map.block,
      tri: unpack(data.map.cos), pcs: split(unpack(data.xy)), norm: unpack(data.norm),
      div: palette(data.colours.div), seq: palette(data.colours.seq),
      sel: 0, views: [], charts: {},
    };
    x.el = function (role) { return root.querySelector("[data-role=" + role + "]"); };
    x.cos = function (a, c) {  // the map's cell (a, c), from the upper triangle
      if (a > c) { var t = a; a = c; c = t; }
      return x.tri[a * x.m - a * (a - 1) / 2 + c - a];
    };
    x.name = function (p, grid) {
      grid = grid || data.grid;
      if (!grid) return "position " + count(p);
      return "position " + count(p) + " (patch row " + (Math.floor(p / grid[1]) + 1) + ", column " + (p % grid[1] + 1) + ")";
    };
    x.block = function (a) {  // the positions of the map's row a
      var lo = a * x.b, hi = Math.min(x.n, (a + 1) * x.b) - 1;
      return lo === hi ? String(lo) : lo + "–" + hi;
    };
    x.select = function (p) {
      x.sel = clamp(Math.round(Number(p) || 0), 0, x.n - 1);
      root.setAttribute("data-selected", String(x.sel));
      x.el("goto").value = String(x.sel);
      x.views.forEach(function (draw) { draw(); });
    };
    return x;
  }

  function mapView(x) {
    var m = x.m, b = x.b, map = x.el("map"), readout = x.el("map-readout");
    var state = { cur: [0, 0], focus: false };
    var image = document.createElement("canvas");  // the map at one pixel a cell, drawn once
    image.width = image.height = m;
    var ictx = image.getContext("2d"), id = ictx.createImageData(m, m);
    for (var a = 0; a < m; a++) {
      for (var c = 0; c < m; c++) {
        var col = pick(x.div, (x.cos(a, c) + 1) / 2), k = 4 * (a * m + c);
        id.data[k] = col[0]; id.data[k + 1] = col[1]; id.data[k + 2] = col[2]; id.data[k + 3] = 255;
      }
    }
    ictx.putImageData(id, 0, 0);

    function text(a, c) {
      if (b === 1) {
        var patches = x.data.grid ? " (" + x.name(a).split(" (")[1].replace(")", "") + " and " + x.name(c).split(" (")[1] : "";
        return "position i = " + a + ", position j = " + c + ": cosine similarity " + x.cos(a, c).toFixed(3) + patches;
      }
      return "positions i = " + x.block(a) + ", positions j = " + x.block(c) + ": mean cosine similarity " +
        x.cos(a, c).toFixed(3) + " (blocks of " + b + " positions)";
    }
    function draw() {
      var ctx = prepare(map), S = map.w0, k = S / m, a = Math.floor(x.sel / b);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(image, 0, 0, S, S);
      ctx.strokeStyle = "rgba(0,0,0,0.7)";
      ctx.lineWidth = 1;
      ctx.strokeRect(0.5, a * k, S - 1, Math.max(k, 1));
      ctx.strokeRect(a * k, 0.5, Math.max(k, 1), S - 1);
      if (state.focus) {
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 2;
        ctx.strokeRect(state.cur[1] * k - 1, state.cur[0] * k - 1, k + 2, k + 2);
      }
    }
    function cellAt(ev) {
      var xy = pointer(map, ev), k = map.w0 / m;
      return [clamp(Math.floor(xy[1] / k), 0, m - 1), clamp(Math.floor(xy[0] / k), 0, m - 1)];
    }
    map.addEventListener("mousemove", function (ev) { var ac = cellAt(ev); readout.textContent = text(ac[0], ac[1]); });
    map.addEventListener("click", function (ev) { state.cur = cellAt(ev); x.select(state.cur[0] * b); });
    map.addEventListener("focus", function () { state.focus = true; draw(); readout.textContent = text(state.cur[0], state.cur[1]); });
    map.addEventListener("blur", function () { state.focus = false; draw(); });
    map.addEventListener("keydown", function (ev) {
      var step = ev.shiftKey ? 10 : 1;
      var d = { ArrowUp: [-step, 0], ArrowDown: [step, 0], ArrowLeft: [0, -step], ArrowRight: [0, step] }[ev.key];
      if (d) {
        state.cur = [clamp(state.cur[0] + d[0], 0, m - 1), clamp(state.cur[1] + d[1], 0, m - 1)];
        draw();
      } else if (ev.key === "Enter" || ev.key === " ") {
        x.select(state.cur[0] * b);
      } else {
        return;
      }
      ev.preventDefault();
      readout.textContent = text(state.cur[0], state.cur[1]);
    });
    readout.textContent = "Point at the map, or focus it (Tab) and move with the arrow keys.";
    return draw;
  }

  function curveView(x) {
    var n = x.n, m = x.m, b = x.b, curve = x.el("curve"), readout = x.el("curve-readout");
    function about() {
      var a = Math.floor(x.sel / b);
      return b === 1
        ? "The curve: cosine similarity of " + x.name(x.sel) + " with every position j (red line: " + x.sel + ")."
        : "The curve: mean cosine similarity of positions " + x.block(a) + " (the block of " + x.sel + ") with each block of " + b + " positions.";
    }
    function draw() {
      var c = chart(curve, [0, n - 1], [-1, 1], "position j", "cosine similarity"), ctx = c.ctx;
      ctx.fillStyle = "rgba(0,0,0,0.08)";  // rows that never trained
      x.data.untrained.forEach(function (r) { ctx.fillRect(c.x(r[0] - 0.5), c.top, c.x(r[1] + 0.5) - c.x(r[0] - 0.5), c.bottom - c.top); });
      ctx.save(); ctx.strokeStyle = "#bbb"; ctx.setLineDash([3, 3]); ctx.beginPath();
      ctx.moveTo(c.left, c.y(0)); ctx.lineTo(c.right, c.y(0)); ctx.stroke(); ctx.restore();
      var a = Math.floor(x.sel / b), xs = new Float64Array(m), ys = new Float64Array(m);
      for (var t = 0; t < m; t++) {
        xs[t] = b === 1 ? t : (t * b + Math.min(n, (t + 1) * b) - 1) / 2;  // a block at its middle
        ys[t] = x.cos(a, t);
      }
      polyline(c, xs, ys, "#1f5fa8", 1.5);
      vline(c, x.sel, "#c0392b");
      x.charts.curve = c;
      readout.textContent = about();
    }
    function at(ev) { return clamp(Math.round(x.charts.curve.xv(pointer(curve, ev)[0])), 0, n - 1); }
    curve.addEventListener("mousemove", function (ev) {
      var j = at(ev), t = Math.floor(j / b), a = Math.floor(x.sel / b);
      readout.textContent = b === 1
        ? "position j = " + j + ": cosine similarity with position " + x.sel + " " + x.cos(x.sel, j).toFixed(3)
        : "positions j = " + x.block(t) + ": mean cosine similarity with positions " + x.block(a) + " " + x.cos(a, t).toFixed(3);
    });
    curve.addEventListener("mouseleave", function () { readout.textContent = about(); });
    curve.addEventListener("click", function (ev) { x.select(at(ev)); });
    return draw;
  }

  function trajectoryView(x) {
    var n = x.n, pcs = x.pcs, traj = x.el("pca"), readout = x.el("pca-readout");
    function text(p) {
      return x.name(p) + " on the first two principal components: (" + pcs[0][p].toPrecision(3) + ", " +
        pcs[1][p].toPrecision(3) + "), row norm " + x.norm[p].toPrecision(3);
    }
    function draw() {
      var ex = x.data.explained.map(function (r) { return (100 * r).toFixed(0) + "%"; });
      var c = chart(traj, bounds([pcs[0]], 0.05), bounds([pcs[1]], 0.05),
        "first principal component (" + ex[0] + ")", "second (" + (ex[1] || "0%") + ")");
      var ctx = c.ctx;
      ctx.lineWidth = 1.5;
      for (var p = 0; p + 1 < n; p++) {  // the positions in order, coloured as the static plot
        ctx.strokeStyle = rgb(pick(x.seq, p / (n - 1)));
        ctx.beginPath();
        ctx.moveTo(c.x(pcs[0][p]), c.y(pcs[1][p]));
        ctx.lineTo(c.x(pcs[0][p + 1]), c.y(pcs[1][p + 1]));
        ctx.stroke();
      }
      ctx.fillStyle = "#333";
      ctx.textAlign = "left";
      [0, n - 1].forEach(function (q) { ctx.fillText(String(q), c.x(pcs[0][q]) + 4, c.y(pcs[1][q]) - 4); });
      var sx = c.x(pcs[0][x.sel]), sy = c.y(pcs[1][x.sel]);
      ctx.beginPath(); ctx.arc(sx, sy, 6, 0, 2 * Math.PI);
      ctx.fillStyle = "rgba(255,255,255,0.7)"; ctx.fill();
      ctx.strokeStyle = "#c0392b"; ctx.lineWidth = 2; ctx.stroke();
      ctx.fillStyle = "#c0392b"; ctx.font = "bold 12px system-ui, sans-serif";
      ctx.fillText(String(x.sel), sx + 8, sy + 14);
      x.charts.pca = c;
      readout.textContent = text(x.sel);
    }
    function at(ev) { var xy = pointer(traj, ev); return nearest(x.charts.pca, pcs[0], pcs[1], xy[0], xy[1]); }
    traj.addEventListener("mousemove", function (ev) { readout.textContent = text(at(ev)); });
    traj.addEventListener("mouseleave", function () { readout.textContent = text(x.sel); });
    traj.addEventListener("click", function (ev) { x.select(at(ev)); });
    return draw;
  }

  function extensionView(x) {
    var n = x.n, ext = x.data.ext, cache = {}, shown = null, readout = x.el("ext-readout");
    if (!x.el("ext")) return;
    function entry() {
      var key = x.el("method").value + "|" + x.el("size").value;
      if (!cache[key]) {
        var e = ext.entries[key];
        cache[key] = { e: e, xy: split(unpack(e.xy)), near: unpack(e.near), cos: unpack(e.cos), norm: unpack(e.norm) };
      }
      return cache[key];
    }
    function text(E, q) {
      return x.name(q * E.e.stride, E.e.grid) + ": nearest row of the table " + x.name(E.near[q]) +
        " (cosine similarity " + E.cos[q].toFixed(3) + "), norm " + E.norm[q].toPrecision(3);
    }
    function draw() {
      var E = entry(), e = E.e, k = E.near.length, method = x.el("method").value, q;
      var xs = new Float64Array(k), positions = new Float64Array(n);
      for (q = 0; q < k; q++) xs[q] = q * e.stride;
      for (q = 0; q < n; q++) positions[q] = q;
      x.el("ext").setAttribute("data-method", method);
      x.el("ext").setAttribute("data-rows", String(e.rows));
      x.el("ext-about").textContent = method + ": " + ext.about[method] + "." +
        (e.stride > 1 ? " One row in every " + e.stride + " of the " + count(e.rows) + " is drawn." : "");
      var pc = chart(x.el("ext-pca"), bounds([x.pcs[0], E.xy[0]], 0.05), bounds([x.pcs[1], E.xy[1]], 0.05), "first principal component", "second");
      polyline(pc, x.pcs[0], x.pcs[1], "#999", 1);
      for (q = 0; q < k; q++) {
        pc.ctx.fillStyle = !x.data.grid && xs[q] >= n ? "#e67e22" : "#1f5fa8";
        pc.ctx.fillRect(pc.x(E.xy[0][q]) - 1.5, pc.y(E.xy[1][q]) - 1.5, 3, 3);
      }
      var nc = chart(x.el("ext-near"), [0, e.rows - 1], [0, n - 1], "position of the extended table", "nearest row");
      for (q = 0; q < k; q++) {
        nc.ctx.fillStyle = rgb(pick(x.div, (E.cos[q] + 1) / 2));
        nc.ctx.fillRect(nc.x(xs[q]) - 1.5, nc.y(E.near[q]) - 1.5, 3, 3);
      }
      var rc = chart(x.el("ext-norm"), [0, e.rows - 1], [0, bounds([x.norm, E.norm], 0.05)[1]], "position of the extended table", "row norm");
      polyline(rc, positions, x.norm, "#999", 2);
      polyline(rc, xs, E.norm, "#e67e22", 1);
      if (!x.data.grid) { vline(nc, n - 0.5, "#555", [4, 3]); vline(rc, n - 0.5, "#555", [4, 3]); }
      // the first row drawn past the table (1-D), or right of the old grid (2-D)
      var first = Math.min(Math.ceil((x.data.grid ? x.data.grid[1] : n) / e.stride), k - 1);
      readout.textContent = (x.data.grid ? "The first patch right of the old grid, " : "The first position past the table, ") + text(E, first) + ".";
      shown = { E: E, pc: pc, nc: nc };
    }
    x.el("method").addEventListener("change", draw);
    x.el("size").addEventListener("change", draw);
    ["ext-near", "ext-norm"].forEach(function (role) {  // the same width and x axis
      x.el(role).addEventListener("mousemove", function (ev) {
        var pos = shown.nc.xv(pointer(x.el(role), ev)[0]);
        readout.textContent = text(shown.E, clamp(Math.round(pos / shown.E.e.stride), 0, shown.E.near.length - 1));
      });
    });
    x.el("ext-pca").addEventListener("mousemove", function (ev) {
      var xy = pointer(x.el("ext-pca"), ev);
      readout.textContent = text(shown.E, nearest(shown.pc, shown.E.xy[0], shown.E.xy[1], xy[0], xy[1]));
    });
    draw();
  }

  function patchView(x) {
    var P = x.data.patches, canvas = x.el("patches"), readout = x.el("patches-readout");
    if (!P) return null;
    var cos = unpack(P.cos), tiles = [Math.ceil(P.H / P.stride), Math.ceil(P.W / P.stride)], gap = 3;
    var px = Math.max(1, Math.floor((560 - (tiles[1] - 1) * gap) / (tiles[1] * P.W)));
    var tw = P.W * px + gap, th = P.H * px + gap, tile = [0, 0];
    canvas.width = tiles[1] * tw - gap;
    canvas.height = tiles[0] * th - gap;
    canvas.setAttribute("data-cell", String(px));
    canvas.setAttribute("data-gap", String(gap));
    function value(ti, tj, r, c) { return cos[(ti * tiles[1] + tj) * P.H * P.W + r * P.W + c]; }
    var image = document.createElement("canvas");  // every small map, drawn once
    image.width = canvas.width;
    image.height = canvas.height;
    var ictx = image.getContext("2d");
    ictx.fillStyle = "#fff";
    ictx.fillRect(0, 0, image.width, image.height);
    for (var ti = 0; ti < tiles[0]; ti++) {
      for (var tj = 0; tj < tiles[1]; tj++) {
        for (var r = 0; r < P.H; r++) {
          for (var c = 0; c < P.W; c++) {
            ictx.fillStyle = rgb(pick(x.seq, (value(ti, tj, r, c) + 1) / 2));
            ictx.fillRect(tj * tw + c * px, ti * th + r * px, px, px);
          }
        }
      }
    }
    function draw() {
      var ctx = prepare(canvas), row = Math.floor(x.sel / P.W), col = x.sel % P.W;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(image, 0, 0, canvas.w0, canvas.h0);
      tile = [Math.min(tiles[0] - 1, Math.round(row / P.stride)), Math.min(tiles[1] - 1, Math.round(col / P.stride))];
      ctx.strokeStyle = "#c0392b";
      ctx.lineWidth = 2;
      ctx.strokeRect(tile[1] * tw - 1.5, tile[0] * th - 1.5, P.W * px + 3, P.H * px + 3);
    }
    function text(ti, tj, r, c) {
      return "patch (row " + (ti * P.stride + 1) + ", column " + (tj * P.stride + 1) + ") against patch (row " +
        (r + 1) + ", column " + (c + 1) + "): cosine similarity " + value(ti, tj, r, c).toFixed(3);
    }
    function at(ev) {
      var xy = pointer(canvas, ev), tj = Math.floor(xy[0] / tw), ti = Math.floor(xy[1] / th);
      var c = Math.floor((xy[0] - tj * tw) / px), r = Math.floor((xy[1] - ti * th) / px);
      if (ti < 0 || tj < 0 || ti >= tiles[0] || tj >= tiles[1] || r < 0 || c < 0 || r >= P.H || c >= P.W) return null;
      return [ti, tj, r, c];
    }
    canvas.addEventListener("mousemove", function (ev) { var h = at(ev); if (h) readout.textContent = text(h[0], h[1], h[2], h[3]); });
    canvas.addEventListener("click", function (ev) { var h = at(ev); if (h) x.select(h[0] * P.stride * P.W + h[1] * P.stride); });
    canvas.addEventListener("keydown", function (ev) {
      var d = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[ev.key];
      if (!d) return;
      ev.preventDefault();
      var t = [clamp(tile[0] + d[0], 0, tiles[0] - 1), clamp(tile[1] + d[1], 0, tiles[1] - 1)];
      x.select(t[0] * P.stride * P.W + t[1] * P.stride);
      readout.textContent = text(t[0], t[1], t[0] * P.stride, t[1] * P.stride);
    });
    return draw;
  }

  function Explorer(root) {
    var x = context(root), go = x.el("goto");
    x.views = [mapView(x), curveView(x), trajectoryView(x), patchView(x)].filter(Boolean);
    go.addEventListener("change", function () { x.select(go.value); });
    go.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); x.select(go.value); } });
    root.hidden = false;
    x.select(0);
    extensionView(x);
    root.setAttribute("data-ready", "true");
  }

  var roots = document.querySelectorAll("[data-posemb-explorer]");
  for (var i = 0; i < roots.length; i++) Explorer(roots[i]);
})();
