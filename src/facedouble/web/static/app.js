// facedouble browser UI: plain JavaScript, no build step. Talks to the JSON API of web/app.py.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) e.append(k);
  return e;
};

async function api(path, opts = {}) {
  const init = { credentials: "same-origin", headers: {} , ...opts };
  if (opts.json !== undefined) {
    init.method = init.method || "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.json);
  }
  const r = await fetch(path, init);
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).detail || msg; } catch (e) { /* not json */ }
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return opts.raw ? r : r.json();
}

function flash(target, text, isError) {
  const t = typeof target === "string" ? $(target) : target;
  if (!t) return;
  t.textContent = text;
  t.className = isError ? "error" : "";
}

const S = { options: null, state: null, tab: "workspace", jobSeq: 0, jobId: null, jobState: null, onJobDone: [] };

// ---------------------------------------------------------------- option forms from the config schema
function buildForm(container, fields, values = {}, onChange = null) {
  const inputs = {};
  const more = el("details", {}, el("summary", { text: "more options" }));
  for (const f of fields) {
    const v = values[f.name] !== undefined ? values[f.name] : f.default;
    let input;
    if (f.kind === "choice") {
      input = el("select", { name: f.name });
      if (f.optional) input.append(el("option", { value: "", text: "(default)" }));
      for (const c of f.choices) input.append(el("option", { value: c, text: c }));
      input.value = v === null || v === undefined ? "" : v;
    } else if (f.kind === "bool") {
      if (f.optional) {
        input = el("select", { name: f.name }, el("option", { value: "", text: "(default)" }),
          el("option", { value: "true", text: "yes" }), el("option", { value: "false", text: "no" }));
        input.value = v === null || v === undefined ? "" : String(v);
      } else {
        input = el("input", { type: "checkbox", name: f.name });
        input.checked = !!v;
      }
    } else if (f.kind === "int" || f.kind === "float") {
      input = el("input", { type: "number", name: f.name, step: f.kind === "int" ? "1" : "any",
        min: f.lo ?? undefined, max: f.hi ?? undefined, placeholder: f.optional ? "default" : "" });
      input.value = v === null || v === undefined ? "" : v;
    } else {
      input = el("input", { type: "text", name: f.name, placeholder: f.optional ? "default" : "" });
      input.value = v === null || v === undefined ? "" : v;
    }
    input.title = f.help + (f.lo !== null && f.hi !== null ? ` [${f.lo}..${f.hi}]` : "");
    inputs[f.name] = { input, f };
    if (onChange) input.addEventListener(input.type === "number" || input.type === "text" ? "input" : "change", onChange);
    const label = el("label", { title: input.title }, el("span", { text: f.name.replaceAll("_", " ") }), input);
    (f.ask ? container : more).append(label);
  }
  if (more.children.length > 1) container.append(more);
  const get = () => {
    const out = {};
    for (const [name, { input, f }] of Object.entries(inputs)) {
      if (input.type === "checkbox") out[name] = input.checked;
      else if (input.value === "") out[name] = f.optional ? null : undefined;
      else if (f.kind === "int") out[name] = parseInt(input.value, 10);
      else if (f.kind === "float") out[name] = parseFloat(input.value);
      else if (f.kind === "bool") out[name] = input.value === "true";
      else out[name] = input.value;
      if (out[name] === undefined) delete out[name];
    }
    return out;
  };
  get.set = (vals) => {
    for (const [name, v] of Object.entries(vals || {})) {
      const it = inputs[name];
      if (!it) continue;
      if (it.input.type === "checkbox") it.input.checked = !!v;
      else it.input.value = v === null || v === undefined ? "" : String(v);
    }
  };
  return get;
}

const STAGES = [
  ["video-extract", "Extract frames", true], ["extract", "Extract faces", true], ["sort", "Sort faces", true],
  ["train", "Train", false], ["merge", "Merge", false], ["build", "Build video", false], ["report", "Quality report", false],
];

async function startJob(stage, side, options, extra) {
  try {
    const r = await api("/api/jobs", { json: { stage, side, options, extra } });
    S.jobSeq = 0;
    S.jobId = r.job.id;
    S.jobState = "running";     // so a job that ends before the first poll still counts as finished
    pollJob();
    return r.job;
  } catch (e) { alert(e.message); return null; }
}

