// On phones actlab.css shows each table row as a card; every cell is then
// labelled with its column's header, copied here into data-label.
(function () {
  document.querySelectorAll("main table").forEach(function (table) {
    var names = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      Array.prototype.forEach.call(tr.children, function (td, i) {
        if (names[i]) td.setAttribute("data-label", names[i]);
      });
    });
  });
})();
