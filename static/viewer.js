// Citation viewer: fit the page to the width (or show it at full size), remembered across pages; bring the
// highlighted passage into view; arrow keys turn the pages. Previous/next are plain links.
(function () {
  "use strict";
  const frame = document.getElementById("page-frame");
  const toggle = document.getElementById("fit-width");
  if (!frame || !toggle) { return; }

  function fit(on) {
    frame.classList.toggle("fit", on);
    toggle.setAttribute("aria-pressed", String(on));
    try { localStorage.setItem("viewer-fit", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }

  let stored = null;
  try { stored = localStorage.getItem("viewer-fit"); } catch (e) { /* private mode */ }
  fit(stored !== "0");
  toggle.addEventListener("click", function () { fit(!frame.classList.contains("fit")); });

  const image = document.getElementById("page-image");
  function reveal() {
    const first = frame.querySelector(".highlight");
    if (first) { first.scrollIntoView({ block: "center", inline: "nearest" }); }
  }
  if (image.complete) { reveal(); } else { image.addEventListener("load", reveal); }

  document.addEventListener("keydown", function (event) {
    if (event.target.closest("input, textarea, select")) { return; }
    const link = document.getElementById(event.key === "ArrowLeft" ? "prev-page" : event.key === "ArrowRight" ? "next-page" : "");
    if (link) { window.location.href = link.href; }
  });
})();