function renderStageForms() {
  const box = $("#stage-forms");
  box.textContent = "";
  for (const [stage, title, sided] of STAGES) {
    const fs = el("fieldset", { class: "form", id: "form-" + stage }, el("legend", { text: title }));
    let sideSel = null;
    if (sided) {
      sideSel = el("select", { name: "side" }, el("option", { text: "src" }), el("option", { text: "dst" }));
      fs.append(el("label", {}, el("span", { text: "side" }), sideSel));
    }
    const get = buildForm(fs, S.options[stage]);
    const prefill = () => api(`/api/saved/${stage}` + (sideSel ? "?side=" + sideSel.value : ""))
      .then((r) => r.saved && get.set(r.options)).catch(() => {});
    if (stage === "extract" || stage === "merge") { prefill(); if (sideSel) sideSel.addEventListener("change", prefill); }
    const extra = {};
    if (stage === "train") {
      extra.max_iterations = el("input", { type: "number", name: "max_iterations", min: 1 });
      fs.append(el("label", {}, el("span", { text: "stop after iterations" }), extra.max_iterations));
    }
    if (stage === "merge") {
      extra.force = el("input", { type: "checkbox", name: "force" });
      fs.append(el("label", {}, el("span", { text: "merge every frame again" }), extra.force));
    }
    fs.append(el("button", { class: "run", text: "Run " + title.toLowerCase(), onclick: () => {
      const ex = {};
      if (extra.max_iterations && extra.max_iterations.value) ex.max_iterations = parseInt(extra.max_iterations.value, 10);
      if (extra.force) ex.force = extra.force.checked;
      startJob(stage, sideSel ? sideSel.value : null, get(), ex);
    } }));
    box.append(fs);
  }
}

async function refreshState() {
  const st = await api("/api/state");
  S.state = st;
  $("#ws-path").textContent = st.workspace;
  const tb = $("#stage-table tbody");
  tb.textContent = "";
  const row = (name, a, b) => tb.append(el("tr", {}, el("td", { text: name }), el("td", { text: a }), el("td", { text: b })));
  const sd = st.sides;
  row("video", sd.src.video.join(", ") || "—", sd.dst.video.join(", ") || "—");
  row("frames", sd.src.frames, sd.dst.frames);
  row("faces (aligned)", sd.src.faces, sd.dst.faces);
  row("trash", sd.src.trash, sd.dst.trash);
  row("frames with no face", sd.src.no_face ?? "—", sd.dst.no_face ?? "—");
  row("model", st.model.name ? `${st.model.name}, iteration ${st.model.iteration}` : "none", "");
  row("merged frames", "", st.merged);
  row("result", "", st.results.map((r) => `${r.name} (${(r.bytes / 1e6).toFixed(1)} MB)`).join(", ") || "—");
  const name = resultName();
  const video = $("#result-video");
  if (name && !video.getAttribute("src")) video.src = "/api/result/" + name;
}

function resultName() {
  const results = (S.state && S.state.results) || [];
  const r = results.find((x) => x.name === "result.mp4") || results[0];
  return r ? r.name : null;
}

// ---------------------------------------------------------------- jobs: polling, progress, log, cancel
let pollTimer = null;
async function pollJob() {
  clearTimeout(pollTimer);
  let r;
  try { r = await api("/api/job?since=" + S.jobSeq); } catch (e) { pollTimer = setTimeout(pollJob, 2000); return; }
  const job = r.job;
  if (job) {
    if (job.id !== S.jobId) { S.jobId = job.id; S.jobSeq = 0; }
    const log = $("#log");
    for (const line of job.log) { log.textContent += line.text + "\n"; S.jobSeq = line.seq; }
    if (job.log.length) log.scrollTop = log.scrollHeight;
    const p = job.progress;
    $("#jobbar").hidden = false;
    $("#job-name").textContent = `${job.name}: ${job.state}`;
    $("#job-progress").max = p.total || 1;
    $("#job-progress").value = p.total ? p.done : (job.state === "running" ? 0 : 1);
    const left = p.seconds_left !== null ? `, ${Math.round(p.seconds_left)} s left` : "";
    $("#job-text").textContent = job.state === "running"
      ? `${p.task} ${p.done}${p.total ? "/" + p.total : ""} ${p.rate ? p.rate + "/s" : ""}${left} ${p.status || ""}`
      : job.message;
    if (job.state === "done" && job.name === "report") {
      $("#job-text").append(" ", el("a", { id: "job-report-link", href: "/api/report?v=" + job.id, target: "_blank",
        rel: "noopener", text: "open the report" }));
    }
    $("#job-cancel").disabled = job.state !== "running";
    if (S.jobState === "running" && job.state !== "running") {
      refreshState();
      for (const fn of S.onJobDone) fn(job);
    }
    S.jobState = job.state;
  }
  pollTimer = setTimeout(pollJob, job && job.state === "running" ? 500 : 3000);
}

