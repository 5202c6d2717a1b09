// Live refresh for the status page: every 5 s while the tab is visible,
// fetch the page again and swap in its <main>. The page works without it.
(function () {
  var main = document.querySelector("main[data-refresh]");
  if (!main || !window.fetch || !window.DOMParser) return;
  function tick() {
    if (document.hidden) return;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var next = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        if (next) main.innerHTML = next.innerHTML;
      })
      .catch(function () {});
  }
  setInterval(tick, 5000);
})();
