// Small progressive enhancements; every page works without this file.
document.addEventListener("click", (ev) => {
  const nav = document.getElementById("sidenav");
  const t = ev.target.closest("[data-toggle-nav]");
  if (t) {
    const open = nav?.classList.toggle("open");
    t.setAttribute("aria-expanded", open ? "true" : "false");
  } else if (nav?.classList.contains("open") && !ev.target.closest("#sidenav")) {
    // a tap outside the phone menu closes it
    nav.classList.remove("open");
    document.querySelector("[data-toggle-nav]")?.setAttribute("aria-expanded", "false");
  }
  const back = ev.target.closest("[data-back]");
  if (back) { ev.preventDefault(); history.back(); }
  const confirmEl = ev.target.closest("[data-confirm]");
  if (confirmEl && !window.confirm(confirmEl.dataset.confirm)) { ev.preventDefault(); }
});
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") { document.getElementById("sidenav")?.classList.remove("open"); }
});