// ---------------------------------------------------------------- faceset browser (virtual scrolling)
const F = { names: [], version: "", selected: new Set(), last: -1, cell: 134, current: null };

async function loadFaces() {
  const side = $("#faces-side").value, folder = $("#faces-folder").value;
  const r = await api(`/api/faces/${side}?folder=${folder}`);
  F.names = r.names; F.version = r.version; F.selected.clear(); F.last = -1;
  $("#faces-count").textContent = `${r.count} faces`;
  renderFaces(true);
}

function renderFaces(force) {
  const grid = $("#faces-grid"), items = $("#faces-items");
  const cols = Math.max(1, Math.floor((grid.clientWidth - 4) / F.cell));
  const rows = Math.ceil(F.names.length / cols);
  $("#faces-spacer").style.height = rows * F.cell + "px";
  const first = Math.max(0, Math.floor(grid.scrollTop / F.cell) - 2);
  const last = Math.min(rows, Math.ceil((grid.scrollTop + grid.clientHeight) / F.cell) + 2);
  const key = `${first}-${last}-${cols}-${F.version}`;
  if (!force && items.dataset.key === key) { markSelection(); return; }
  items.dataset.key = key;
  items.textContent = "";
  const side = $("#faces-side").value, folder = $("#faces-folder").value;
  for (let r = first; r < last; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      if (i >= F.names.length) break;
      const name = F.names[i];
      const d = el("div", { class: "face", "data-name": name, "data-index": i, title: name },
        el("img", { loading: "lazy", alt: name,
          src: `/api/faces/${side}/thumb/${encodeURIComponent(name)}?folder=${folder}&v=${F.version}` }),
        el("span", { text: name }));
      d.style.left = c * F.cell + "px"; d.style.top = r * F.cell + "px";
      d.addEventListener("click", (ev) => clickFace(ev, i));
      items.append(d);
    }
  }
  markSelection();
}

function markSelection() {
  for (const d of document.querySelectorAll("#faces-items .face")) d.classList.toggle("selected", F.selected.has(d.dataset.name));
}

function clickFace(ev, i) {
  const name = F.names[i];
  if (ev.shiftKey && F.last >= 0) {
    const [a, b] = [Math.min(F.last, i), Math.max(F.last, i)];
    for (let k = a; k <= b; k++) F.selected.add(F.names[k]);
  } else if (ev.ctrlKey || ev.metaKey) {
    if (F.selected.has(name)) F.selected.delete(name); else F.selected.add(name);
  } else {
    F.selected.clear(); F.selected.add(name);
  }
  F.last = i;
  markSelection();
  showFace(name);
}

async function showFace(name) {
  const side = $("#faces-side").value, folder = $("#faces-folder").value;
  F.current = name;
  const lm = $("#faces-landmarks").checked ? "&landmarks=true" : "";
  $("#faces-big").src = `/api/faces/${side}/image/${encodeURIComponent(name)}?folder=${folder}${lm}&v=${F.version}`;
  try {
    const info = await api(`/api/faces/${side}/info/${encodeURIComponent(name)}?folder=${folder}`);
    F.info = info.record;
    $("#faces-info").textContent = info.record
      ? `${name}\nframe ${info.record.source_filename}, face ${info.record.face_index}, ${info.record.face_type} ${info.record.size}px, ${info.record.detector}`
      : `${name} (no face record)`;
  } catch (e) { flash("#faces-info", e.message, true); }
}

