// upcall DIGITS pages: plain JavaScript, no libraries. Live job tables, the training chart
// (canvas, drawn here), abort and delete with confirmation, and the new-model form's switches.
"use strict";

const RUNNING = ["Initialized", "Waiting", "Running"];

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

// -- abort / delete: <button data-action-url data-action-method data-confirm data-then> -------
function setupActions() {
  for (const button of document.querySelectorAll("button[data-action-url]")) {
    button.addEventListener("click", async () => {
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      const out = document.getElementById("action-result");
      button.disabled = true;
      const r = await fetch(button.dataset.actionUrl,
        { method: button.dataset.actionMethod || "POST", credentials: "same-origin" });
      const text = await r.text();
      if (r.ok && button.dataset.then) { window.location.assign(button.dataset.then); return; }
      if (out) { out.textContent = text.trim(); out.className = r.ok ? "muted" : "alert"; }
      if (!r.ok) button.disabled = false;
    });
  }
}

// -- the home page: status and progress of running jobs, without reload ------------------------
function setStatus(el, status) {
  if (!el) return;
  el.textContent = status;
  el.className = "status " + status;
}

function setProgress(el, pct) {
  if (!el) return;
  el.querySelector("span").style.width = pct + "%";
  el.setAttribute("aria-valuenow", pct);
  el.title = pct + "%";
}

function pollHome() {
  const tick = async () => {
    const data = await getJSON("/completed_jobs.json");
    const all = [...data.running, ...data.datasets, ...data.models];
    for (const job of all) {
      const row = document.getElementById("job-" + job.id);
      if (!row) continue;
      setStatus(row.querySelector(".status"), job.status);
      setProgress(row.querySelector(".progress"), job.progress);
    }
    if (data.running.length) window.setTimeout(tick, 2000);
  };
  if (document.querySelector("tr[data-running]")) window.setTimeout(tick, 1000);
}

// -- the training chart --------------------------------------------------------------------
const COLORS = { "loss (train)": "#2f7fd8", "loss (val)": "#1f9e5a", "accuracy (val)": "#e07b00",
                 "learning rate": "#7a3fb5" };

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v) {
  return Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(1) : +v.toFixed(3) + "";
}

// series: [{name, points: [[x, y]...], right: bool}]; right axis 0..100 (%).
function drawChart(canvas, series, xmax) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 56, right = series.some(s => s.right) ? 48 : 16, top = 12, bottom = 30;
  const pw = w - left - right, ph = h - top - bottom;
  const leftVals = series.filter(s => !s.right).flatMap(s => s.points.map(p => p[1]));
  const ymax = niceMax(Math.max(0, ...leftVals.filter(Number.isFinite)));
  const X = x => left + (xmax > 0 ? x / xmax : 0) * pw;
  const Y = (y, r) => top + ph - (r ? y / 100 : y / ymax) * ph;
  g.font = "12px sans-serif"; g.fillStyle = "#333"; g.strokeStyle = "#e3e6ea"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (i / 4) * ph;
    g.beginPath(); g.moveTo(left, y); g.lineTo(left + pw, y); g.stroke();
    g.textAlign = "right"; g.fillText(fmt(ymax * i / 4), left - 6, y + 4);
    if (right > 16) { g.textAlign = "left"; g.fillText(25 * i + "%", left + pw + 6, y + 4); }
  }
  g.textAlign = "center";
  const step = Math.max(1, Math.ceil(xmax / 10));
  for (let x = 0; x <= xmax + 1e-9; x += step) g.fillText(x + "", X(x), top + ph + 16);
  g.fillText("epoch", left + pw / 2, h - 2);
  g.strokeStyle = "#888"; g.strokeRect(left, top, pw, ph);
  for (const s of series) {
    g.strokeStyle = g.fillStyle = COLORS[s.name] || "#000"; g.lineWidth = 2;
    g.beginPath();
    let pen = false;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) { pen = false; continue; }
      if (pen) g.lineTo(X(x), Y(y, s.right)); else g.moveTo(X(x), Y(y, s.right));
      pen = true;
    }
    g.stroke();
    if (s.points.length < 30) for (const [x, y] of s.points)
      if (Number.isFinite(y)) { g.beginPath(); g.arc(X(x), Y(y, s.right), 2.5, 0, 7); g.fill(); }
  }
}

