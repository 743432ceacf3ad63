// Chat: every answer card is drawn here from the server's payload (chat.views.answer_payload), whether it
// came with the page or streamed in over server-sent events after asking.
// Streamed tokens are shown as text (textContent); the final answer is HTML the server has escaped and sanitized.
(function () {
  "use strict";
  const answers = document.getElementById("answers");
  const template = document.getElementById("answer-template");
  const form = document.getElementById("ask-form");
  if (!answers || !template) { return; }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function citationItem(p) {
    const li = document.createElement("li");
    if (p.cited) { li.className = "cited"; }
    const a = document.createElement("a");
    a.href = p.url;
    a.dataset.n = String(p.n);
    a.textContent = "[" + p.n + "] " + p.document_name + ", " + p.where;  // "p. 4" or a section's title
    li.appendChild(a);
    if (p.document_deleted) {
      const note = document.createElement("small");
      note.className = "muted";
      note.textContent = " (document since deleted)";
      li.appendChild(note);
    }
    return li;
  }

  function showGrounding(article, payload) {
    const badge = article.querySelector(".grounding");
    const g = payload.grounding;
    if (payload.shown === "evidence") {
      // The score is the withheld answer's: the text shown is the documents' own.
      badge.className = "grounding flagged";
      badge.textContent = "Model's answer withheld" + (g && g.score !== null ? " · " + g.score : "");
      badge.title = "The model's answer was not supported by the documents (or could not be checked)";
    } else if (g && g.status === "scored") {
      badge.className = "grounding " + (g.flagged ? "flagged" : "grounded");
      badge.textContent = (g.flagged ? "Possibly unsupported" : "Grounded") + " · " + g.score;
      badge.title = "Grounding score " + g.score + " (threshold " + g.threshold + ")";
    } else if (payload.grounding_status === "unscored") {
      badge.className = "grounding unscored";
      badge.textContent = "Not scored";
      badge.title = "The grounding check gave no verdict for this answer: check its sources yourself";
    } else if (payload.grounding_status === "failed") {
      badge.className = "grounding unavailable";
      badge.textContent = "Grounding unavailable";
    } else if (payload.status !== "done" || !payload.html) {
      badge.textContent = "";
    }
  }

  // Under a flagged answer, "What the documents say": the extractive answer over the same passages, its
  // citations linked like the answer's. When it replaced the answer (withhold), a note says so instead.
  function showEvidence(article, payload, withheld) {
    let box = article.querySelector(".evidence");
    if (!payload.evidence) { if (box) { box.remove(); } return; }
    if (!box) {
      box = document.createElement("section");
      box.className = "evidence";
      article.querySelector(".answer").after(box);
    }
    if (withheld) {
      const note = document.createElement("p");
      note.className = "muted withheld-note";
      note.textContent = "What the documents say: the model's answer was not supported by them, so their own " +
        "sentences are shown instead.";
      box.replaceChildren(note);
      return;
    }
    const title = document.createElement("h4");
    title.textContent = "What the documents say";
    const body = document.createElement("div");
    body.className = "evidence-body";
    body.innerHTML = payload.evidence.html;  // server-rendered like the answer
    box.replaceChildren(title, body);
  }

  function render(article, payload) {
    article.id = "answer-" + payload.id;
    article.dataset.answer = String(payload.id);
    article.dataset.status = payload.status;
    article.querySelector(".question").textContent = payload.question;
    const answer = article.querySelector(".answer");
    answer.classList.remove("streaming");
    const withheld = payload.shown === "evidence" && payload.evidence;
    // Server-rendered: escaped Markdown, sanitized. Withheld: the documents' own sentences replace the answer.
    answer.querySelector(".answer-body").innerHTML = withheld ? payload.evidence.html : payload.html;
    answer.classList.toggle("withheld", Boolean(withheld));
    showEvidence(article, payload, withheld);
    const old = answer.querySelector("p.error");
    if (old) { old.remove(); }
    if (payload.error) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = payload.error;
      answer.appendChild(p);
    }
    article.querySelector(".citations").replaceChildren(...payload.sources.map(citationItem));
    article.querySelectorAll("button.thumb").forEach(function (b) {
      b.classList.toggle("chosen", b.dataset.value === payload.feedback);
    });
    showGrounding(article, payload);
  }

  function card(payload) {
    const article = template.content.firstElementChild.cloneNode(true);
    answers.appendChild(article);
    if (payload.status === "pending" || payload.status === "streaming") {
      article.id = "answer-" + payload.id;
      article.dataset.answer = String(payload.id);
      article.querySelector(".question").textContent = payload.question;
    } else {
      render(article, payload);
    }
    return article;
  }

  function stream(article, url) {
    const body = article.querySelector(".answer-body");
    const source = new EventSource(url);
    source.addEventListener("token", function (e) { body.textContent += JSON.parse(e.data).text; });
    source.addEventListener("done", function (e) {
      const payload = JSON.parse(e.data);
      render(article, payload);
      if (payload.status !== "done" || !payload.html) { source.close(); }
    });
    source.addEventListener("grounding", function (e) { render(article, JSON.parse(e.data)); source.close(); });
    source.addEventListener("error", function (e) {
      if (e.data) { body.textContent = JSON.parse(e.data).message; }
      source.close();
    });
  }

  JSON.parse(document.getElementById("answers-data").textContent).forEach(function (payload) {
    const article = card(payload);
    if (payload.status === "pending" || payload.status === "streaming") {
      stream(article, "/answers/" + payload.id + "/stream/");
    }
  });

  // Thumbs up/down: stored beside the answer's grounding score.
  answers.addEventListener("click", async function (event) {
    const button = event.target.closest("button.thumb");
    if (!button) { return; }
    const article = button.closest(".qa");
    const data = new FormData();
    data.append("value", button.dataset.value);
    data.append("csrfmiddlewaretoken", csrfToken());
    const response = await fetch("/answers/" + article.dataset.answer + "/feedback/", {
      method: "POST", body: data, headers: { Accept: "application/json" },
    });
    if (response.ok) {
      article.querySelectorAll("button.thumb").forEach(function (b) { b.classList.toggle("chosen", b === button); });
    }
  });

  function conversationListed(result, question) {
    const list = document.getElementById("conversation-list");
    if (!list) { return; }
    const empty = list.querySelector("li.empty");
    if (empty) { empty.remove(); }
    list.querySelectorAll("li.current").forEach(function (li) { li.classList.remove("current"); });
    const li = document.createElement("li");
    li.className = "current";
    const a = document.createElement("a");
    a.href = result.conversation_url;
    a.textContent = question.length > 60 ? question.slice(0, 59) + "…" : question;
    li.appendChild(a);
    list.prepend(li);
  }

  if (!form) { return; }
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
      const article = card({ id: result.answer, question: data.get("question"), status: "pending" });
      question.value = "";
      if (!form.querySelector("input[name=conversation]")) {
        const hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = "conversation"; hidden.value = String(result.conversation);
        form.appendChild(hidden);
        const picker = form.querySelector("select[name=collection]");
        if (picker) { picker.disabled = true; }
        history.replaceState(null, "", result.conversation_url);
        conversationListed(result, String(data.get("question")));
      }
      stream(article, result.stream_url);
    } finally {
      button.disabled = false;
    }
  });
})();