async function moveSelected(kind) {
  const side = $("#faces-side").value;
  const names = [...F.selected];
  if (!names.length) return;
  try {
    await api(`/api/faces/${side}/${kind}`, { json: { names } });
  } catch (e) { alert(e.message); }
  await loadFaces();
  refreshState();
}

// ---------------------------------------------------------------- manual extraction editor
const M = { frames: [], list: [], index: 0, img: null, rect: null, lm: null, scale: 1, drag: null, busy: false, pending: false };

async function loadManual(keepFrame) {
  const side = $("#manual-side").value;
  const r = await api(`/api/frames/${side}`);
  const set = document.querySelector("input[name=manual-set]:checked").value;
  M.list = set === "all" ? r.frames : r[set];
  const sel = $("#manual-frame");
  sel.textContent = "";
  for (const n of M.list) sel.append(el("option", { value: n, text: n }));
  let i = keepFrame ? M.list.indexOf(keepFrame) : 0;
  if (i < 0) i = Math.min(M.index, M.list.length - 1);
  flash("#manual-msg", M.list.length ? `${M.list.length} frames` : "no frames in this set");
  if (M.list.length) openFrame(Math.max(0, i)); else clearCanvas();
}

function clearCanvas() {
  const c = $("#manual-canvas");
  c.getContext("2d").clearRect(0, 0, c.width, c.height);
  M.img = null;
}

function openFrame(i) {
  if (!M.list.length) return;
  M.index = (i + M.list.length) % M.list.length;
  const name = M.list[M.index];
  $("#manual-frame").value = name;
  const side = $("#manual-side").value;
  const img = new Image();
  img.onload = async () => {
    M.img = img; M.rect = null; M.lm = null;
    const c = $("#manual-canvas");
    const maxW = Math.min(960, document.body.clientWidth - 40);
    M.scale = Math.min(1, maxW / img.naturalWidth);
    c.width = Math.round(img.naturalWidth * M.scale); c.height = Math.round(img.naturalHeight * M.scale);
    try {
      const f = await api(`/api/frames/${side}/faces/${encodeURIComponent(name)}`);
      if (f.faces.length) { M.rect = f.faces[0].rect.slice(); M.lm = f.faces[0].landmarks; }
    } catch (e) { /* no faces */ }
    drawManual();
  };
  img.src = `/api/frames/${side}/image/${encodeURIComponent(name)}`;
}

