// Gallery: filter by caption text, sort by score, reveal in pages so 1,000+ pairs stay fast;
// cards show the best method's caption map or, toggled off, the plain image.
(function () {
  "use strict";
  var grid = document.getElementById("grid");
  var cards = Array.prototype.slice.call(grid.children);
  var pageSize = +grid.dataset.pageSize || 48;
  var shown = pageSize;
  var filter = document.getElementById("filter"), sort = document.getElementById("sort");
  var more = document.getElementById("more"), count = document.getElementById("count");

  function apply() {
    var q = filter.value.trim().toLowerCase();
    var key = sort.value;
    var sorted = cards.slice().sort(function (a, b) {
      if (key === "score-desc") return b.dataset.score - a.dataset.score;
      if (key === "score-asc") return a.dataset.score - b.dataset.score;
      return a.dataset.order - b.dataset.order;
    });
    var matching = 0;
    sorted.forEach(function (c) {
      var ok = !q || c.dataset.caption.indexOf(q) !== -1;
      if (ok) matching++;
      c.hidden = !ok || matching > shown;
      grid.appendChild(c);
    });
    count.textContent = Math.min(matching, shown) + " of " + matching + " shown" + (q ? " (filtered from " + cards.length + ")" : "");
    more.hidden = matching <= shown;
  }
  filter.addEventListener("input", function () { shown = pageSize; apply(); });
  sort.addEventListener("change", apply);
  more.addEventListener("click", function () { shown += pageSize; apply(); });
  var maps = document.getElementById("maps");
  if (maps) maps.addEventListener("change", function () {
    grid.querySelectorAll("img").forEach(function (img) { img.src = maps.checked ? img.dataset.map : img.dataset.plain; });
  });
  apply();
})();
