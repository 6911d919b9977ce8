// upcall review: verdict keys, moving between detections, playback speed.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const item = document.getElementById("item");
  if (!item) return;
  const index = Number(item.dataset.index), total = Number(item.dataset.total);
  const note = document.getElementById("note");
  const audio = document.getElementById("audio");
  const go = (i) => { if (i >= 0 && i < total) location.href = "/item/" + i; };

  function show(id, text) {
    const el = document.getElementById(id);
    el.textContent = text || "";
    el.hidden = !text;
  }

  async function save(verdict) {
    show("error", "");
    let reply, body;
    try {
      reply = await fetch("/item/" + index, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({verdict, note: note.value, revision: item.dataset.revision}),
      });
      body = await reply.json();
    } catch (e) {
      show("error", "Not saved: the server does not answer (" + e + ")");
      return;
    }
    if (!reply.ok) { show("error", "Not saved: " + body.error); return; }
    item.dataset.revision = body.revision;
    item.dataset.verdict = verdict;
    document.getElementById("verdict").textContent = verdict || "no verdict yet";
    for (const b of document.querySelectorAll("#verdicts button"))
      b.classList.toggle("on", b.dataset.verdict === verdict);
    const p = body.progress;
    const progress = document.getElementById("progress");
    progress.dataset.verified = p.verified;
    progress.textContent = `${p.verified} / ${p.total} verified · yes ${p.yes} · no ${p.no} · unsure ${p.unsure}`;
    if (body.warning) { show("warning", body.warning); return; }  // stay: the reviewer reads it
    if (verdict && index + 1 < total) go(index + 1);
  }

  function speed(v) {
    if (!audio) return;
    audio.src = "/item/" + index + "/audio.wav?speed=" + v;
    for (const b of document.querySelectorAll("[data-speed]"))
      b.classList.toggle("on", b.dataset.speed === String(v));
  }

  for (const b of document.querySelectorAll("[data-verdict]"))
    b.addEventListener("click", () => save(b.dataset.verdict));
  for (const b of document.querySelectorAll("[data-speed]"))
    b.addEventListener("click", () => speed(b.dataset.speed));

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target === note) {
      if (e.key === "Enter") { e.preventDefault(); save(item.dataset.verdict); }
      else if (e.key === "Escape") note.blur();
      return;
    }
    const verdicts = {y: "yes", n: "no", u: "unsure"};
    if (verdicts[e.key]) save(verdicts[e.key]);
    else if (e.key === "ArrowRight") go(index + 1);
    else if (e.key === "ArrowLeft") go(index - 1);
    else if (["1", "2", "4", "8"].includes(e.key)) speed(e.key);
    else if (e.key === "p" && audio) audio.paused ? audio.play() : audio.pause();
    else return;
    e.preventDefault();
  });
});