function drawManual() {
  const c = $("#manual-canvas"), g = c.getContext("2d");
  if (!M.img) return;
  g.drawImage(M.img, 0, 0, c.width, c.height);
  if (M.rect) {
    const [x0, y0, x1, y1] = M.rect.map((v) => v * M.scale);
    g.strokeStyle = "#f44"; g.lineWidth = 2; g.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  if (M.lm) {
    g.fillStyle = "#4f4";
    for (const [x, y] of M.lm) { g.beginPath(); g.arc(x * M.scale, y * M.scale, 2, 0, 7); g.fill(); }
  }
}

function canvasPoint(ev) {
  const c = $("#manual-canvas"), b = c.getBoundingClientRect();
  return [(ev.clientX - b.left) * (c.width / b.width) / M.scale, (ev.clientY - b.top) * (c.height / b.height) / M.scale];
}

async function requestLandmarks() {
  if (!M.rect || M.rect[2] - M.rect[0] < 8 || M.rect[3] - M.rect[1] < 8) return;
  if (M.busy) { M.pending = true; return; }
  M.busy = true;
  const side = $("#manual-side").value;
  try {
    const r = await api(`/api/manual/${side}/landmarks`, { json: { frame: M.list[M.index], rect: M.rect } });
    M.lm = r.landmarks;
    drawManual();
  } catch (e) { flash("#manual-msg", e.message, true); }
  M.busy = false;
  if (M.pending) { M.pending = false; requestLandmarks(); }
}

function setupManualCanvas() {
  const c = $("#manual-canvas");
  c.addEventListener("mousedown", (ev) => {
    if (!M.img) return;
    const p = canvasPoint(ev);
    const inside = M.rect && p[0] > M.rect[0] && p[0] < M.rect[2] && p[1] > M.rect[1] && p[1] < M.rect[3];
    M.drag = inside ? { mode: "move", start: p, rect: M.rect.slice() } : { mode: "draw", start: p };
  });
  window.addEventListener("mousemove", (ev) => {
    if (!M.drag) return;
    const p = canvasPoint(ev);
    if (M.drag.mode === "draw") {
      const [a, b] = M.drag.start;
      M.rect = [Math.min(a, p[0]), Math.min(b, p[1]), Math.max(a, p[0]), Math.max(b, p[1])];
    } else {
      const dx = p[0] - M.drag.start[0], dy = p[1] - M.drag.start[1], r = M.drag.rect;
      M.rect = [r[0] + dx, r[1] + dy, r[2] + dx, r[3] + dy];
    }
    M.lm = null;
    drawManual();
    requestLandmarks();
  });
  window.addEventListener("mouseup", () => { if (M.drag) { M.drag = null; requestLandmarks(); } });
}

async function confirmManual() {
  if (!M.rect) { flash("#manual-msg", "Draw the face rectangle first.", true); return; }
  const side = $("#manual-side").value, name = M.list[M.index];
  try {
    const r = await api(`/api/manual/${side}/confirm`, { json: { frame: name, rect: M.rect.map((v) => Math.round(v)) } });
    flash("#manual-msg", `saved ${r.face}`);
    refreshState();
    const set = document.querySelector("input[name=manual-set]:checked").value;
    if (set === "all") openFrame(M.index + 1);
    else { const next = M.list[M.index + 1]; await loadManual(next); }
  } catch (e) { flash("#manual-msg", e.message, true); }
}

// ---------------------------------------------------------------- training monitor
const T = { history: [], getForm: null, timer: null, lastMtime: 0 };

function drawLoss(loss) {
  const c = $("#train-loss"), g = c.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  if (!loss || !loss.src.length) { g.fillStyle = "#999"; g.fillText("no loss history yet", 10, 20); return; }
  const all = loss.src.concat(loss.dst), hi = Math.max(...all), lo = Math.min(...all, 0);
  const n = loss.src.length, x = (i) => 30 + (i / Math.max(1, n - 1)) * (c.width - 40);
  const y = (v) => c.height - 20 - ((v - lo) / Math.max(1e-9, hi - lo)) * (c.height - 30);
  for (const [series, color] of [[loss.src, "#d33"], [loss.dst, "#33d"]]) {
    g.strokeStyle = color; g.beginPath();
    series.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
    g.stroke();
  }
  g.fillStyle = "#333";
  g.fillText(`src ${loss.src[n - 1]}  dst ${loss.dst[n - 1]}  (${loss.iterations} iterations)`, 34, 12);
}

const SAME_PERSON = 0.6;     // dlib's same-person distance

function drawIdentity(rows) {
  const c = $("#train-identity"), g = c.getContext("2d");
  c.dataset.points = String((rows || []).length);
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  if (!rows || !rows.length) { g.fillStyle = "#999"; g.fillText("no identity scores yet", 10, 20); return; }
  const dist = rows.flatMap((r) => [r.mean_src, r.mean_dst]).filter((v) => v !== null);
  const top = Math.max(1, ...dist), first = rows[0].iteration, last = rows[rows.length - 1].iteration;
  const x = (it) => 30 + (last > first ? (it - first) / (last - first) : 1) * (c.width - 40);
  const y = (v) => c.height - 20 - (v / top) * (c.height - 40);
  g.fillStyle = "#666";
  g.fillText("0", 18, y(0) + 3); g.fillText(top.toFixed(1), 6, y(top) + 3);
  g.fillText(`iteration ${first}`, 30, c.height - 5); g.fillText(String(last), c.width - 40, c.height - 5);
  g.strokeStyle = "#999"; g.setLineDash([4, 4]);
  g.beginPath(); g.moveTo(30, y(SAME_PERSON)); g.lineTo(c.width - 10, y(SAME_PERSON)); g.stroke();
  g.setLineDash([]);
  g.fillText("0.6 same person", c.width - 95, y(SAME_PERSON) - 3);
  for (const [key, color] of [["mean_dst", "#99c"], ["mean_src", "#d33"], ["nearer_src", "#2a2"]]) {
    g.strokeStyle = color; g.fillStyle = color; g.beginPath();
    let open = false;
    for (const r of rows) {
      if (r[key] === null) { open = false; continue; }
      if (open) g.lineTo(x(r.iteration), y(r[key])); else g.moveTo(x(r.iteration), y(r[key]));
      open = true;
      if (rows.length <= 40) g.fillRect(x(r.iteration) - 2, y(r[key]) - 2, 4, 4);
    }
    g.stroke();
  }
  const end = rows[rows.length - 1], num = (v, d) => (v === null ? "—" : v.toFixed(d));
  g.fillStyle = "#333";
  g.fillText(`nearer src ${end.nearer_src === null ? "—" : Math.round(end.nearer_src * 100) + "%"} (green)  ` +
    `distance to src ${num(end.mean_src, 3)} (red), dst ${num(end.mean_dst, 3)}`, 34, 12);
}

async function refreshTrain() {
  let st;
  try { st = await api("/api/train/status"); } catch (e) { return; }
  const rate = st.rate ? `${st.rate} it/s` : "";
  $("#train-stats").textContent = st.name
    ? `${st.name}: iteration ${st.iteration} ${rate} ${st.training ? "(training)" : ""} ${st.status || ""}` : "no model yet";
  if (st.preview && st.preview_mtime !== T.lastMtime) {
    T.lastMtime = st.preview_mtime;
    $("#train-preview").src = "/api/train/preview?t=" + st.preview_mtime;
  }
  drawLoss(st.loss);
  drawIdentity(st.identity);
  T.history = st.history || [];
  const s = $("#train-scrub");
  const atEnd = +s.value >= +s.max;
  s.max = Math.max(0, T.history.length - 1);
  if (atEnd) s.value = s.max;
  showHistory();
}

function showHistory() {
  const s = $("#train-scrub");
  const name = T.history[+s.value];
  $("#train-scrub-label").textContent = name ? `${+s.value + 1}/${T.history.length}: ${name}` : "no preview history (turn on write preview history)";
  if (name && $("#train-history").dataset.name !== name) {
    $("#train-history").dataset.name = name;
    $("#train-history").src = "/api/train/history/" + encodeURIComponent(name);
  }
}

// ---------------------------------------------------------------- merge tuner
const G = { getForm: null, timer: null, seq: 0, url: null, numbers: [] };

function mergeFrame() { return G.numbers[+$("#merge-frame").value] ?? 1; }

function scheduleMergePreview() {
  clearTimeout(G.timer);
  G.timer = setTimeout(mergePreview, 120);
}

async function mergePreview() {
  if (!G.getForm || !G.numbers.length) return;
  const seq = ++G.seq, number = mergeFrame();
  $("#merge-frame-label").textContent = `frame ${number}`;
  const orig = "/api/merge/original/" + number;
  if ($("#merge-original").getAttribute("src") !== orig) $("#merge-original").src = orig;
  try {
    const r = await api("/api/merge/preview", { json: { frame: number, options: G.getForm() }, raw: true });
    const blob = await r.blob();
    if (seq !== G.seq) return;
    if (G.url) URL.revokeObjectURL(G.url);
    G.url = URL.createObjectURL(blob);
    const img = $("#merge-result");
    img.src = G.url;
    img.dataset.seq = String(seq);
    flash("#merge-msg", `preview in ${r.headers.get("X-Merge-Ms")} ms`);
  } catch (e) { if (seq === G.seq) flash("#merge-msg", e.message, true); }
}

async function loadMerge() {
  const [frames, cfg] = await Promise.all([api("/api/merge/frames"), api("/api/merge/config")]);
  G.numbers = frames.numbers;
  const s = $("#merge-frame");
  s.max = Math.max(0, G.numbers.length - 1);
  if (!G.getForm) {
    const box = $("#merge-form");
    box.textContent = "";
    G.getForm = buildForm(box, S.options.merge, cfg.options, scheduleMergePreview);
  }
  if (frames.with_face.length && !s.dataset.init) {
    s.dataset.init = "1";
    s.value = Math.max(0, G.numbers.indexOf(frames.with_face[0]));
  }
  mergePreview();
}

// ---------------------------------------------------------------- result: provenance and the quality report
function provenanceLines(rep) {
  const wm = rep.watermark, c = rep.c2pa, pay = wm.payload || {};
  const lines = [wm.found
    ? [true, `watermark: found, run ${pay.run_id} (bit accuracy ${wm.bit_accuracy}, ${wm.frames_found} of ${wm.frames_checked} frames on their own)`]
    : [false, `watermark: not found (${wm.frames_checked} frame(s) checked)`]];
  if (c.state === "valid") lines.push([true, `C2PA: valid (${c.claims.trust || "signed"})`]);
  else lines.push([false, `C2PA: ${c.state}` + (c.errors.length ? ` (${c.errors[0]})` : "")]);
  if (rep.kind === "video") {
    lines.push(rep.tag ? [true, `container tag: facedouble ${rep.tag.version}, run ${rep.tag.run_id}, AI-generated`]
      : [false, "container tag: none"]);
  }
  return lines;
}

async function verifyResult() {
  const name = resultName(), out = $("#verify-out"), button = $("#verify-run");
  out.textContent = "";
  if (!name) { flash("#verify-msg", "There is no result video yet; build it first.", true); return; }
  flash("#verify-msg", `checking ${name} ...`);
  button.disabled = true;
  try {
    const r = await api("/api/verify", { json: { path: name } });
    for (const [ok, text] of provenanceLines(r.report)) out.append(el("li", { class: ok ? "ok" : "bad", text }));
    flash("#verify-msg", r.report.marked ? `${r.path} is marked as AI-generated` : `${r.path} carries no facedouble mark`,
      !r.report.marked);
  } catch (e) { flash("#verify-msg", e.message, true); }
  button.disabled = false;
}

function fmtValue(v, unit) {
  if (v === null || v === undefined) return "—";
  const a = Math.abs(v), s = a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
  return unit ? `${s} ${unit}` : s;
}

function checkItem(c) {
  const [cls, word] = c.pass === null ? ["", "n/a"] : c.pass ? ["ok", "pass"] : ["bad", "fail"];
  return el("li", { class: "check", title: c.note || "" }, el("span", { class: "badge " + cls, text: word }),
    `${c.name}: ${fmtValue(c.value, c.unit)} (target ${c.op} ${fmtValue(c.target, c.unit)})`);
}

function identityItem(ident) {
  if (!ident || !ident.n) return el("li", { class: "hint", text: "identity: no swapped face could be measured" });
  const pct = (v) => (v === null ? "—" : Math.round(v * 100) + "%");
  return el("li", { class: "hint", text: `identity over ${ident.n} faces: ${pct(ident.same_as_src)} within ` +
    `${ident.same_person_threshold} of src; mean distance to src ${fmtValue(ident.mean_src)}, to dst ${fmtValue(ident.mean_dst)}` });
}

async function loadReport() {
  const list = $("#report-checks"), link = $("#report-link");
  let r;
  try { r = await api("/api/report/summary"); } catch (e) {
    list.textContent = ""; link.hidden = true;
    flash("#report-msg", e.message, e.status !== 404);
    if (e.status === 404) $("#report-msg").className = "hint";
    return;
  }
  const s = r.summary;
  list.textContent = "";
  for (const c of s.checks) list.append(checkItem(c));
  list.append(identityItem(s.identity));
  const verdict = s.pass === null ? "nothing could be measured" : s.pass ? "every check passes" : "some checks fail";
  flash("#report-msg", `${verdict} (made ${r.created}; ${r.coverage || ""})`);
  $("#report-msg").className = s.pass === null ? "hint" : s.pass ? "ok" : "bad";
  link.hidden = !r.html;
  link.href = "/api/report?v=" + r.version;
}

// ---------------------------------------------------------------- wiring
function showTab(name) {
  S.tab = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.id === "tab-" + name);
  clearInterval(T.timer);
  if (name === "faces") loadFaces().catch((e) => flash("#faces-count", e.message, true));
  if (name === "manual") loadManual().catch((e) => flash("#manual-msg", e.message, true));
  if (name === "train") { refreshTrain(); T.timer = setInterval(refreshTrain, 2000); }
  if (name === "merge") { loadMerge().catch((e) => flash("#merge-msg", e.message, true)); loadReport(); }
  if (name === "workspace") refreshState();
}

