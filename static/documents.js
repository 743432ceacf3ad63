// Live progress for the documents page: upload progress (XHR) and per-document ingestion progress (polling).
(function () {
  "use strict";
  const table = document.getElementById("documents");
  const labels = { queued: "Queued", processing: "Processing", ready: "Ready", failed: "Failed" };

  function setBar(bar, fraction) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    bar.setAttribute("aria-valuenow", String(pct));
    bar.querySelector("span").style.width = pct + "%";
  }

  function renderRow(row, doc) {
    row.dataset.status = doc.status;
    const badge = row.querySelector(".status .badge");
    badge.className = "badge " + doc.status;
    badge.textContent = labels[doc.status] || doc.status;
    row.querySelector(".status .error").textContent = doc.error || "";
    const warnings = row.querySelector(".status .warnings");
    warnings.replaceChildren(...(doc.warnings || []).map(function (w) {
      const li = document.createElement("li");
      li.textContent = w;  // text, never HTML: names and warnings come from uploaded files
      return li;
    }));
    const sections = doc.unit === "section" ? (doc.page_count === 1 ? " section" : " sections") : "";
    row.querySelector(".pages").textContent = doc.page_count == null ? "" : String(doc.page_count) + sections;
    row.querySelector(".stage").textContent = doc.status === "processing" ? doc.stage : "";
    setBar(row.querySelector(".bar"), doc.status === "ready" ? 1 : doc.progress);
  }

  function unfinished() {
    return table && table.querySelector('tr[data-status="queued"], tr[data-status="processing"]');
  }

  async function poll() {
    if (!unfinished()) { return; }
    try {
      const response = await fetch(table.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const data = await response.json();
        for (const doc of data.documents) {
          const row = table.querySelector('tr[data-id="' + doc.id + '"]');
          if (row) { renderRow(row, doc); }
        }
      }
    } catch (err) {
      // The server may be restarting: keep polling.
    }
    setTimeout(poll, 1000);
  }
  poll();

  const form = document.getElementById("upload-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      if (!window.XMLHttpRequest) { return; }
      event.preventDefault();
      const bar = document.getElementById("upload-bar");
      bar.classList.remove("hidden");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { setBar(bar, e.loaded / e.total); }
      });
      xhr.addEventListener("load", function () { window.location.assign(xhr.responseURL || window.location.href); });
      xhr.addEventListener("error", function () { form.submit(); });
      xhr.send(new FormData(form));
    });
  }
})();