function legend(el, names) {
  el.replaceChildren(...names.map(name => {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = COLORS[name];
    span.append(swatch, name);
    return span;
  }));
}

function updateSnapshots(list, jobId, epochs) {
  if (!list || list.childElementCount === epochs.length) return;
  list.replaceChildren(...epochs.map(e => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "/models/" + jobId + "/download?epoch=" + e;
    a.textContent = "epoch " + e;
    li.append(a);
    return li;
  }));
  const none = document.getElementById("no-snapshots");
  if (none) none.hidden = epochs.length > 0;
}

function followModel(canvas) {
  const jobId = canvas.dataset.job;
  const lrCanvas = document.getElementById("lr-chart");
  const tick = async () => {
    const d = await getJSON("/models/" + jobId + "/curves.json");
    const series = [
      { name: "loss (train)", points: d.train.epoch.map((x, i) => [x, d.train.loss[i]]) },
      { name: "loss (val)", points: d.val.epoch.map((x, i) => [x, d.val.loss[i]]) },
      { name: "accuracy (val)", points: d.val.epoch.map((x, i) => [x, d.val.accuracy[i]]), right: true },
    ].filter(s => s.points.some(p => Number.isFinite(p[1])));
    drawChart(canvas, series, d.epochs);
    legend(document.getElementById("chart-legend"), series.map(s => s.name));
    if (lrCanvas) {
      const lr = [{ name: "learning rate", points: d.train.epoch.map((x, i) => [x, d.train.lr[i]]) }];
      drawChart(lrCanvas, lr, d.epochs);
    }
    canvas.dataset.points = d.train.epoch.length + d.val.epoch.length;
    setStatus(document.getElementById("status"), d.status);
    setProgress(document.getElementById("progress"), d.progress);
    updateSnapshots(document.getElementById("snapshots"), jobId, d.snapshots);
    const abort = document.getElementById("abort");
    if (abort) abort.disabled = !RUNNING.includes(d.status);
    if (RUNNING.includes(d.status)) window.setTimeout(tick, 1000);
    else canvas.dataset.final = "1";
  };
  tick();
}

// -- a dataset being built: shown again once it is done (its counts, mean image) --------------
function followDataset(status) {
  const tick = async () => {
    const d = await getJSON("/datasets/" + status.dataset.job + "/status");
    if (RUNNING.includes(d.status)) window.setTimeout(tick, 1000);
    else window.location.reload();
  };
  if (RUNNING.includes(status.textContent)) window.setTimeout(tick, 1000);
}

// -- the new-model and new-dataset forms -----------------------------------------------------
function showOnly(selector, attr, value) {
  for (const el of document.querySelectorAll(selector)) el.hidden = el.dataset[attr] !== value;
}

function setupModelForm(form) {
  const policy = form.elements.lr_policy;
  const onPolicy = () => showOnly("[data-policy]", "policy", policy.value);
  policy.addEventListener("change", onPolicy); onPolicy();
  for (const button of form.querySelectorAll("button[data-customize]")) {
    button.addEventListener("click", async () => {
      const body = new FormData();
      body.append("network", button.dataset.customize);
      const r = await fetch("/models/customize", { method: "POST", body, credentials: "same-origin" });
      if (!r.ok) return;
      form.elements.custom_network.value = (await r.json()).network;
      form.querySelector("input[name=method][value=custom]").checked = true;
      form.elements.custom_network.focus();
    });
  }
}

function setupDatasetForm(form) {
  const local = form.elements.textfile_use_local_files;
  const onLocal = () => showOnly("[data-local]", "local", local.checked ? "1" : "0");
  local.addEventListener("change", onLocal); onLocal();
}

window.addEventListener("DOMContentLoaded", () => {
  setupActions();
  if (document.body.dataset.page === "home") pollHome();
  if (document.body.dataset.page === "dataset") followDataset(document.getElementById("status"));
  const chart = document.getElementById("chart");
  if (chart) followModel(chart);
  const modelForm = document.getElementById("new-model");
  if (modelForm) setupModelForm(modelForm);
  const datasetForm = document.getElementById("new-dataset");
  if (datasetForm) setupDatasetForm(datasetForm);
});
