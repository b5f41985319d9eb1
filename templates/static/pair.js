// Pair page: draws the selected map over the image, client-side, from the inlined data.
// No network: everything it needs is in this page and in ../media/.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("pair-data").textContent);
  var lut = bytes(data.lut);
  var gh = data.grid[0], gw = data.grid[1];
  var state = { method: null, kind: "caption", index: -1 };
  var heat = document.getElementById("heat");
  var boxes = document.getElementById("boxes");
  var showing = document.getElementById("showing");
  var SVG = "http://www.w3.org/2000/svg";

  function bytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function smallCanvas(b64, fade) {
    // fade: low values turn transparent so the photo shows through where the map is cold
    var v = bytes(b64), c = document.createElement("canvas");
    c.width = gw; c.height = gh;
    var ctx = c.getContext("2d"), img = ctx.createImageData(gw, gh);
    for (var i = 0; i < v.length; i++) {
      img.data[4 * i] = lut[3 * v[i]]; img.data[4 * i + 1] = lut[3 * v[i] + 1];
      img.data[4 * i + 2] = lut[3 * v[i] + 2]; img.data[4 * i + 3] = fade ? 40 + Math.round(0.84 * v[i]) : 255;
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }
  function paint(target, b64, size, fade) {
    target.width = size; target.height = Math.round(size * target.dataset.aspect || size);
    var ctx = target.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.clearRect(0, 0, target.width, target.height);
    ctx.drawImage(smallCanvas(b64, fade), 0, 0, target.width, target.height);
  }
  function methodLabel(name) {
    var el = document.querySelector('#methods input[value="' + name + '"]');
    return el ? el.parentNode.textContent.trim() : name;
  }
  function chipText() {
    if (state.kind === "caption") return "whole caption";
    if (state.kind === "words") return "word \u201c" + data.words[state.index].text + "\u201d";
    return "phrase \u201c" + data.phrases[state.index].text + "\u201d";
  }
  function rect(b, cls) {
    var r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", b[0]); r.setAttribute("y", b[1]);
    r.setAttribute("width", b[2] - b[0]); r.setAttribute("height", b[3] - b[1]);
    r.setAttribute("class", cls);
    boxes.appendChild(r);
  }
  function drawBoxes() {
    while (boxes.firstChild) boxes.removeChild(boxes.firstChild);
    if (!document.getElementById("showboxes").checked) return;
    var list = state.kind === "phrases" ? [data.phrases[state.index]] : (state.kind === "caption" ? data.phrases : []);
    list.forEach(function (ph) {
      (ph.boxes || []).forEach(function (b) { rect(b, "gt"); });
    });
    if (state.kind === "phrases") {
      var s = (data.phrases[state.index].scores || {})[state.method];
      if (s) {
        rect(s.box, "pred");
        var c = document.createElementNS(SVG, "circle");
        c.setAttribute("cx", s.point[0] + 0.5); c.setAttribute("cy", s.point[1] + 0.5);
        c.setAttribute("r", Math.max(data.width, data.height) / 90);
        c.setAttribute("class", s.pointing ? "peak hit" : "peak miss");
        boxes.appendChild(c);
      }
    }
  }
  function setMethod(name) {
    state.method = name;
    radios.forEach(function (r) { r.checked = r.value === name; });
  }
  function update() {
    var note = "";
    if (state.kind !== "caption" && !data.maps[state.method][state.kind]) {
      // the chosen method has no map at this level: switch to the first method that has one
      var alt = radios.map(function (r) { return r.value; }).filter(function (n) { return data.maps[n][state.kind]; })[0];
      if (alt) {
        note = " (switched from " + methodLabel(state.method) + ", which has no per-" +
               (state.kind === "words" ? "word" : "phrase") + " maps)";
        setMethod(alt);
      }
    }
    var m = data.maps[state.method], b64 = m.caption;
    if (state.kind !== "caption" && m[state.kind]) b64 = m[state.kind][state.index];
    paint(heat, b64, 256, true);
    showing.textContent = methodLabel(state.method) + " \u00b7 " + chipText() + note;
    var ov = data.overlays[state.method];
    if (ov) {
      document.getElementById("panel-heat").src = "../media/" + ov.heatmap;
      document.getElementById("panel-over").src = "../media/" + ov.overlay;
    }
    document.getElementById("panel-method").textContent = methodLabel(state.method);
    drawBoxes();
  }
  function select(kind, index) {
    state.kind = kind; state.index = index;
    document.querySelectorAll(".chip").forEach(function (c) {
      c.classList.toggle("active", c.dataset.kind === kind && +c.dataset.index === index);
    });
    update();
  }
  document.querySelectorAll(".chip").forEach(function (c) {
    c.addEventListener("click", function () {
      var same = c.classList.contains("active") && c.dataset.kind !== "caption";
      select(same ? "caption" : c.dataset.kind, same ? -1 : +c.dataset.index);
    });
  });
  var radios = Array.prototype.slice.call(document.querySelectorAll('#methods input'));
  radios.forEach(function (r) {
    r.addEventListener("change", function () { state.method = r.value; update(); });
  });
  document.getElementById("opacity").addEventListener("input", function (e) {
    heat.style.opacity = e.target.value / 100;
  });
  document.getElementById("showboxes").addEventListener("change", drawBoxes);

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
      fig.title = e[1] + ", layer " + (l + 1) + ": show heads";
      var c = document.createElement("canvas");
      c.setAttribute("role", "img");
      c.setAttribute("aria-label", e[1] + " layer " + (l + 1));
      paint(c, b64, 64);
      var cap = document.createElement("span"); cap.textContent = "L" + (l + 1);
      fig.appendChild(c); fig.appendChild(cap);
      fig.addEventListener("click", function () { showHeads(e[1], l, m.heads[l]); });
      strip.appendChild(fig);
    });
    row.appendChild(strip);
    rows.appendChild(row);
  });
  function showHeads(label, l, heads) {
    headRow.hidden = false;
    headRow.textContent = "";
    var p = document.createElement("p"); p.className = "label";
    p.textContent = label + ", layer " + (l + 1) + ": each head";
    headRow.appendChild(p);
    var strip = document.createElement("div"); strip.className = "strip";
    heads.forEach(function (b64, h) {
      var fig = document.createElement("figure"); fig.className = "thumb";
      var c = document.createElement("canvas");
      c.setAttribute("role", "img"); c.setAttribute("aria-label", label + " layer " + (l + 1) + " head " + (h + 1));
      paint(c, b64, 64);
      var cap = document.createElement("figcaption"); cap.textContent = "H" + (h + 1);
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
      var names = radios.map(function (r) { return r.value; }).filter(function (n) {
        return state.kind === "caption" || data.maps[n][state.kind];
      });
      setMethod(names[(names.indexOf(state.method) + 1) % names.length]); update();
    } else if (e.key === "w") {
      var words = Array.prototype.slice.call(document.querySelectorAll('.chip[data-kind="words"]'));
      if (!words.length) return;
      var cur = state.kind === "words" ? words.findIndex(function (c) { return +c.dataset.index === state.index; }) : -1;
      var nxt = words[(cur + 1) % words.length];
      select("words", +nxt.dataset.index);
    } else return;
    e.preventDefault();
  });

  state.method = radios.length ? radios[0].value : Object.keys(data.maps)[0];
  heat.style.opacity = 0.85;
  update();
})();
