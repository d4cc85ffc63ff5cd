// Millwatch live refresh. Every few seconds (the body's data-refresh) the page is fetched again
// from the same address and each section marked data-live whose content changed is swapped in
// place: no reload, no scroll jump, no request to another host. A section is left alone while
// it holds the keyboard focus, an open <details> or a form field being filled in. Without
// JavaScript the pages read the same; the footer's "refresh" link reloads them.
(function () {
  "use strict";
  var every = Math.max(1, Number(document.body.getAttribute("data-refresh")) || 5) * 1000;
  var status = document.getElementById("live");

  function busy(section) {
    var active = document.activeElement;
    if (active && active !== document.body && section.contains(active)) return true;
    if (section.querySelector("details[open]")) return true;
    var fields = section.querySelectorAll("input, textarea");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type !== "hidden" && f.type !== "submit" && f.value !== f.defaultValue) return true;
    }
    return false;
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var swapped = 0;
    document.querySelectorAll("[data-live]").forEach(function (section) {
      var name = section.getAttribute("data-live");
      var next = fresh.querySelector('[data-live="' + name + '"]');
      if (!next || busy(section) || next.innerHTML === section.innerHTML) return;
      section.replaceWith(document.importNode(next, true));
      swapped += 1;
    });
    if (status) {
      status.textContent = "live: checked " + new Date().toLocaleTimeString() +
        (swapped ? ", " + swapped + " section(s) updated" : ", nothing new");
    }
  }

  function tick() {
    if (document.hidden) return schedule();
    fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(swap)
      .catch(function (e) {
        if (status) status.textContent = "live refresh paused: " + e.message + "; retrying";
      })
      .then(schedule);
  }

  function schedule() {
    setTimeout(tick, every);
  }

  if (document.querySelector("[data-live]")) schedule();
})();
