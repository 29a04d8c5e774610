// Small progressive enhancements; every page works without this file.
document.addEventListener("click", (ev) => {
  const t = ev.target.closest("[data-toggle-nav]");
  if (t) { document.getElementById("sidenav")?.classList.toggle("open"); }
  const back = ev.target.closest("[data-back]");
  if (back) { ev.preventDefault(); history.back(); }
  const confirmEl = ev.target.closest("[data-confirm]");
  if (confirmEl && !window.confirm(confirmEl.dataset.confirm)) { ev.preventDefault(); }
});