async function main() {
  S.options = await api("/api/options");
  renderStageForms();
  await refreshState();
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#job-cancel").addEventListener("click", () => api("/api/job/cancel", { json: {} }).then(pollJob));
  // faces
  const sortSel = $("#faces-sort");
  for (const c of S.options.sort.find((f) => f.name === "by").choices) sortSel.append(el("option", { value: c, text: c }));
  $("#faces-grid").addEventListener("scroll", () => renderFaces(false));
  window.addEventListener("resize", () => { if (S.tab === "faces") renderFaces(true); });
  $("#faces-side").addEventListener("change", loadFaces);
  $("#faces-folder").addEventListener("change", loadFaces);
  $("#faces-landmarks").addEventListener("change", () => F.current && showFace(F.current));
  $("#faces-trash").addEventListener("click", () => moveSelected("trash"));
  $("#faces-restore").addEventListener("click", () => moveSelected("restore"));
  $("#faces-undo").addEventListener("click", async () => {
    try { await api(`/api/faces/${$("#faces-side").value}/undo`, { json: {} }); } catch (e) { alert(e.message); }
    loadFaces();
  });
  $("#faces-sort-run").addEventListener("click", () =>
    startJob("sort", $("#faces-side").value, { by: sortSel.value }, {}));
  $("#faces-open-frame").addEventListener("click", () => {
    if (!F.info) return;
    $("#manual-side").value = $("#faces-side").value;
    document.querySelector("input[name=manual-set][value=all]").checked = true;
    showTab("manual");
    loadManual(F.info.source_filename);
  });
  S.onJobDone.push(() => { if (S.tab === "faces") loadFaces(); if (S.tab === "train") refreshTrain(); });
  // manual
  setupManualCanvas();
  $("#manual-side").addEventListener("change", () => loadManual());
  for (const r of document.querySelectorAll("input[name=manual-set]")) r.addEventListener("change", () => loadManual());
  $("#manual-frame").addEventListener("change", () => openFrame(M.list.indexOf($("#manual-frame").value)));
  $("#manual-prev").addEventListener("click", () => openFrame(M.index - 1));
  $("#manual-next").addEventListener("click", () => openFrame(M.index + 1));
  $("#manual-skip").addEventListener("click", () => openFrame(M.index + 1));
  $("#manual-confirm").addEventListener("click", confirmManual);
  $("#manual-refix").addEventListener("click", () => startJob("manual-fix-deleted", $("#manual-side").value, {}, {}));
  document.addEventListener("keydown", (ev) => {
    if (S.tab !== "manual" || ["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName)) return;
    if (ev.key === "Enter") { ev.preventDefault(); confirmManual(); }
    else if (ev.key === " ") { ev.preventDefault(); openFrame(M.index + 1); }
    else if (ev.key === ",") openFrame(M.index - 1);
    else if (ev.key === ".") openFrame(M.index + 1);
  });
  // training
  T.getForm = buildForm($("#train-form"), S.options.train.filter((f) => !f.fixed));
  $("#train-start").addEventListener("click", () => startJob("train", null, T.getForm(), {}));
  $("#train-save").addEventListener("click", () => api("/api/job/save", { json: {} }).catch((e) => alert(e.message)));
  $("#train-stop").addEventListener("click", () => api("/api/job/cancel", { json: {} }));
  $("#train-scrub").addEventListener("input", showHistory);
  // merge
  $("#merge-frame").addEventListener("input", scheduleMergePreview);
  $("#merge-save").addEventListener("click", async () => {
    try { const r = await api("/api/merge/config", { json: { options: G.getForm() } }); flash("#merge-msg", "saved " + r.saved); }
    catch (e) { flash("#merge-msg", e.message, true); }
  });
  $("#merge-all").addEventListener("click", () => startJob("merge", null, G.getForm(), {}));
  $("#merge-build").addEventListener("click", () => startJob("build", null, {}, {}));
  $("#verify-run").addEventListener("click", verifyResult);
  $("#report-run").addEventListener("click", () => startJob("report", null, {}, {}));
  S.onJobDone.push((job) => {
    if (job.name === "build" && job.state === "done") {
      const v = $("#result-video");
      v.src = "/api/result/result.mp4?t=" + Date.now();
      $("#verify-out").textContent = "";
      flash("#verify-msg", "");
    }
    if (job.name === "report") loadReport();
  });
  pollJob();
}

main().catch((e) => { document.body.prepend(el("p", { class: "error", text: "Could not start: " + e.message })); });
