// Gallery of any size. Cards come in data files (data/cards-NNNN.js, in sample order) loaded
// with <script> tags when a page of the gallery needs them (file:// allows no fetch). Search,
// sort and the hit/miss filter run over data/search.js: one column per field for all pairs.
// The state lives in the URL hash. Captions are set as text, never parsed as HTML.
(function () {
  "use strict";
  var grid = document.getElementById("grid");
  var total = +grid.dataset.total, perView = +grid.dataset.perView || 48, perFile = +grid.dataset.perFile || 250;
  var filter = document.getElementById("filter"), sort = document.getElementById("sort");
  var hitMethod = document.getElementById("hitmethod"), hitFilter = document.getElementById("hitfilter");
  var maps = document.getElementById("maps"), count = document.getElementById("count");
  var pageInput = document.querySelector(".pages .page");
  var index = null, lower = null;            // data/search.js, and its captions in lower case
  var files = {}, pending = {}, failed = null; // card files: number -> cards, loading, a load that failed
  var cached = {key: null, list: null};
  var bestMethod = hitMethod ? hitMethod.options[0].value : "";  // the best-ranked method with phrase scores
  var state = readHash();

  function defaults() {
    return {q: "", sort: "order", method: bestMethod, filter: "all", page: 1, maps: true};
  }
  function hasOption(select, value) {
    return !!select && Array.prototype.some.call(select.options, function (o) { return o.value === value; });
  }
  function readHash() {
    var st = defaults();
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("="), k, v;
      if (i < 0) return;
      try { k = decodeURIComponent(kv.slice(0, i)); v = decodeURIComponent(kv.slice(i + 1)); } catch (e) { return; }
      if (k === "q") st.q = v;
      else if (k === "sort" && hasOption(sort, v)) st.sort = v;
      else if (k === "method" && hasOption(hitMethod, v)) st.method = v;
      else if (k === "filter" && hasOption(hitFilter, v)) st.filter = v;
      else if (k === "page") st.page = Math.max(1, parseInt(v, 10) || 1);
      else if (k === "maps") st.maps = v !== "0";
    });
    return st;
  }
  function writeHash() {
    var d = defaults(), parts = [];
    ["q", "sort", "method", "filter", "page", "maps"].forEach(function (k) {
      if (state[k] !== d[k]) parts.push(k + "=" + encodeURIComponent(k === "maps" ? (state.maps ? 1 : 0) : state[k]));
    });
    var url = location.href.split("#")[0] + (parts.length ? "#" + parts.join("&") : "");
    if (url !== location.href) history.replaceState(null, "", url);
  }
  function showState() {
    filter.value = state.q;
    sort.value = state.sort;
    if (hitMethod) hitMethod.value = state.method;
    if (hitFilter) hitFilter.value = state.filter;
    if (maps) maps.checked = state.maps;
  }

  // the pairs to show, in order: sample indices
  function view() {
    var key = [state.q, state.sort, state.method, state.filter].join("\n");
    if (cached.key === key) return cached.list;
    var terms = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    var pt = index.pointing[state.method], sc = index.scores, list = [];
    for (var i = 0; i < index.total; i++) {
      var ok = true;
      for (var t = 0; ok && t < terms.length; t++) ok = lower[i].indexOf(terms[t]) !== -1;
      if (ok && pt && state.filter !== "all")
        ok = pt.scored[i] > 0 && (pt.hits[i] === pt.scored[i]) === (state.filter === "hit");
      if (ok) list.push(i);
    }
    if (state.sort === "score-desc") list.sort(function (a, b) { return sc[b] - sc[a] || a - b; });
    else if (state.sort === "score-asc") list.sort(function (a, b) { return sc[a] - sc[b] || a - b; });
    else if (pt && (state.sort === "hits-desc" || state.sort === "hits-asc")) {
      var dir = state.sort === "hits-desc" ? 1 : -1;
      var frac = function (i) { return pt.scored[i] ? pt.hits[i] / pt.scored[i] : -1; };
      list.sort(function (a, b) {
        var fa = frac(a), fb = frac(b);
        if ((fa < 0) !== (fb < 0)) return fa < 0 ? 1 : -1;  // pairs with no boxed phrase last
        return dir * (fb - fa) || dir * (sc[b] - sc[a]) || a - b;
      });
    }
    cached = {key: key, list: list};
    return list;
  }

  function loadScript(src, onload, onerror) {
    var s = document.createElement("script");
    s.src = src;
    s.onload = onload;
    s.onerror = onerror;
    document.head.appendChild(s);
  }
  function cardFile(f) {
    if (files[f] || pending[f]) return;
    var src = "data/cards-" + String(f).padStart(4, "0") + ".js";
    pending[f] = true;
    var fail = function () { delete pending[f]; failed = src; draw(); };
    loadScript(src, function () { if (!files[f]) fail(); }, fail);
  }
  window.GR_PAGE = function (f, cards) { files[f] = cards; delete pending[f]; draw(); };
  window.GR_SEARCH = function (data) {
    index = data;
    lower = data.captions.map(function (c) { return c.toLowerCase(); });
    draw();
  };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function card(i) {
    var c = files[Math.floor(i / perFile)][i % perFile];
    var label = index.labels[c.method] || c.method;
    var li = el("li", "card"), a = el("a"), pic = el("span", "pic"), img = el("img");
    li.dataset.order = i;
    li.dataset.score = index.scores[i];
    a.href = "pairs/" + encodeURIComponent(c.id) + ".html";
    img.loading = "lazy";
    img.dataset.map = "media/" + (c.map || c.thumb);
    img.dataset.plain = "media/" + c.thumb;
    img.src = state.maps ? img.dataset.map : img.dataset.plain;
    img.alt = "Image " + c.image_id + (c.map ? " under its " + label + " map" : "");
    img.width = 256;
    img.height = c.w >= c.h ? Math.round(256 * c.h / c.w) : 256;
    pic.appendChild(img);
    if (c.flat) pic.appendChild(el("span", "badge flat", "flat: no " + label + " evidence")).title = "this method found no evidence here";
    a.appendChild(pic);
    a.appendChild(el("span", "cap", index.captions[i]));
    var meta = el("span", "meta"), sep = function () { meta.appendChild(document.createTextNode(" \u00b7 ")); };
    meta.appendChild(document.createTextNode("score " + index.scores[i].toFixed(3)));
    if (c.flag) { meta.appendChild(document.createTextNode(" ")); meta.appendChild(el("span", "flag", c.flag)); }
    var pt = index.pointing[state.method];
    if (pt && pt.scored[i]) {
      sep();
      meta.appendChild(el("span", "hits " + (pt.hits[i] === pt.scored[i] ? "hit" : "miss"),
        pt.hits[i] + "/" + pt.scored[i] + " phrases hit")).title = (index.labels[state.method] || state.method) +
        ", pointing game: the map's peak lies inside a box for " + pt.hits[i] + " of " + pt.scored[i] + " boxed phrase(s)";
    } else if (c.phrases) { sep(); meta.appendChild(document.createTextNode(c.phrases + " phrase(s)")); }
    if (c.warnings.length) { sep(); meta.appendChild(el("span", "warn", c.warnings.length + " warning(s)")).title = c.warnings.join("; "); }
    a.appendChild(meta);
    li.appendChild(a);
    return li;
  }

  function pager(n, pages) {
    var first = n ? (state.page - 1) * perView + 1 : 0, last = Math.min(n, state.page * perView);
    var filtered = n !== index.total ? " matching (of " + index.total.toLocaleString("en") + ")" : " pairs";
    count.textContent = n ? first.toLocaleString("en") + "\u2013" + last.toLocaleString("en") + " of " + n.toLocaleString("en") + filtered
                          : "no pair matches (of " + index.total.toLocaleString("en") + ")";
    pageInput.max = pages;
    pageInput.value = state.page;
    document.querySelectorAll(".pages .of").forEach(function (e) { e.textContent = "of " + pages.toLocaleString("en"); });
    document.querySelectorAll(".pages .prev").forEach(function (b) { b.disabled = state.page <= 1; });
    document.querySelectorAll(".pages .next").forEach(function (b) { b.disabled = state.page >= pages; });
  }

  function draw() {
    if (failed) { count.textContent = "could not load " + failed + ": render the site again"; grid.removeAttribute("aria-busy"); return; }
    if (!index) return;  // GR_SEARCH draws
    var list = view(), pages = Math.max(1, Math.ceil(list.length / perView));
    state.page = Math.min(state.page, pages);
    var shown = list.slice((state.page - 1) * perView, state.page * perView);
    writeHash();
    pager(list.length, pages);
    var need = shown.map(function (i) { return Math.floor(i / perFile); }).filter(function (f) { return !files[f]; });
    if (need.length) {  // GR_PAGE draws again as each file arrives
      grid.setAttribute("aria-busy", "true");
      need.forEach(cardFile);
      return;
    }
    var frag = document.createDocumentFragment();
    shown.forEach(function (i) { frag.appendChild(card(i)); });
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    grid.appendChild(frag);
    grid.removeAttribute("aria-busy");
    grid.dataset.shown = state.page + ":" + list.length;  // tests wait on this
  }

  function change(key, value) { state[key] = value; state.page = 1; draw(); }
  filter.addEventListener("input", function () { change("q", filter.value); });
  sort.addEventListener("change", function () { change("sort", sort.value); });
  if (hitMethod) hitMethod.addEventListener("change", function () { change("method", hitMethod.value); });
  if (hitFilter) hitFilter.addEventListener("change", function () { change("filter", hitFilter.value); });
  if (maps) maps.addEventListener("change", function () {
    state.maps = maps.checked;
    grid.querySelectorAll("img").forEach(function (img) { img.src = state.maps ? img.dataset.map : img.dataset.plain; });
    writeHash();
  });
  function turn(to, fromBottom) {
    state.page = Math.max(1, to);
    draw();
    if (fromBottom) document.querySelector(".gallery").scrollIntoView();
  }
  document.querySelectorAll(".pages").forEach(function (nav, k) {
    nav.querySelector(".prev").addEventListener("click", function () { turn(state.page - 1, k > 0); });
    nav.querySelector(".next").addEventListener("click", function () { turn(state.page + 1, k > 0); });
  });
  pageInput.addEventListener("change", function () { turn(parseInt(pageInput.value, 10) || 1, false); });
  window.addEventListener("hashchange", function () { state = readHash(); showState(); draw(); });

  showState();
  if (total) {
    loadScript("data/search.js", null, function () { failed = "data/search.js"; draw(); });
    cardFile(0);  // the first page in sample order, fetched alongside the index
  } else {
    count.textContent = "no pairs";
  }
})();
