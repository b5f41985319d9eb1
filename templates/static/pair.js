// Pair page: draws the selected map over the image, client-side, from the inlined data.
// No network: everything it needs is in this page and in ../media/.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("pair-data").textContent);
  var lut = bytes(data.lut);
  var FULL = [0, 0, 1, 1];
  var KEY = "groundreport.method";
  var LEVEL = { words: "word", phrases: "phrase" };
  // user: the method the reader picked (kept across pairs); method: the one shown now
  var state = { user: null, method: null, why: "", kind: "caption", index: -1 };
  var heat = document.getElementById("heat");
  var boxes = document.getElementById("boxes");
  var stage = document.getElementById("stage");
  var showing = document.getElementById("showing");
  var panelHeat = document.querySelector("#panel-heat canvas");
  var panelOver = document.querySelector("#panel-over canvas");
  var radios = Array.prototype.slice.call(document.querySelectorAll("#methods input"));
  var SVG = "http://www.w3.org/2000/svg";

  function bytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function smallCanvas(b64, fade, grid) {
    // fade: low values turn transparent so the photo shows through where the map is cold
    var v = bytes(b64), c = document.createElement("canvas"), gh = grid[0], gw = grid[1];
    c.width = gw; c.height = gh;
    var ctx = c.getContext("2d"), img = ctx.createImageData(gw, gh);
    for (var i = 0; i < v.length; i++) {
      img.data[4 * i] = lut[3 * v[i]]; img.data[4 * i + 1] = lut[3 * v[i] + 1];
      img.data[4 * i + 2] = lut[3 * v[i] + 2]; img.data[4 * i + 3] = fade ? 40 + Math.round(0.84 * v[i]) : 255;
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }
  function constant(b64) {
    // a map with one value everywhere (uniform attention: the map says nothing, not "low")
    var v = bytes(b64);
    for (var i = 1; i < v.length; i++) if (v[i] !== v[0]) return false;
    return true;
  }
  var FLAT_NOTE = " (flat: the same weight on every patch, no information)";
  function paint(target, b64, size, fade, grid, region) {
    // CSS stretches the canvas over the image; the map is smooth, so 256 px is plenty. The map
    // covers its region (fractions of the image: a centre crop covers less than all of it);
    // the rest the model never saw, drawn as the report's overlays draw it (overlays.py)
    grid = grid || data.grid; region = region || data.region || FULL;
    target.width = size; target.height = size;
    var ctx = target.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    var x = region[0] * size, y = region[1] * size, w = (region[2] - region[0]) * size, h = (region[3] - region[1]) * size;
    ctx.clearRect(0, 0, size, size);
    if (region.join() !== FULL.join()) {
      var u = data.unseen || { grey: 96, dim: 0.35 };
      ctx.fillStyle = fade ? "rgba(0,0,0," + (1 - u.dim) + ")" : "rgb(" + [u.grey, u.grey, u.grey].join() + ")";
      ctx.fillRect(0, 0, size, size);
      ctx.clearRect(x, y, w, h);
    }
    ctx.drawImage(smallCanvas(b64, fade, grid), x, y, w, h);
  }

  function has(name, kind) {
    var m = data.maps[name];
    return !!m && (kind === "caption" || !!m[kind]);
  }
  function isFlatIn(flat, name, kind, index) {
    var f = (flat || {})[name];
    if (!f) return false;
    return kind === "caption" ? !!f.caption : !!(f[kind] || [])[index];
  }
  function isFlat(name, kind, index) { return isFlatIn(data.flat, name, kind, index); }
  function label(name) { return data.labels[name] || name; }
  function chipText() {
    if (state.kind === "caption") return "whole caption";
    if (state.kind === "words") return "word \u201c" + data.words[state.index].text + "\u201d";
    return "phrase \u201c" + data.phrases[state.index].text + "\u201d";
  }

  // --- which method: the reader's pick while it has a map at this level, else the best that has one
  function choose() {
    var kind = state.kind;
    if (state.user && has(state.user, kind)) {
      state.method = state.user; state.why = "your choice";
      return;
    }
    var best = data.order[kind].filter(function (n) { return has(n, kind); })[0];
    state.method = best;
    state.why = (data.scored ? "the best-scoring method" : "first in the default order") +
      (kind === "caption" ? "" : " with " + LEVEL[kind] + " maps") +
      (state.user ? " (" + label(state.user) + " has none)" : "");
  }
  function readChoice() {
    var m = /(?:^#|&)method=([^&]*)/.exec(location.hash), name = m ? decodeURIComponent(m[1]) : null;
    if (!m) { try { name = localStorage.getItem(KEY); } catch (e) { name = null; } }
    return name && data.maps[name] ? name : null;
  }
  function keepChoice() {
    // the hash carries the pick along prev/next (also from file://); local storage across visits
    var h = state.user ? "#method=" + encodeURIComponent(state.user) : "";
    try { if (state.user) localStorage.setItem(KEY, state.user); else localStorage.removeItem(KEY); } catch (e) { /* storage off */ }
    try { history.replaceState(null, "", h || location.pathname + location.search); } catch (e) { /* file:// quirks */ }
    links();
  }
  function links() {
    ["prev", "next"].forEach(function (id) {
      var a = document.getElementById(id);
      if (a) a.href = a.getAttribute("href").split("#")[0] + (state.user ? "#method=" + encodeURIComponent(state.user) : "");
    });
  }
  function pick(name) {
    state.user = name;
    keepChoice();
    update();
  }

  // --- drawing
  function rect(svg, b, cls) {
    var r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", b[0]); r.setAttribute("y", b[1]);
    r.setAttribute("width", b[2] - b[0]); r.setAttribute("height", b[3] - b[1]);
    r.setAttribute("class", cls);
    svg.appendChild(r);
  }
  function scored(phrases, kind, index) {
    // what selection kind/index of a model's pair is scored against: a phrase, or a content
    // word of a boxed phrase (index: that model's own word index)
    if (kind === "phrases") return phrases[index];
    if (kind !== "words") return null;
    for (var i = 0; i < phrases.length; i++) {
      var ws = phrases[i].words || [];
      for (var j = 0; j < ws.length; j++) {
        if (ws[j].index === index) return { boxes: phrases[i].boxes, scores: ws[j].scores };
      }
    }
    return null;
  }
  function marks(svg, el, phrases, kind, target, s) {
    // ground-truth boxes of the selection (every phrase's for the caption); for a scored map
    // (s: its pointing record) the box around its strongest region and its peak, hit or miss
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    (kind === "caption" ? phrases : (target ? [target] : [])).forEach(function (ph) {
      (ph.boxes || []).forEach(function (b) { rect(svg, b, "gt"); });
    });
    if (!s) return;
    rect(svg, s.box, "pred");
    var c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", s.point[0] + 0.5); c.setAttribute("cy", s.point[1] + 0.5);
    c.setAttribute("r", 7 * data.width / Math.max(el.clientWidth, 1));  // 7 screen px at any zoom
    c.setAttribute("class", s.pointing ? "peak hit" : "peak miss");
    svg.appendChild(c);
  }
  function drawBoxes() {
    if (!document.getElementById("showboxes").checked) { marks(boxes, stage, [], "none", null, null); return; }
    var target = scored(data.phrases, state.kind, state.index);
    // a flat map has no peak and no strongest region: nothing to draw
    var s = target && !isFlat(state.method, state.kind, state.index) ? (target.scores || {})[state.method] : null;
    marks(boxes, stage, data.phrases, state.kind, target, s);
    drawColumns();
  }
  function reveal(b64, flat) {
    // a zoomed frame (very wide or tall image) scrolls to the map's peak, or to the phrase's box
    var fx, fy;
    if (!flat) {
      var v = bytes(b64), best = 0, gh = data.grid[0], gw = data.grid[1], r = data.region || FULL;
      for (var i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
      fx = r[0] + (best % gw + 0.5) / gw * (r[2] - r[0]); fy = r[1] + (Math.floor(best / gw) + 0.5) / gh * (r[3] - r[1]);
    } else if (state.kind === "phrases" && (data.phrases[state.index].boxes || []).length) {
      var b = data.phrases[state.index].boxes[0];
      fx = (b[0] + b[2]) / 2 / data.width; fy = (b[1] + b[3]) / 2 / data.height;
    } else return;
    document.querySelectorAll(".frame:not(.colframe)").forEach(function (f) {
      var st = f.firstElementChild;
      f.scrollLeft = fx * st.clientWidth - f.clientWidth / 2;
      f.scrollTop = fy * st.clientHeight - f.clientHeight / 2;
    });
  }
  function update() {
    choose();
    var name = state.method, kind = state.kind, m = data.maps[name];
    var b64 = kind === "caption" ? m.caption : m[kind][state.index];
    var flat = isFlat(name, kind, state.index);
    radios.forEach(function (r) {
      r.checked = r.value === name;
      r.disabled = !has(r.value, kind);
      r.parentNode.classList.toggle("off", r.disabled);
      r.parentNode.title = r.disabled ? "no " + LEVEL[kind] + " maps" : r.parentNode.dataset.title;
      r.parentNode.querySelector(".flathere").hidden = !isFlat(r.value, kind, state.index);
      var num = r.parentNode.querySelector(".num");
      if (num) num.textContent = num.dataset[kind === "words" ? "words" : "phrases"] || "";
    });
    document.getElementById("auto").hidden = !state.user;
    showing.textContent = "showing " + label(name) + ": " + state.why + " \u00b7 " + chipText();
    document.getElementById("panel-what").textContent = label(name) + " \u00b7 " + chipText() + (flat ? " (flat)" : "");
    [heat, panelHeat, panelOver].forEach(function (c) { c.hidden = flat; });
    document.querySelectorAll(".flatnote").forEach(function (p) { p.hidden = !flat; });
    if (!flat) {
      paint(heat, b64, 256, true);
      paint(panelHeat, b64, 256, false);
      paint(panelOver, b64, 256, false);
    }
    document.querySelectorAll("#phrase-table tbody tr").forEach(function (tr) {
      tr.classList.toggle("current", tr.dataset.method === name);
    });
    document.querySelectorAll("#phrase-table th.ph").forEach(function (th, i) {
      th.classList.toggle("current", kind === "phrases" && i === state.index);
    });
    drawBoxes();
    drawFaith();
    reveal(b64, flat);
  }
  // --- models side by side: every model's map of this image and caption for the selection
  // and method (render/site.py: _column); this page's model first, from this page's own data
  var columns = data.columns ? [{ id: data.model.id, pair: data.model.pair, maps: data.maps, flat: data.flat,
    grid: data.grid, region: data.region, phrases: data.phrases, word_of: null, reads: {}, missing: {},
    unknown: data.words.map(function (w, i) { return w.unknown ? i : -1; }) }].concat(data.columns) : [];
  var colEls = Array.prototype.slice.call(document.querySelectorAll("#compare .col"));
  function quote(t) { return "\u201c" + t + "\u201d"; }
  function columnIndex(col) {
    // the selection in this model's own terms: a word by its span (word_of), a phrase by index
    if (state.kind !== "words" || !col.word_of) return state.index;
    var k = col.word_of[state.index];
    return k === null || k === undefined ? null : k;
  }
  function columnGap(col, name, kind, index) {
    // why this model has no map of the selection, in words; "" when it has one
    var m = col.maps[name], lb = label(name);
    if (!m) return col.id + " has no " + lb + " map: " + (col.missing[name] || "not computed in this report");
    if (kind !== "caption" && !m[kind]) return col.id + " has no " + LEVEL[kind] + " maps from " + lb;
    if (kind !== "words" || index !== null) return "";
    var word = data.words[state.index].text, reads = col.reads[state.index] || [];
    return col.id + " has no word " + quote(word) + (reads.length
      ? ": its tokenizer reads " + reads.map(quote).join(" ") + " there"
      : col.truncated ? ": the caption was cut at its text limit before it" : "");
  }
  function drawColumns() {
    if (!columns.length || !state.method) return;
    var showMarks = document.getElementById("showboxes").checked;
    columns.forEach(function (col, c) {
      var el = colEls[c], canvas = el.querySelector("canvas"), svg = el.querySelector("svg");
      var note = el.querySelector(".colnote"), verdict = el.querySelector(".colverdict");
      var name = state.method, kind = state.kind, index = columnIndex(col);
      var gap = columnGap(col, name, kind, index);
      var flat = !gap && isFlatIn(col.flat, name, kind, index);
      var b64 = gap ? "" : kind === "caption" ? col.maps[name].caption : col.maps[name][kind][index];
      canvas.hidden = !!gap || flat;
      // the map drawn, for tests and for anyone reading the page's DOM
      canvas.dataset.method = name; canvas.dataset.kind = kind;
      canvas.dataset.index = index === null ? "" : index; canvas.dataset.map = b64;
      if (b64 && !flat) paint(canvas, b64, 256, true, col.grid, col.region);
      var unknown = kind === "words" && index !== null && col.unknown.indexOf(index) >= 0;
      note.textContent = gap || (flat ? "flat: this method found no evidence here"
        : unknown ? "unknown to " + col.id + "'s tokenizer: this map is not about the word" : "");
      note.hidden = !note.textContent;
      note.classList.toggle("gap", !!gap);
      el.classList.toggle("nomap", !!gap);
      var target = gap ? null : scored(col.phrases, kind, index);
      var s = target && !flat ? (target.scores || {})[name] : null;
      marks(svg, el.querySelector(".stage"), showMarks ? data.phrases : [], showMarks ? kind : "none",
        showMarks ? target : null, showMarks ? s : null);
      verdict.className = "colverdict" + (s ? (s.pointing ? " hit" : " miss") : "");
      verdict.textContent = s ? "pointing: " + (s.pointing ? "hit" : "miss") + " (the peak " +
        (s.pointing ? "inside" : "outside") + " the box)" : target && flat ? "pointing: miss (a flat map)" : "";
      var a = el.querySelector(".collink");
      if (a) a.href = col.pair + ".html" + (col.maps[name] ? "#method=" + encodeURIComponent(name) : "");
    });
    document.getElementById("compare-what").textContent = label(state.method) + " \u00b7 " + chipText();
  }

  // --- the selected map's deletion and insertion curves (render/faithfulness.py: pair_view)
  var faith = data.checks;
  function plot(svg, xs, ys, base) {
    // 240 x 152 view box: y from min(0, values) to max(1, values), so nothing is clipped
    var L = 36, R = 232, T = 10, B = 122;
    var vals = ys.concat(base || []).filter(function (v) { return v !== null; });
    var lo = Math.min(0, Math.min.apply(null, vals)), hi = Math.max(1, Math.max.apply(null, vals));
    function X(x) { return (L + x * (R - L)).toFixed(1); }
    function Y(y) { return (B - (y - lo) / (hi - lo) * (B - T)).toFixed(1); }
    function el(tag, attrs, text) {
      var e = document.createElementNS(SVG, tag);
      for (var k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    }
    function line(values, cls) {
      var pts = [];
      values.forEach(function (v, i) { if (v !== null) pts.push(X(xs[i]) + "," + Y(v)); });
      el("polyline", { points: pts.join(" "), "class": cls });
    }
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    [0, 1].forEach(function (v) { el("line", { x1: L, x2: R, y1: Y(v), y2: Y(v), "class": "ref" }); });
    el("line", { x1: L, x2: L, y1: T, y2: B, "class": "axis" });
    el("line", { x1: L, x2: R, y1: B, y2: B, "class": "axis" });
    var placed = [];
    [lo, hi, 1, 0].forEach(function (v) {
      if (placed.some(function (y) { return Math.abs(Y(v) - y) < 13; })) return;  // labels would overlap
      placed.push(+Y(v));
      el("text", { x: L - 4, y: +Y(v) + 4, "text-anchor": "end" }, Math.abs(v) >= 10 ? v.toFixed(0) : +v.toFixed(1));
    });
    el("text", { x: L, y: B + 14, "text-anchor": "middle" }, "0");
    el("text", { x: R, y: B + 14, "text-anchor": "middle" }, "1");
    el("text", { x: (L + R) / 2, y: B + 26, "text-anchor": "middle" }, "fraction of patches");
    if (base) line(base, "base");
    line(ys, "map");
  }
  function auc(v) { return v === null || v === undefined ? "\u2013" : v.toFixed(3); }
  function drawFaith() {
    if (!faith) return;
    var rec = faith.methods[state.method], base = faith.methods[faith.baseline];
    // target 0 is the caption, 1.. the phrases in the entry's order; words have no record
    var t = state.kind === "caption" ? 0 : state.kind === "phrases" ? state.index + 1 : -1;
    var why = t < 0 ? "no faithfulness record for word maps"
      : !rec ? "no faithfulness record for " + label(state.method)
      : rec.deletion[t].every(function (v) { return v === null; })
        ? "the full image scores at or below 0 for this target, so its curves cannot be normalised" : "";
    var none = document.getElementById("faith-none");
    none.textContent = why; none.hidden = !why;
    document.getElementById("faith-curves").hidden = !!why;
    document.getElementById("faith-about").hidden = !!why;
    if (why) return;
    ["deletion", "insertion"].forEach(function (kind) {
      plot(document.getElementById("faith-" + kind), faith.fractions, rec[kind][t], base ? base[kind][t] : null);
      document.getElementById("faith-" + kind + "-auc").textContent = auc(rec[kind + "_auc"][t]);
      document.getElementById("faith-" + kind + "-base").textContent = base ? auc(base[kind + "_auc"][t]) : "\u2013";
    });
    document.getElementById("faith-itm").hidden = faith.itm.indexOf(state.method) < 0;
  }
  function select(kind, index) {
    state.kind = kind; state.index = index;
    document.querySelectorAll(".chip").forEach(function (c) {
      c.classList.toggle("active", c.dataset.kind === kind && +c.dataset.index === index);
    });
    update();
  }

  document.querySelectorAll(".chip[data-kind]").forEach(function (c) {
    c.addEventListener("click", function () {
      var same = c.classList.contains("active") && c.dataset.kind !== "caption";
      select(same ? "caption" : c.dataset.kind, same ? -1 : +c.dataset.index);
    });
  });
  radios.forEach(function (r) {
    r.parentNode.dataset.title = r.parentNode.title;
    r.addEventListener("change", function () { pick(r.value); });
  });
  document.getElementById("auto").addEventListener("click", function () { pick(null); });
  document.getElementById("opacity").addEventListener("input", function (e) {
    heat.style.opacity = e.target.value / 100;
  });
  document.getElementById("showboxes").addEventListener("change", drawBoxes);
  window.addEventListener("resize", drawBoxes);

  // per-layer thumbnails: one row per encoder that has raw attention
  var rows = document.getElementById("layer-rows"), headRow = document.getElementById("head-row");
  var encoders = [["attention", "Image encoder: CLS \u2192 patches"], ["mm-attention", "Multimodal: text \u2192 image patches"]];
  encoders.forEach(function (e) {
    var m = data.maps[e[0]];
    if (!m || !m.layers) return;
    var row = document.createElement("div");
    row.className = "layer-row";
    var h = document.createElement("p"); h.className = "label"; h.textContent = e[1];
    row.appendChild(h);
    var strip = document.createElement("div"); strip.className = "strip";
    m.layers.forEach(function (b64, l) {
      var fig = document.createElement("button");
      fig.type = "button"; fig.className = "thumb";
      var flat = constant(b64);
      fig.title = e[1] + ", layer " + (l + 1) + (flat ? FLAT_NOTE : "") + ": show heads";
      var c = document.createElement("canvas");
      c.setAttribute("role", "img");
      c.setAttribute("aria-label", e[1] + " layer " + (l + 1));
      paint(c, b64, 64, false, data.grid, FULL);
      var cap = document.createElement("span"); cap.textContent = "L" + (l + 1) + (flat ? " flat" : "");
      fig.appendChild(c); fig.appendChild(cap);
      fig.addEventListener("click", function () { showHeads(e[1], l, m.heads[l]); });
      strip.appendChild(fig);
    });
    row.appendChild(strip);
    rows.appendChild(row);
  });
  function showHeads(name, l, heads) {
    headRow.hidden = false;
    headRow.textContent = "";
    var p = document.createElement("p"); p.className = "label";
    p.textContent = name + ", layer " + (l + 1) + ": each head";
    headRow.appendChild(p);
    var strip = document.createElement("div"); strip.className = "strip";
    heads.forEach(function (b64, h) {
      var fig = document.createElement("figure"); fig.className = "thumb";
      var c = document.createElement("canvas");
      c.setAttribute("role", "img"); c.setAttribute("aria-label", name + " layer " + (l + 1) + " head " + (h + 1));
      paint(c, b64, 64, false, data.grid, FULL);
      var flat = constant(b64);
      var cap = document.createElement("figcaption"); cap.textContent = "H" + (h + 1) + (flat ? " flat" : "");
      if (flat) fig.title = name + " layer " + (l + 1) + " head " + (h + 1) + FLAT_NOTE;
      fig.appendChild(c); fig.appendChild(cap); strip.appendChild(fig);
    });
    headRow.appendChild(strip);
  }

  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT" && e.target.type !== "radio" && e.target.type !== "checkbox") return;
    var link;
    if (e.key === "ArrowLeft" && (link = document.getElementById("prev"))) location.href = link.href;
    else if (e.key === "ArrowRight" && (link = document.getElementById("next"))) location.href = link.href;
    else if (e.key === "Escape") location.href = "../index.html";
    else if (e.key === "m") {
      // cycle among the methods that have a map for the current selection
      var names = data.order[state.kind].filter(function (n) { return has(n, state.kind); });
      pick(names[(names.indexOf(state.method) + 1) % names.length]);
    } else if (e.key === "w") {
      var words = Array.prototype.slice.call(document.querySelectorAll('.chip[data-kind="words"]:not([disabled])'));
      if (!words.length) return;
      var cur = state.kind === "words" ? words.findIndex(function (c) { return +c.dataset.index === state.index; }) : -1;
      var nxt = words[(cur + 1) % words.length];
      select("words", +nxt.dataset.index);
    } else return;
    e.preventDefault();
  });

  if (!data.order.caption.length) return;  // a report without maps: the page shows the image only
  state.user = readChoice();
  links();
  heat.style.opacity = 0.85;
  select("caption", -1);
})();
