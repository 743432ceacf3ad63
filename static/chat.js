// Chat: ask, then watch the answer stream in over server-sent events.
// Streamed tokens are shown as text (textContent); the final answer is HTML the server has escaped and sanitized.
(function () {
  "use strict";
  const form = document.getElementById("ask-form");
  const answers = document.getElementById("answers");
  const template = document.getElementById("answer-template");
  if (!form) { return; }

  function citationItem(p, answerId) {
    const li = document.createElement("li");
    if (p.cited) { li.className = "cited"; }
    const a = document.createElement("a");
    a.href = "/passages/" + p.chunk_id + "/?answer=" + answerId;
    a.dataset.n = String(p.n);
    const pages = p.page_end !== p.page_start ? p.page_start + "-" + p.page_end : String(p.page_start);
    a.textContent = "[" + p.n + "] " + p.document_name + ", p. " + pages;
    li.appendChild(a);
    return li;
  }

  function showGrounding(article, g) {
    const badge = article.querySelector(".grounding");
    if (!g) { return; }
    badge.className = "grounding " + (g.flagged ? "flagged" : "grounded");
    badge.textContent = (g.flagged ? "Possibly unsupported" : "Grounded") + " · " + g.score;
    badge.title = "Grounding score " + g.score + " (threshold " + g.threshold + ")";
  }

  function render(article, payload) {
    article.dataset.status = payload.status;
    const body = article.querySelector(".answer-body");
    body.innerHTML = payload.html;  // server-rendered: HTML-escaped Markdown, sanitized
    article.querySelector(".answer").classList.remove("streaming");
    if (payload.error) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = payload.error;
      article.querySelector(".answer").appendChild(p);
    }
    const list = article.querySelector(".citations");
    list.replaceChildren(...payload.sources.map(function (p) { return citationItem(p, payload.id); }));
    if (payload.grounding) { showGrounding(article, payload.grounding); }
  }

  function stream(article, url) {
    const body = article.querySelector(".answer-body");
    const source = new EventSource(url);
    source.addEventListener("token", function (e) { body.textContent += JSON.parse(e.data).text; });
    source.addEventListener("done", function (e) {
      const payload = JSON.parse(e.data);
      render(article, payload);
      if (payload.status !== "done") { article.querySelector(".grounding").textContent = ""; source.close(); }
    });
    source.addEventListener("grounding", function (e) { render(article, JSON.parse(e.data)); source.close(); });
    source.addEventListener("error", function (e) {
      if (e.data) { article.querySelector(".answer-body").textContent = JSON.parse(e.data).message; }
      source.close();
    });
  }

  // Thumbs up/down: stored beside the answer's grounding score.
  answers.addEventListener("click", async function (event) {
    const button = event.target.closest("button.thumb");
    if (!button) { return; }
    const article = button.closest(".qa");
    const data = new FormData();
    data.append("value", button.dataset.value);
    data.append("csrfmiddlewaretoken", form.querySelector("input[name=csrfmiddlewaretoken]").value);
    const response = await fetch("/answers/" + article.dataset.answer + "/feedback/", { method: "POST", body: data });
    if (response.ok) {
      article.querySelectorAll("button.thumb").forEach(function (b) { b.classList.toggle("chosen", b === button); });
    }
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const question = form.querySelector("textarea[name=question]");
    if (!question.value.trim()) { return; }
    const button = form.querySelector("button");
    button.disabled = true;
    const data = new FormData(form);
    try {
      const response = await fetch(form.action, { method: "POST", body: data, headers: { Accept: "application/json" } });
      const result = await response.json();
      if (!response.ok) { alert(result.error ? result.error.message : "Could not ask"); return; }
      const article = template.content.firstElementChild.cloneNode(true);
      article.dataset.answer = String(result.answer);
      article.querySelector(".question").textContent = data.get("question");
      answers.appendChild(article);
      question.value = "";
      if (!form.querySelector("input[name=conversation]")) {
        const hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = "conversation"; hidden.value = String(result.conversation);
        form.appendChild(hidden);
        const picker = form.querySelector("select[name=collection]");
        if (picker) { picker.disabled = true; }
        history.replaceState(null, "", result.conversation_url);
      }
      stream(article, result.stream_url);
    } finally {
      button.disabled = false;
    }
  });
})();
