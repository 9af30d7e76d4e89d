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

// One non-blocking place for results and errors (the page never calls alert()): a notice in the corner that
// goes away by itself (errors stay longer) or with its close button.
function notify(text, kind = "info") {
  const box = $("#notices");
  const n = el("div", { class: "notice " + kind, role: kind === "error" ? "alert" : "status" }, el("span", { text }));
  const close = () => n.remove();
  n.append(el("button", { type: "button", "aria-label": "close", text: "\u00d7", onclick: close }));
  box.append(n);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(close, kind === "error" ? 15000 : 6000);
  return n;
}

const S = { options: null, state: null, tab: "workspace", jobSeq: 0, jobId: null, jobState: null, onJobDone: [],
            onJobChange: [] };

// ---------------------------------------------------------------- option forms from the config schema
// Every form is generated from /api/options (config.py's field metadata): fields are put in their group's
// section (in the order the groups first appear, "advanced" last and folded), each as one row of a label
// column, the control with its unit and range, and the help text shown while the field has focus.
let fieldSeq = 0;

function rangeText(f) {
  const num = (v) => (Math.abs(v) >= 1e5 ? v.toExponential(0) : String(v));
  if (f.lo === null || f.hi === null) return f.unit || "";
  return `${f.unit ? f.unit + ", " : ""}${num(f.lo)}\u2013${num(f.hi)}`;
}

function buildForm(container, fields, values = {}, onChange = null, opts = {}) {
  const inputs = {};
  const groups = new Map();
  const order = [...new Set(fields.map((f) => f.group))].sort((a, b) => (a === "advanced") - (b === "advanced"));
  for (const g of order) {
    const box = g === "advanced" || (opts.folded || []).includes(g)
      ? el("details", { class: "group", "data-group": g }, el("summary", { text: g }))
      : el("fieldset", { class: "group", "data-group": g }, el("legend", { text: g }));
    groups.set(g, box);
    container.append(box);
  }
  const emptyText = opts.emptyText || "(empty)";
  for (const f of fields) {
    const v = values[f.name] !== undefined ? values[f.name] : f.default;
    const id = `f${++fieldSeq}-${f.name}`;
    let input;
    if (f.kind === "choice") {
      input = el("select", { name: f.name, id });
      if (f.optional) input.append(el("option", { value: "", text: emptyText }));
      for (const c of f.choices) input.append(el("option", { value: c, text: c }));
    } else if (f.kind === "bool" && f.optional) {
      input = el("select", { name: f.name, id }, el("option", { value: "", text: emptyText }),
        el("option", { value: "true", text: "yes" }), el("option", { value: "false", text: "no" }));
    } else if (f.kind === "bool") {
      input = el("input", { type: "checkbox", name: f.name, id, role: "switch" });
    } else if (f.kind === "int" || f.kind === "float") {
      input = el("input", { type: "number", name: f.name, id, step: f.kind === "int" ? "1" : "any",
        min: f.lo ?? undefined, max: f.hi ?? undefined, placeholder: f.optional ? emptyText : "" });
    } else {
      input = el("input", { type: "text", name: f.name, id, placeholder: f.optional ? emptyText : "" });
    }
    const helpId = id + "-help";
    input.setAttribute("aria-describedby", helpId);
    const row = el("div", { class: "field", "data-name": f.name },
      el("label", { for: id, text: f.label || f.name.replaceAll("_", " "), title: f.flag }),
      el("div", { class: "control" }, input, el("span", { class: "unit", text: rangeText(f) })),
      el("p", { class: "help", id: helpId, text: f.help }));
    inputs[f.name] = { input, f, row };
    setValue(inputs[f.name], v);
    input.addEventListener(input.type === "number" || input.type === "text" ? "input" : "change", () => {
      if (opts.onEdit) opts.onEdit(f.name);
      if (onChange) onChange(f.name);
    });
    groups.get(f.group).append(row);
  }
  const get = () => {
    const out = {};
    for (const [name, { input, f }] of Object.entries(inputs)) {
      if (input.disabled && !opts.sendDisabled) continue;
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
  get.set = (vals) => { for (const [name, v] of Object.entries(vals || {})) if (inputs[name]) setValue(inputs[name], v); };
  get.inputs = inputs;
  return get;
}

function setValue(it, v) {
  if (it.input.type === "checkbox") it.input.checked = !!v;
  else if (it.f.kind === "bool" && it.f.optional) it.input.value = v === null || v === undefined ? "" : String(v);
  else it.input.value = v === null || v === undefined ? "" : String(v);
}

// The stages of the Workspace tab, in pipeline order: [stage, title, has a side]. Training has its own tab.
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
    notify(`${r.job.name} started`);
    pollJob();
    return r.job;
  } catch (e) { notify(e.message, "error"); return null; }
}

function renderStageForms() {
  const box = $("#stage-forms");
  box.textContent = "";
  for (const [stage, title, sided] of STAGES) {
    const fs = el("details", { class: "stage form", id: "form-" + stage, name: "stage", open: stage === "video-extract" },
      el("summary", { text: title }));
    box.append(fs);
    if (stage === "train") {
      fs.append(el("p", { class: "hint", text: "Training has its own tab: the model's options with their current " +
        "values, start, save and stop, the preview and the loss and identity plots." }),
        el("button", { type: "button", class: "small", text: "Open the Training tab", onclick: () => showTab("train") }));
      continue;
    }
    let sideSel = null;
    if (sided) {
      sideSel = el("select", { name: "side", id: `side-${stage}` }, el("option", { text: "src" }), el("option", { text: "dst" }));
      fs.append(el("div", { class: "field side" }, el("label", { for: `side-${stage}`, text: "side" }),
        el("div", { class: "control" }, sideSel, el("span", { class: "unit", text: "src: the face put in; dst: the video" }))));
    }
    const get = buildForm(fs, S.options[stage]);
    const prefill = () => api(`/api/saved/${stage}` + (sideSel ? "?side=" + sideSel.value : ""))
      .then((r) => r.saved && get.set(r.options)).catch(() => {});
    if (stage === "extract" || stage === "merge") { prefill(); if (sideSel) sideSel.addEventListener("change", prefill); }
    const extra = {};
    const actions = el("div", { class: "stage-actions" });
    if (stage === "merge") {
      extra.force = el("input", { type: "checkbox", name: "force", id: "merge-force", role: "switch" });
      actions.append(el("label", { class: "inline", for: "merge-force" }, extra.force, "merge every frame again"));
    }
    actions.prepend(el("button", { type: "button", class: "run small", text: "Run " + title.toLowerCase(), onclick: () => {
      const ex = {};
      if (extra.force) ex.force = extra.force.checked;
      startJob(stage, sideSel ? sideSel.value : null, get(), ex);
    } }));
    fs.append(actions);
  }
}

async function refreshState() {
  const st = await api("/api/state");
  S.state = st;
  $("#ws-path").textContent = st.workspace;
  $("#ws-path").title = st.workspace;
  const tb = $("#stage-table tbody");
  tb.textContent = "";
  const row = (name, a, b) => tb.append(el("tr", {}, el("td", { text: name }), el("td", { text: a }), el("td", { text: b })));
  const sd = st.sides;
  row("video", sd.src.video.join(", ") || "\u2014", sd.dst.video.join(", ") || "\u2014");
  row("frames", sd.src.frames, sd.dst.frames);
  row("faces (aligned)", sd.src.faces, sd.dst.faces);
  row("trash", sd.src.trash, sd.dst.trash);
  row("frames with no face", sd.src.no_face ?? "\u2014", sd.dst.no_face ?? "\u2014");
  row("model", st.model.name ? `${st.model.name}, iteration ${st.model.iteration}` : "none", "");
  row("merged frames", "", st.merged);
  row("result", "", st.results.map((r) => `${r.name} (${(r.bytes / 1e6).toFixed(1)} MB)`).join(", ") || "\u2014");
  const name = resultName();
  const video = $("#result-video");
  if (name && !video.getAttribute("src")) video.src = "/api/result/" + name;
  video.hidden = !name;
  $("#result-none").hidden = !!name;
  $("#verify-run").disabled = !name;
}

function resultName() {
  const results = (S.state && S.state.results) || [];
  const r = results.find((x) => x.name === "result.mp4") || results[0];
  return r ? r.name : null;
}

// ---------------------------------------------------------------- jobs: polling, progress, log, cancel
let pollTimer = null, barTimer = null;
const jobRunning = () => S.jobState === "running";

async function pollJob() {
  clearTimeout(pollTimer);
  let r;
  try { r = await api("/api/job?since=" + S.jobSeq); } catch (e) { pollTimer = setTimeout(pollJob, 2000); return; }
  const job = r.job;
  if (job) {
    if (job.id !== S.jobId) { S.jobId = job.id; S.jobSeq = 0; }
    const log = $("#log");
    for (const line of job.log) { log.textContent += line.text + "\n"; S.jobSeq = line.seq; }
    if (log.textContent) { log.hidden = false; $("#log-empty").hidden = true; }
    if (job.log.length) log.scrollTop = log.scrollHeight;
    const p = job.progress, bar = $("#jobbar");
    const finishedNow = S.jobState === "running" && job.state !== "running";
    if (job.state === "running" || finishedNow) { bar.hidden = false; clearTimeout(barTimer); }
    bar.className = job.state === "running" ? "" : job.state === "done" ? "done" : "failed";
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
    $("#job-cancel").hidden = job.state !== "running";
    $("#job-close").hidden = job.state === "running";
    if (finishedNow) {
      notify(`${job.name}: ${job.state}${job.message ? " \u2014 " + job.message : ""}`, job.state === "done" ? "ok" : "error");
      barTimer = setTimeout(() => { bar.hidden = true; }, 12000);
      S.jobState = job.state;
      refreshState();
      for (const fn of S.onJobDone) fn(job);
    }
    S.jobState = job.state;
  }
  for (const fn of S.onJobChange) fn(job);
  pollTimer = setTimeout(pollJob, job && job.state === "running" ? 500 : 3000);
}

// ---------------------------------------------------------------- faceset browser (virtual scrolling)
const F = { names: [], version: "", selected: new Set(), last: -1, cell: 134, current: null };

async function loadFaces() {
  const side = $("#faces-side").value, folder = $("#faces-folder").value;
  const r = await api(`/api/faces/${side}?folder=${folder}`);
  F.names = r.names; F.version = r.version; F.selected.clear(); F.last = -1;
  $("#faces-count").textContent = `${r.count} faces`;
  if (F.current && !F.names.includes(F.current)) clearFaceDetail();     // it moved away: show what is there
  const empty = $("#faces-empty");
  empty.hidden = F.names.length > 0;
  empty.textContent = folder === "trash"
    ? `The ${side} trash is empty: faces moved to the trash by sorting or by hand are kept here, never deleted.`
    : `No aligned ${side} faces yet: run Extract faces for ${side} in the Workspace tab.`;
  updateFaceButtons();
  renderFaces(true);
}

function updateFaceButtons() {
  const folder = $("#faces-folder").value, none = F.selected.size === 0;
  $("#faces-trash").hidden = folder !== "aligned";
  $("#faces-restore").hidden = folder !== "trash";
  $("#faces-trash").disabled = none || jobRunning();
  $("#faces-restore").disabled = none || jobRunning();
  $("#faces-sort-run").disabled = folder !== "aligned" || !F.names.length || jobRunning();
  const n = F.selected.size;
  $("#faces-trash").textContent = n > 1 ? `Move ${n} selected to trash` : "Move selected to trash";
  $("#faces-restore").textContent = n > 1 ? `Restore ${n} selected` : "Restore selected";
}

function clearFaceDetail() {
  F.current = null; F.info = null;
  $("#faces-big").hidden = true;
  $("#faces-big").removeAttribute("src");
  $("#faces-info").textContent = "";
  $("#faces-none").hidden = false;
  $("#faces-open-frame").disabled = true;
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
  updateFaceButtons();
  showFace(name);
}

async function showFace(name) {
  const side = $("#faces-side").value, folder = $("#faces-folder").value;
  F.current = name;
  const lm = $("#faces-landmarks").checked ? "&landmarks=true" : "";
  $("#faces-big").src = `/api/faces/${side}/image/${encodeURIComponent(name)}?folder=${folder}${lm}&v=${F.version}`;
  $("#faces-big").hidden = false;
  $("#faces-none").hidden = true;
  try {
    const info = await api(`/api/faces/${side}/info/${encodeURIComponent(name)}?folder=${folder}`);
    F.info = info.record;
    $("#faces-info").textContent = info.record
      ? `${name}\nframe ${info.record.source_filename}, face ${info.record.face_index}, ${info.record.face_type} ${info.record.size}px, ${info.record.detector}`
      : `${name} (no face record)`;
    $("#faces-open-frame").disabled = !info.record;
  } catch (e) { flash("#faces-info", e.message, true); }
}

async function moveSelected(kind) {
  const side = $("#faces-side").value;
  const names = [...F.selected];
  if (!names.length) return;
  try {
    const r = await api(`/api/faces/${side}/${kind}`, { json: { names } });
    const what = kind === "trash" ? "moved to the trash" : "restored";
    notify(`${r.moved.length} face${r.moved.length === 1 ? "" : "s"} ${what}` +
      (r.missing.length ? `; ${r.missing.length} were no longer there` : "") + " (Undo reverses it)", "ok");
  } catch (e) { notify(e.message, "error"); }
  await loadFaces();
  refreshState();
}

// ---------------------------------------------------------------- manual extraction editor
const M = { frames: [], list: [], index: 0, img: null, rect: null, lm: null, scale: 1, drag: null, busy: false, pending: false };

const SET_NAMES = { no_face: "frames with no face", all: "all frames", deleted_debug: "deleted debug frames" };

async function loadManual(keepFrame) {
  const side = $("#manual-side").value;
  if (!M.list.length) flash("#manual-msg", `reading the frames of data_${side} ...`);
  const r = await api(`/api/frames/${side}`);
  const set = document.querySelector("input[name=manual-set]:checked").value;
  M.list = set === "all" ? r.frames : r[set];
  const sel = $("#manual-frame");
  sel.textContent = "";
  for (const n of M.list) sel.append(el("option", { value: n, text: n }));
  let i = keepFrame ? M.list.indexOf(keepFrame) : 0;
  if (i < 0) i = Math.min(M.index, M.list.length - 1);
  flash("#manual-msg", M.list.length ? `${M.list.length} frames` : "");
  showManualEmpty(M.list.length ? null : { side, set, counts: { no_face: r.no_face.length, all: r.frames.length,
    deleted_debug: r.deleted_debug.length } });
  if (M.list.length) openFrame(Math.max(0, i)); else clearCanvas();
}

// With nothing to edit: say what the tab is for and offer the frame sets that do hold frames.
function showManualEmpty(info) {
  const empty = $("#manual-empty");
  empty.hidden = !info;
  $("#manual-editor").hidden = !!info;
  for (const id of ["#manual-prev", "#manual-next", "#manual-confirm", "#manual-skip", "#manual-frame"]) $(id).disabled = !!info;
  if (!info) return;
  const { side, set, counts } = info;
  $("#manual-empty-title").textContent = counts.all === 0
    ? `data_${side} has no frames yet`
    : set === "no_face" ? `Every ${side} frame has a face` : `No ${SET_NAMES[set]} in data_${side}`;
  $("#manual-empty-text").textContent = counts.all === 0
    ? `Extract the frames of data_${side} first (Workspace tab, Extract frames).`
    : set === "no_face" ? `Face extraction found a face in all ${counts.all} frames of data_${side}. ` +
      "To fix a wrong face, open a frame from all frames, or delete its image from aligned_debug and use deleted debug."
    : set === "deleted_debug" ? `No aligned_debug image of data_${side} was deleted. Deleting the debug image of a ` +
      "frame whose face is wrong marks it for re-extraction here." : "";
  const actions = $("#manual-empty-actions");
  actions.textContent = "";
  for (const [key, label] of Object.entries(SET_NAMES)) {
    if (key === set || !counts[key]) continue;
    actions.append(el("button", { type: "button", class: "secondary small", text: `Show ${label} (${counts[key]})`,
      onclick: () => { document.querySelector(`input[name=manual-set][value=${key}]`).checked = true; loadManual(); } }));
  }
  const other = side === "dst" ? "src" : "dst";
  actions.append(el("button", { type: "button", class: "secondary outline small", text: `Switch to ${other}`,
    onclick: () => { $("#manual-side").value = other; loadManual(); } }));
}

function clearCanvas() {
  const c = $("#manual-canvas");
  c.getContext("2d").clearRect(0, 0, c.width, c.height);
  M.img = null; M.rect = null; M.lm = null;
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
  if (!M.list.length || !M.img) return;
  if (!M.rect) { flash("#manual-msg", "Draw the face rectangle first.", true); return; }
  const side = $("#manual-side").value, name = M.list[M.index];
  try {
    const r = await api(`/api/manual/${side}/confirm`, { json: { frame: name, rect: M.rect.map((v) => Math.round(v)) } });
    flash("#manual-msg", `saved ${r.face}`);
    notify(`saved ${r.face}`, "ok");
    refreshState();
    const set = document.querySelector("input[name=manual-set]:checked").value;
    if (set === "all") openFrame(M.index + 1);
    else { const next = M.list[M.index + 1]; await loadManual(next); }
  } catch (e) { flash("#manual-msg", e.message, true); }
}

// ---------------------------------------------------------------- XSeg mask editor
// Include and exclude polygons on an aligned face, in the face's own pixels, saved into the face file's record
// (PUT /api/xseg/{side}/labels/{name}). A click adds a point to the polygon being drawn (or starts one of the
// chosen kind); a click on its first point, or Enter, closes it; a drag moves a point; the wheel zooms about
// the cursor and a right-drag pans. Every edit can be undone. Moving to another face saves the one left.
const XS = { faces: [], list: [], index: -1, side: null, name: null, size: 0, img: null, polys: [], active: -1,
             sel: null, hover: null, undo: [], redo: [], saved: "[]", zoom: 1, cx: 0, cy: 0, drag: null,
             overlay: { mesh: null, xseg: null }, hasXseg: false, seq: 0 };
const MASK_COLORS = { include: [18, 183, 106], exclude: [240, 68, 56], mesh: [46, 144, 250], xseg: [247, 144, 9] };
const MASK_HIT = 8;                  // screen px within which a click takes a point

const maskSide = () => $("#mask-side").value;
const maskMode = () => document.querySelector("input[name=mask-mode]:checked").value;
const maskScale = () => ($("#mask-canvas").width / (XS.size || 1)) * XS.zoom;
const maskLabels = () => JSON.stringify(XS.polys.map((p) => [p.kind, p.pts]));
const maskDirty = () => !!XS.name && maskLabels() !== XS.saved;

function maskToScreen([x, y]) {
  const c = $("#mask-canvas"), s = maskScale();
  return [(x - XS.cx) * s + c.width / 2, (y - XS.cy) * s + c.height / 2];
}

function maskEventPoint(ev) {           // canvas pixels of a mouse event, and the face pixels under it
  const c = $("#mask-canvas"), b = c.getBoundingClientRect(), s = maskScale();
  const sx = (ev.clientX - b.left) * (c.width / b.width), sy = (ev.clientY - b.top) * (c.height / b.height);
  return { sx, sy, x: (sx - c.width / 2) / s + XS.cx, y: (sy - c.height / 2) / s + XS.cy };
}

const maskClamp = (v) => Math.min(XS.size, Math.max(0, Math.round(v * 100) / 100));

function maskHit(sx, sy) {
  let best = null, dist = MASK_HIT;
  XS.polys.forEach((p, i) => p.pts.forEach((pt, j) => {
    const [x, y] = maskToScreen(pt), d = Math.hypot(x - sx, y - sy);
    if (d <= dist) { dist = d; best = { poly: i, pt: j }; }
  }));
  return best;
}

function maskSnapshot() { return JSON.stringify({ polys: XS.polys, active: XS.active }); }

function maskEdit() {                   // call before changing the polygons: makes the change undoable
  XS.undo.push(maskSnapshot());
  if (XS.undo.length > 300) XS.undo.shift();
  XS.redo = [];
}

function maskUndo(redo) {
  const [from, to] = redo ? [XS.redo, XS.undo] : [XS.undo, XS.redo];
  if (!from.length) return;
  to.push(maskSnapshot());
  const snap = JSON.parse(from.pop());
  XS.polys = snap.polys; XS.active = snap.active; XS.sel = null;
  drawMask();
}

function maskClose() {
  const p = XS.polys[XS.active];
  if (!p) return;
  if (p.pts.length < 3) { flash("#mask-msg", "A polygon needs at least 3 points; add more or delete it (Shift+Del).", true); return; }
  maskEdit();
  p.closed = true; XS.active = -1; XS.sel = null;
  drawMask();
}

function maskDeletePoint() {
  const s = XS.sel;
  if (!s || !XS.polys[s.poly]) return;
  maskEdit();
  const p = XS.polys[s.poly];
  p.pts.splice(s.pt, 1);
  if (!p.pts.length) { XS.polys.splice(s.poly, 1); XS.active = -1; }
  else if (p.pts.length < 3 && p.closed) { p.closed = false; XS.active = s.poly; }
  XS.sel = null;
  drawMask();
}

function maskDeletePolygon() {
  const i = XS.sel ? XS.sel.poly : XS.active;
  if (i < 0 || i === undefined || !XS.polys[i]) { flash("#mask-msg", "Click a point of the polygon to delete first.", true); return; }
  maskEdit();
  XS.polys.splice(i, 1);
  XS.active = XS.active === i ? -1 : XS.active > i ? XS.active - 1 : XS.active;
  XS.sel = null;
  drawMask();
}

function maskZoom(factor, sx, sy) {
  const c = $("#mask-canvas");
  if (sx === undefined) { sx = c.width / 2; sy = c.height / 2; }
  const s0 = maskScale(), fx = (sx - c.width / 2) / s0 + XS.cx, fy = (sy - c.height / 2) / s0 + XS.cy;
  XS.zoom = Math.min(16, Math.max(1, XS.zoom * factor));
  const s1 = maskScale();
  XS.cx = fx - (sx - c.width / 2) / s1; XS.cy = fy - (sy - c.height / 2) / s1;
  if (XS.zoom === 1) { XS.cx = XS.size / 2; XS.cy = XS.size / 2; }
  drawMask();
}

function drawMask() {
  const c = $("#mask-canvas"), g = c.getContext("2d"), W = c.width, H = c.height;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.fillStyle = "#1f2633"; g.fillRect(0, 0, W, H);
  c.dataset.face = XS.name || "";
  c.dataset.polys = String(XS.polys.length);
  const dirty = maskDirty();
  $("#mask-save").disabled = !XS.name;
  const inc = XS.polys.filter((p) => p.kind === "include").length, exc = XS.polys.length - inc;
  $("#mask-state").textContent = XS.name ? `${XS.name}, ${XS.size} px: ${inc} include and ${exc} exclude ` +
    `polygon${exc === 1 ? "" : "s"}${dirty ? " (not saved)" : ""}; zoom ${XS.zoom.toFixed(1)}x` : "";
  if (!XS.img) return;
  const s = maskScale();
  g.setTransform(s, 0, 0, s, W / 2 - XS.cx * s, H / 2 - XS.cy * s);
  g.imageSmoothingEnabled = XS.zoom < 4;
  g.drawImage(XS.img, 0, 0, XS.size, XS.size);
  for (const kind of ["mesh", "xseg"]) if ($(`#mask-show-${kind}`).checked && XS.overlay[kind]) g.drawImage(XS.overlay[kind], 0, 0, XS.size, XS.size);
  g.setTransform(1, 0, 0, 1, 0, 0);
  // the label as training sees it: the include polygons tinted, less the exclude ones (exclude wins)
  const layer = XS.layer || (XS.layer = document.createElement("canvas"));
  layer.width = W; layer.height = H;
  const lg = layer.getContext("2d");
  for (const kind of ["include", "exclude"]) {
    lg.globalCompositeOperation = kind === "include" ? "source-over" : "destination-out";
    lg.fillStyle = `rgb(${MASK_COLORS.include.join(",")})`;
    for (const p of XS.polys) {
      if (p.kind !== kind || p.pts.length < 3) continue;
      lg.beginPath();
      p.pts.map(maskToScreen).forEach(([x, y], k) => (k ? lg.lineTo(x, y) : lg.moveTo(x, y)));
      lg.closePath(); lg.fill();
    }
  }
  g.globalAlpha = 0.3; g.drawImage(layer, 0, 0); g.globalAlpha = 1;
  XS.polys.forEach((p, i) => {
    const [r, gr, b] = MASK_COLORS[p.kind], pts = p.pts.map(maskToScreen), open = i === XS.active;
    if (!pts.length) return;
    g.beginPath();
    pts.forEach(([x, y], k) => (k ? g.lineTo(x, y) : g.moveTo(x, y)));
    if (!open) g.closePath();
    g.strokeStyle = `rgb(${r},${gr},${b})`; g.lineWidth = 2; g.setLineDash(open ? [6, 4] : []); g.stroke(); g.setLineDash([]);
    pts.forEach(([x, y], k) => {
      const sel = XS.sel && XS.sel.poly === i && XS.sel.pt === k, hov = XS.hover && XS.hover.poly === i && XS.hover.pt === k;
      const half = sel || hov || (open && k === 0) ? 5 : 3.5;
      g.fillStyle = sel ? "#fff" : `rgb(${r},${gr},${b})`;
      g.fillRect(x - half, y - half, 2 * half, 2 * half);
      g.strokeStyle = "#000"; g.lineWidth = 1; g.strokeRect(x - half, y - half, 2 * half, 2 * half);
    });
  });
}

async function loadMaskOverlay(kind) {
  const side = XS.side, name = XS.name, seq = XS.seq;
  if (!name || XS.overlay[kind]) { drawMask(); return; }
  try {
    const r = await api(`/api/xseg/${side}/overlay/${encodeURIComponent(name)}?kind=${kind}`, { raw: true });
    const bmp = await createImageBitmap(await r.blob());
    if (seq !== XS.seq) return;
    const c = document.createElement("canvas");
    c.width = bmp.width; c.height = bmp.height;
    const g = c.getContext("2d");
    g.drawImage(bmp, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height), [r0, g0, b0] = MASK_COLORS[kind];
    for (let i = 0; i < d.data.length; i += 4) {       // grey mask -> the overlay's colour, translucent
      const a = d.data[i];
      d.data[i] = r0; d.data[i + 1] = g0; d.data[i + 2] = b0; d.data[i + 3] = Math.round(a * 0.45);
    }
    g.putImageData(d, 0, 0);
    XS.overlay[kind] = c;
  } catch (e) {
    if (seq !== XS.seq) return;
    $(`#mask-show-${kind}`).checked = false;
    flash("#mask-msg", e.message, true);
  }
  drawMask();
}

function renderMaskList() {
  const box = $("#mask-list");
  box.textContent = "";
  XS.list.forEach((f, i) => {
    box.append(el("div", { class: "mask-item" + (f.labelled ? " labelled" : "") + (i === XS.index ? " current" : ""),
      role: "option", "data-name": f.name, "data-index": i, "aria-selected": i === XS.index ? "true" : "false",
      title: f.labelled ? "labelled" : "no labels yet" },
    el("span", { class: "mark", text: f.labelled ? "\u25cf" : "\u25cb" }), el("span", { text: f.name }),
    f.xseg ? el("small", { text: "xseg" }) : ""));
  });
}

function markMaskList() {
  for (const d of document.querySelectorAll("#mask-list .mask-item")) {
    const i = +d.dataset.index, f = XS.list[i];
    d.classList.toggle("current", i === XS.index);
    d.setAttribute("aria-selected", i === XS.index ? "true" : "false");
    d.classList.toggle("labelled", !!(f && f.labelled));
    d.querySelector(".mark").textContent = f && f.labelled ? "\u25cf" : "\u25cb";
  }
  const cur = document.querySelector("#mask-list .mask-item.current");
  if (cur) cur.scrollIntoView({ block: "nearest" });
  $("#mask-pos").textContent = XS.list.length ? `${XS.index + 1} of ${XS.list.length}` : "";
  $("#mask-prev").disabled = $("#mask-next").disabled = XS.list.length < 2;
}

async function loadMask() {
  if (maskDirty() && XS.side === maskSide()) {       // coming back to the tab with unsaved edits: keep them
    markMaskList(); drawMask(); return;
  }
  const side = maskSide(), filter = $("#mask-filter").value;
  if (XS.side !== side || !XS.faces.length) flash("#mask-msg", `reading the ${side} faces ...`);
  const r = await api(`/api/xseg/${side}/faces`);
  XS.faces = r.faces;
  XS.list = r.faces.filter((f) => filter === "all" || (filter === "labelled") === f.labelled);
  const keep = XS.side === side ? XS.name : null;
  flash("#mask-msg", `${r.count} faces, ${r.labelled} labelled`);
  const empty = !XS.list.length;
  $("#mask-empty").hidden = !empty;
  $("#mask-editor").hidden = empty;
  if (empty) {
    $("#mask-empty-title").textContent = r.count ? `No ${filter === "labelled" ? "labelled" : "unlabelled"} ${side} faces`
      : `No aligned ${side} faces yet`;
    $("#mask-empty-text").textContent = r.count ? `All ${r.count} ${side} faces are ${filter === "labelled" ? "without labels" : "labelled"}; choose all faces above.`
      : `Run Extract faces for ${side} in the Workspace tab first (or import a faceset of the original tool with facedouble util import-dfl: its polygons come along).`;
    XS.index = -1; XS.name = null; XS.img = null; XS.polys = [];
    markMaskList(); $("#mask-save").disabled = true;
    return;
  }
  renderMaskList();
  const i = keep ? XS.list.findIndex((f) => f.name === keep) : -1;
  await openMaskFace(i >= 0 ? i : 0, false);
}

async function saveMask() {
  if (!XS.name) return true;
  const bad = XS.polys.findIndex((p) => p.pts.length < 3);
  if (bad >= 0) {
    const msg = `Polygon ${bad + 1} has only ${XS.polys[bad].pts.length} point(s): add points or delete it (Shift+Del) before saving.`;
    flash("#mask-msg", msg, true); notify(msg, "error");
    return false;
  }
  const body = { include: XS.polys.filter((p) => p.kind === "include").map((p) => p.pts),
                 exclude: XS.polys.filter((p) => p.kind === "exclude").map((p) => p.pts) };
  const side = XS.side, name = XS.name, labels = maskLabels();
  try {
    const r = await api(`/api/xseg/${side}/labels/${encodeURIComponent(name)}`, { method: "PUT", json: body });
    if (XS.name === name) XS.saved = labels;
    for (const f of XS.faces) if (f.name === name) f.labelled = r.labelled;
    flash("#mask-msg", r.labelled ? `saved ${r.include.length} include and ${r.exclude.length} exclude polygons into ${name}`
      : `saved: ${name} has no labels now`);
    markMaskList(); drawMask();
    return true;
  } catch (e) {
    flash("#mask-msg", e.message, true); notify(e.message, "error");
    return false;
  }
}

function loadImageUrl(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`Could not load ${url}.`));
    img.src = url;
  });
}

async function openMaskFace(i, save = true) {
  if (!XS.list.length) return;
  i = (i + XS.list.length) % XS.list.length;
  if (save && maskDirty() && !(await saveMask())) return;     // a face is never left with unsaved edits
  const side = maskSide(), name = XS.list[i].name, seq = ++XS.seq;
  XS.index = i;
  markMaskList();
  let lab, img;
  try {
    [lab, img] = await Promise.all([api(`/api/xseg/${side}/labels/${encodeURIComponent(name)}`),
      loadImageUrl(`/api/faces/${side}/image/${encodeURIComponent(name)}?t=${Date.now()}`)]);
  } catch (e) { if (seq === XS.seq) flash("#mask-msg", e.message, true); return; }
  if (seq !== XS.seq) return;
  Object.assign(XS, { side, name, img, size: lab.size, active: -1, sel: null, hover: null, undo: [], redo: [],
    zoom: 1, cx: lab.size / 2, cy: lab.size / 2, overlay: { mesh: null, xseg: null }, hasXseg: lab.xseg });
  XS.polys = [...lab.include.map((pts) => ({ kind: "include", pts, closed: true })),
              ...lab.exclude.map((pts) => ({ kind: "exclude", pts, closed: true }))];
  XS.saved = maskLabels();
  const xs = $("#mask-show-xseg");
  xs.disabled = !lab.xseg;
  xs.parentElement.title = lab.xseg ? "the XSeg mask applied to this face" : "no applied XSeg mask: train XSeg, then xseg apply";
  if (!lab.xseg) xs.checked = false;
  drawMask();
  for (const kind of ["mesh", "xseg"]) if ($(`#mask-show-${kind}`).checked) loadMaskOverlay(kind);
}

async function copyPreviousMask() {
  if (!XS.name || XS.index <= 0) { flash("#mask-msg", "There is no previous face in the list to copy from.", true); return; }
  const prev = XS.list[XS.index - 1].name;
  try {
    const lab = await api(`/api/xseg/${XS.side}/labels/${encodeURIComponent(prev)}`);
    if (!lab.include.length && !lab.exclude.length) { flash("#mask-msg", `${prev} has no polygons to copy.`, true); return; }
    const k = XS.size / lab.size, scale = (pts) => pts.map(([x, y]) => [maskClamp(x * k), maskClamp(y * k)]);
    maskEdit();
    XS.polys = [...lab.include.map((p) => ({ kind: "include", pts: scale(p), closed: true })),
                ...lab.exclude.map((p) => ({ kind: "exclude", pts: scale(p), closed: true }))];
    XS.active = -1; XS.sel = null;
    flash("#mask-msg", `copied ${XS.polys.length} polygons of ${prev} (Ctrl+Z takes them back)`);
    drawMask();
  } catch (e) { flash("#mask-msg", e.message, true); }
}

function toggleMaskOverlay(kind) {
  const box = $(`#mask-show-${kind}`);
  if (box.disabled) { flash("#mask-msg", `${XS.name || "This face"} has no applied XSeg mask: train XSeg, then run xseg apply.`, true); return; }
  box.checked = !box.checked;
  if (box.checked) loadMaskOverlay(kind); else drawMask();
}

function setupMask() {
  const c = $("#mask-canvas");
  c.addEventListener("contextmenu", (ev) => ev.preventDefault());
  c.addEventListener("mousedown", (ev) => {
    if (!XS.img) return;
    ev.preventDefault();
    c.focus({ preventScroll: true });                   // the keys act on the canvas, not on a select left focused
    const p = maskEventPoint(ev);
    if (ev.button !== 0) { XS.drag = { pan: true, sx: p.sx, sy: p.sy, cx: XS.cx, cy: XS.cy }; return; }
    const hit = maskHit(p.sx, p.sy);
    if (hit && hit.poly === XS.active && hit.pt === 0 && XS.polys[hit.poly].pts.length >= 3) { maskClose(); return; }
    if (hit) { XS.sel = hit; XS.drag = { point: hit, before: maskSnapshot(), moved: false }; drawMask(); return; }
    maskEdit();
    const pt = [maskClamp(p.x), maskClamp(p.y)];
    if (XS.polys[XS.active]) XS.polys[XS.active].pts.push(pt);
    else { XS.polys.push({ kind: maskMode(), pts: [pt], closed: false }); XS.active = XS.polys.length - 1; }
    XS.sel = { poly: XS.active, pt: XS.polys[XS.active].pts.length - 1 };
    drawMask();
  });
  window.addEventListener("mousemove", (ev) => {
    if (S.tab !== "mask" || !XS.img) return;
    const p = maskEventPoint(ev), d = XS.drag;
    if (!d) {
      const hov = ev.target === c ? maskHit(p.sx, p.sy) : null;
      if (JSON.stringify(hov) !== JSON.stringify(XS.hover)) { XS.hover = hov; c.style.cursor = hov ? "move" : "crosshair"; drawMask(); }
      return;
    }
    if (d.pan) {
      const s = maskScale();
      XS.cx = d.cx - (p.sx - d.sx) / s; XS.cy = d.cy - (p.sy - d.sy) / s;
    } else {
      if (!d.moved) { XS.undo.push(d.before); XS.redo = []; d.moved = true; }
      XS.polys[d.point.poly].pts[d.point.pt] = [maskClamp(p.x), maskClamp(p.y)];
    }
    drawMask();
  });
  window.addEventListener("mouseup", () => { XS.drag = null; });
  c.addEventListener("wheel", (ev) => {
    if (!XS.img) return;
    ev.preventDefault();
    const p = maskEventPoint(ev);
    maskZoom(ev.deltaY < 0 ? 1.25 : 0.8, p.sx, p.sy);
  }, { passive: false });
  $("#mask-list").addEventListener("click", (ev) => {
    const item = ev.target.closest(".mask-item");
    if (item) openMaskFace(+item.dataset.index);
  });
  $("#mask-side").addEventListener("change", async () => {
    if (maskDirty() && !(await saveMask())) { $("#mask-side").value = XS.side; return; }
    loadMask().catch((e) => flash("#mask-msg", e.message, true));
  });
  $("#mask-filter").addEventListener("change", async () => {
    if (maskDirty() && !(await saveMask())) return;
    loadMask().catch((e) => flash("#mask-msg", e.message, true));
  });
  $("#mask-prev").addEventListener("click", () => openMaskFace(XS.index - 1));
  $("#mask-next").addEventListener("click", () => openMaskFace(XS.index + 1));
  $("#mask-save").addEventListener("click", () => saveMask());
  $("#mask-close").addEventListener("click", maskClose);
  $("#mask-del-point").addEventListener("click", maskDeletePoint);
  $("#mask-del-poly").addEventListener("click", maskDeletePolygon);
  $("#mask-undo").addEventListener("click", () => maskUndo(false));
  $("#mask-redo").addEventListener("click", () => maskUndo(true));
  $("#mask-copy").addEventListener("click", copyPreviousMask);
  $("#mask-zoom-in").addEventListener("click", () => maskZoom(1.25));
  $("#mask-zoom-out").addEventListener("click", () => maskZoom(0.8));
  $("#mask-zoom-fit").addEventListener("click", () => maskZoom(1 / XS.zoom));
  for (const kind of ["mesh", "xseg"]) {
    $(`#mask-show-${kind}`).addEventListener("change", (ev) => (ev.target.checked ? loadMaskOverlay(kind) : drawMask()));
  }
  for (const r of document.querySelectorAll("input[name=mask-mode]")) {
    r.addEventListener("change", () => {                // the polygon being drawn takes the new kind too
      const p = XS.polys[XS.active];
      if (p && p.kind !== maskMode()) { maskEdit(); p.kind = maskMode(); drawMask(); }
    });
  }
  const setMode = (kind) => {
    document.querySelector(`input[name=mask-mode][value=${kind}]`).checked = true;
    document.querySelector(`input[name=mask-mode][value=${kind}]`).dispatchEvent(new Event("change"));
  };
  document.addEventListener("keydown", (ev) => {
    if (S.tab !== "mask" || !XS.name || ["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName) && ev.target.type !== "radio"
        && ev.target.type !== "checkbox") return;
    const key = ev.key.toLowerCase(), ctrl = ev.ctrlKey || ev.metaKey;
    let done = true;
    if (ctrl && key === "z") maskUndo(ev.shiftKey);
    else if (ctrl && key === "y") maskUndo(true);
    else if (ctrl && key === "s") saveMask();
    else if (ctrl || ev.altKey) done = false;
    else if (ev.key === "Enter") maskClose();
    else if (ev.key === "Delete" || ev.key === "Backspace") (ev.shiftKey ? maskDeletePolygon : maskDeletePoint)();
    else if (ev.key === "Escape") { XS.active = -1; XS.sel = null; drawMask(); }
    else if (key === "i") setMode("include");
    else if (key === "e") setMode("exclude");
    else if (key === "s") saveMask();
    else if (key === "c") copyPreviousMask();
    else if (key === "m") toggleMaskOverlay("mesh");
    else if (key === "x") toggleMaskOverlay("xseg");
    else if (ev.key === "+" || ev.key === "=") maskZoom(1.25);
    else if (ev.key === "-") maskZoom(0.8);
    else if (ev.key === "0") maskZoom(1 / XS.zoom);
    else if (ev.key === ",") openMaskFace(XS.index - 1);
    else if (ev.key === ".") openMaskFace(XS.index + 1);
    else done = false;
    if (done) ev.preventDefault();
  });
  window.addEventListener("beforeunload", (ev) => { if (maskDirty()) { ev.preventDefault(); ev.returnValue = ""; } });
}

// ---------------------------------------------------------------- plots
// A line chart drawn at the canvas's displayed size (sharp on high-DPI screens): axes with ticks and labels,
// a legend, optional dashed reference lines. series: [{label, color, points: [[x, y], ...] (y null = gap)}].
function niceStep(span, count) {
  const raw = span / Math.max(1, count), mag = 10 ** Math.floor(Math.log10(raw || 1)), f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

function tickText(v, step) {
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  if (Math.abs(v) >= 10000) return (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k";
  return v.toFixed(Math.min(digits, 4));
}

function lineChart(canvas, { series, xLabel, yLabel, refs = [], yMin = null, yMax = null, empty = "no data yet",
                              integerX = false }) {
  const dpr = window.devicePixelRatio || 1, W = canvas.clientWidth || 480, H = canvas.clientHeight || 240;
  canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  g.font = "12px system-ui, sans-serif"; g.textBaseline = "middle";
  const pts = series.flatMap((s) => s.points.filter((p) => p[1] !== null && Number.isFinite(p[1])));
  if (!pts.length) { g.fillStyle = "#667085"; g.textAlign = "center"; g.fillText(empty, W / 2, H / 2); return; }
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = yMin ?? Math.min(...pts.map((p) => p[1]), ...refs.map((r) => r.y));
  let y1 = yMax ?? Math.max(...pts.map((p) => p[1]), ...refs.map((r) => r.y));
  if (x1 === x0) { x0 -= integerX ? 1 : 0.5; x1 += integerX ? 1 : 0.5; }
  if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
  const ys = niceStep(y1 - y0, 5);
  if (yMin === null) y0 = Math.floor(y0 / ys) * ys;
  if (yMax === null) y1 = Math.ceil(y1 / ys) * ys;
  // legend above the plot, wrapped onto as many rows as it needs
  g.font = "12px system-ui, sans-serif";
  const rows = [[]];
  let used = 0;
  for (const s of series) {
    const w = 23 + g.measureText(s.label).width + 16;
    if (used + w > W - 56 && rows[rows.length - 1].length) { rows.push([]); used = 0; }
    rows[rows.length - 1].push(s); used += w;
  }
  const L = 56, R = 12, T = 12 + rows.length * 18, B = 40;
  const X = (v) => L + ((v - x0) / (x1 - x0)) * (W - L - R), Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  // grid and ticks
  g.strokeStyle = "#eaecf0"; g.fillStyle = "#475467"; g.lineWidth = 1;
  g.textAlign = "right";
  for (let v = y0; v <= y1 + ys * 1e-6; v += ys) {
    g.beginPath(); g.moveTo(L, Y(v)); g.lineTo(W - R, Y(v)); g.stroke();
    g.fillText(tickText(v, ys), L - 6, Y(v));
  }
  const xs = Math.max(integerX ? 1 : 0, niceStep(x1 - x0, Math.max(2, Math.floor((W - L - R) / 90))));
  g.textAlign = "center"; g.textBaseline = "top";
  for (let v = Math.ceil(x0 / xs) * xs; v <= x1 + xs * 1e-6; v += xs) {
    g.beginPath(); g.moveTo(X(v), T); g.lineTo(X(v), H - B); g.stroke();
    g.fillText(tickText(v, xs), X(v), H - B + 5);
  }
  g.strokeStyle = "#98a2b3";
  g.beginPath(); g.moveTo(L, T); g.lineTo(L, H - B); g.lineTo(W - R, H - B); g.stroke();
  // axis labels
  g.fillStyle = "#344054"; g.fillText(xLabel, L + (W - L - R) / 2, H - 17);
  g.save(); g.translate(13, T + (H - T - B) / 2); g.rotate(-Math.PI / 2); g.textBaseline = "middle";
  g.fillText(yLabel, 0, 0); g.restore();
  // reference lines
  g.textBaseline = "bottom"; g.textAlign = "right";
  for (const r of refs) {
    g.strokeStyle = "#667085"; g.setLineDash([5, 4]);
    g.beginPath(); g.moveTo(L, Y(r.y)); g.lineTo(W - R, Y(r.y)); g.stroke(); g.setLineDash([]);
    g.fillStyle = "#475467"; g.fillText(r.label, W - R - 2, Y(r.y) - 2);
  }
  // series
  for (const s of series) {
    g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = 2; g.beginPath();
    let open = false;
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y)) { open = false; continue; }
      if (open) g.lineTo(X(x), Y(y)); else g.moveTo(X(x), Y(y));
      open = true;
    }
    g.stroke();
    if (s.points.length <= 40) for (const [x, y] of s.points) if (y !== null) g.fillRect(X(x) - 2.5, Y(y) - 2.5, 5, 5);
  }
  // legend, above the plot
  g.textAlign = "left"; g.textBaseline = "middle"; g.lineWidth = 2;
  rows.forEach((row, k) => {
    let lx = L;
    const ly = 10 + k * 18;
    for (const s of row) {
      g.strokeStyle = s.color; g.beginPath(); g.moveTo(lx, ly); g.lineTo(lx + 18, ly); g.stroke();
      g.fillStyle = "#344054"; g.fillText(s.label, lx + 23, ly);
      lx += 23 + g.measureText(s.label).width + 16;
    }
  });
}

// ---------------------------------------------------------------- training monitor
const T = { history: [], getForm: null, timer: null, lastMtime: 0, current: null, existing: false, model: null,
            training: false };

function drawLoss(loss) {
  const c = $("#train-loss");
  const n = loss ? loss.src.length : 0;
  c.dataset.points = String(n);
  const at = (i) => i * (loss.step || 1) + 1;
  const pts = (arr) => arr.map((v, i) => [at(i), v]);
  lineChart(c, { series: n ? [{ label: `src loss ${loss.src[n - 1]}`, color: "#d33", points: pts(loss.src) },
    { label: `dst loss ${loss.dst[n - 1]}`, color: "#33d", points: pts(loss.dst) }] : [],
  xLabel: "iteration", yLabel: "loss (lower is better)", integerX: true,
  empty: "no loss history yet: it starts with training" });
}

const SAME_PERSON = 0.6;     // dlib's same-person distance

function drawIdentity(rows) {
  const c = $("#train-identity");
  rows = rows || [];
  c.dataset.points = String(rows.length);
  const pts = (key) => rows.map((r) => [r.iteration, r[key]]);
  const end = rows[rows.length - 1], num = (v) => (v === null || v === undefined ? "\u2014" : v.toFixed(2));
  lineChart(c, { series: rows.length ? [
    { label: `nearer src ${end.nearer_src === null ? "\u2014" : Math.round(end.nearer_src * 100) + "%"}`, color: "#2a2", points: pts("nearer_src") },
    { label: `distance to src ${num(end.mean_src)}`, color: "#d33", points: pts("mean_src") },
    { label: `to dst ${num(end.mean_dst)}`, color: "#99c", points: pts("mean_dst") }] : [],
  refs: [{ y: SAME_PERSON, label: "0.6: same person below" }], yMin: 0,
  xLabel: "iteration", yLabel: "share / dlib distance", integerX: true,
  empty: "no identity scores yet: one per training preview" });
}

// The training form shows the values a run would use now: the existing model's, else the preset's. A changed
// training option is sent with override_options; the model shape of an existing model is fixed (shown, disabled).
async function loadTrainOptions(preset) {
  let r;
  try { r = await api("/api/train/options" + (preset ? "?model=" + encodeURIComponent(preset) : "")); }
  catch (e) { $("#train-form-note").textContent = e.message; $("#train-form-note").className = "error"; return; }
  T.current = r.values; T.existing = r.existing; T.model = r.model;
  T.getForm.set(r.values);
  for (const { input, f, row } of Object.values(T.getForm.inputs)) {
    const lock = r.existing && (f.fixed || f.name === "model");
    input.disabled = lock;
    row.classList.toggle("fixed", lock);
    row.classList.remove("changed");
    if (f.name === "override_options") row.hidden = true;      // set by the page when a value is changed
  }
  $("#train-form-note").className = "hint";
  $("#train-form-note").textContent = r.existing
    ? `Model ${r.model}: its current options. Model shape is fixed once a model exists; a changed training option ` +
      "applies from the next start (it is sent with override)."
    : `No model yet: a new ${r.model} model starts with these values (change any; choose another preset above).`;
}

function trainOptions() {
  const all = T.getForm(), out = {}, cur = T.current || {};
  let changed = false;
  for (const [name, v] of Object.entries(all)) {
    const f = T.getForm.inputs[name].f;
    if (name === "override_options") continue;
    if (name === "model" || f.group === "advanced" && !f.fixed && name !== "seed") { out[name] = v; continue; }
    if (v !== cur[name] && !(v === null && cur[name] === undefined)) { out[name] = v; if (!f.fixed) changed = true; }
  }
  out.model = T.model || all.model;       // the model select is disabled (so not in `all`) once a model exists
  if (T.existing && changed) out.override_options = true;
  return out;
}

function markTrainChanges(name) {
  if (name === "model" && !T.existing) { loadTrainOptions(T.getForm().model); return; }
  const all = T.getForm(), cur = T.current || {};
  for (const [n, { row }] of Object.entries(T.getForm.inputs)) row.classList.toggle("changed", n in all && all[n] !== cur[n]);
}

function updateTrainButtons() {
  $("#train-start").disabled = jobRunning();
  $("#train-save").disabled = !T.training;
  $("#train-stop").disabled = !T.training;
}

async function refreshTrain() {
  let st;
  try { st = await api("/api/train/status"); } catch (e) { return; }
  const rate = st.rate ? `${st.rate} it/s` : "";
  T.training = st.training;
  updateTrainButtons();
  $("#train-stats").textContent = st.name
    ? `${st.name}: iteration ${st.iteration} ${rate} ${st.training ? "(training)" : ""} ${st.status || ""}` : "no model yet";
  if (st.preview && st.preview_mtime !== T.lastMtime) {
    T.lastMtime = st.preview_mtime;
    $("#train-preview").src = "/api/train/preview?t=" + st.preview_mtime;
  }
  $("#train-preview").hidden = !st.preview;
  $("#train-preview-none").hidden = !!st.preview;
  drawLoss(st.loss);
  drawIdentity(st.identity);
  T.history = st.history || [];
  const s = $("#train-scrub");
  const atEnd = +s.value >= +s.max;
  s.max = Math.max(0, T.history.length - 1);
  s.disabled = T.history.length < 2;
  if (atEnd) s.value = s.max;
  showHistory();
  if ((T.shownModel === undefined || (st.name || null) !== T.shownModel) && !st.training) { T.shownModel = st.name || null; loadTrainOptions(); }
}

function showHistory() {
  const s = $("#train-scrub");
  const name = T.history[+s.value];
  $("#train-scrub-label").textContent = name ? `${+s.value + 1}/${T.history.length}: ${name}` : "no preview history (turn on write preview history)";
  $("#train-history").hidden = !name;
  if (name && $("#train-history").dataset.name !== name) {
    $("#train-history").dataset.name = name;
    $("#train-history").src = "/api/train/history/" + encodeURIComponent(name);
  }
}

// ---------------------------------------------------------------- merge tuner
// The slider's value is an index into the dst frame numbers (0 = the first frame), so Home and End reach the
// first and the last frame. Original and result sit side by side with the same zoom; a failed preview marks
// the result left on screen as stale.
// Per-frame settings, as the original interactive merger: the saved config (G.cfg) holds the run's options and
// `ranges` of frames with their own ({start, end, options}); the form shows the options of the frame on the
// slider, and the apply buttons store the form for this frame, this and the following frames (until the next
// change) or all frames (merge/ranges.py does it). Marks under the slider show the ranges.
const G = { getForm: null, timer: null, seq: 0, url: null, numbers: [], rects: {}, cfg: null, frameOptions: [],
            shown: null };                       // shown: the frame whose options the form was filled with

function mergeFrame() { return G.numbers[+$("#merge-frame").value] ?? 1; }

function rangeAt(number) {
  return ((G.cfg && G.cfg.ranges) || []).find((r) => r.start <= number && (r.end === null || number <= r.end)) || null;
}

function framesText(r) {
  if (r.end === null) return `frames ${r.start} to the last`;
  return r.end === r.start ? `frame ${r.start}` : `frames ${r.start}\u2013${r.end}`;
}

// the options frame `number` is merged with: the run's, with its range's on top (MergeConfig.for_frame)
function frameOptions(number) {
  const out = { ...(G.cfg || {}) };
  delete out.ranges;
  const r = rangeAt(number);
  return r ? { ...out, ...r.options } : out;
}

// the form's fields that differ from the frame's stored options are marked; returns how many
function markMergeChanges() {
  if (!G.getForm || !G.cfg) return 0;
  const want = frameOptions(G.shown ?? mergeFrame()), have = G.getForm();
  const str = (v) => (v === null || v === undefined ? "" : String(v));
  let n = 0;
  for (const [name, { row }] of Object.entries(G.getForm.inputs)) {
    const changed = name in have && str(have[name]) !== str(want[name]);
    row.classList.toggle("changed", changed);
    n += changed;
  }
  $("#merge-apply-note").textContent = n ? `${n} change(s) not applied` : "";
  return n;
}

function showFrameOptions() {
  const number = mergeFrame(), r = rangeAt(number);
  if (G.getForm && G.cfg) G.getForm.set(frameOptions(number));
  G.shown = number;
  $("#merge-frame-range").textContent = r ? `own settings: ${framesText(r)}` : "";
  markMergeChanges();
}

// ticks on the slider where a range starts (a datalist), and under it a bar for each range's frames
function renderRangeMarks() {
  const list = $("#merge-marks"), strip = $("#merge-ranges"), n = G.numbers.length;
  list.textContent = "";
  strip.textContent = "";
  if (!n) return;
  const at = (i) => (n > 1 ? i / (n - 1) : 0);
  for (const r of (G.cfg && G.cfg.ranges) || []) {
    const first = G.numbers.findIndex((x) => x >= r.start);
    if (first < 0) continue;
    let last = n - 1;
    if (r.end !== null) { while (last > first && G.numbers[last] > r.end) last--; }
    if (G.numbers[first] > (r.end ?? Infinity)) continue;        // no frame of the folder in the range
    list.append(el("option", { value: String(first), label: String(r.start) }));
    const opts = Object.entries(r.options).map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`).join(", ");
    strip.append(el("i", { class: "seg", "data-start": String(r.start), "data-end": r.end === null ? "" : String(r.end),
      title: `${framesText(r)}: ${opts}`,
      style: `left: calc(var(--thumb) / 2 + ${at(first)} * (100% - var(--thumb)) - 2px); ` +
             `width: calc(${at(last) - at(first)} * (100% - var(--thumb)) + 4px)` }));
  }
}

async function applyMerge(scope) {
  const number = mergeFrame();
  try {
    const r = await api("/api/merge/config", { json: { options: G.getForm(), frame: number, scope } });
    G.cfg = r.options;
    renderRangeMarks();
    showFrameOptions();
    const range = rangeAt(number);
    const where = scope === "all" ? "all frames" : range ? framesText(range)
      : scope === "frame" ? `frame ${number}` : `frames from ${number}`;
    flash("#merge-msg", `saved ${r.saved} (${where})`);
    notify(`Merge settings of ${where} saved to ${r.saved}`, "ok");
    if (r.run_changes && r.run_changes.length)
      notify(`${r.run_changes.map((k) => k.replaceAll("_", " ")).join(", ")}: set for every frame (cannot change per frame)`);
  } catch (e) { flash("#merge-msg", e.message, true); notify(e.message, "error"); }
}

function scheduleMergePreview() {
  clearTimeout(G.timer);
  G.timer = setTimeout(mergePreview, 120);
}

function applyZoom() {
  const number = mergeFrame(), rect = G.rects[String(number)], zoom = $("#merge-zoom").checked;
  for (const img of [$("#merge-original"), $("#merge-result")]) {
    const view = img.parentElement, W = img.naturalWidth, H = img.naturalHeight;
    if (W && H) view.style.aspectRatio = `${W} / ${H}`;
    if (!zoom || !rect || !W) { img.style.transform = ""; continue; }
    const k = view.clientWidth / W;                       // view px per image px
    const side = Math.max(rect[2] - rect[0], rect[3] - rect[1]) * 1.25;  // the face and a margin fill the height
    const z = Math.max(1, H / side);
    const cx = (rect[0] + rect[2]) / 2, cy = (rect[1] + rect[3]) / 2;
    const ox = Math.min(Math.max(0, cx - W / z / 2), W - W / z), oy = Math.min(Math.max(0, cy - H / z / 2), H - H / z);
    img.style.transform = `scale(${z}) translate(${-ox * k}px, ${-oy * k}px)`;
  }
}

function markStale(text) {
  const box = $("#merge-result-box");
  box.classList.toggle("stale", !!text);
  $("#merge-stale").textContent = text ? `Out of date: ${text}` : "";
}

async function mergePreview() {
  if (!G.getForm || !G.numbers.length) return;
  const seq = ++G.seq, number = mergeFrame();     // the form holds this frame's options (showFrameOptions)
  $("#merge-frame-label").textContent = `frame ${number} (${+$("#merge-frame").value + 1} of ${G.numbers.length})`;
  $("#merge-frame").dataset.frame = String(number);
  const orig = "/api/merge/original/" + number;
  if ($("#merge-original").getAttribute("src") !== orig) $("#merge-original").src = orig;
  applyZoom();
  try {
    const r = await api("/api/merge/preview", { json: { frame: number, options: G.getForm() }, raw: true });
    const blob = await r.blob();
    if (seq !== G.seq) return;
    if (G.url) URL.revokeObjectURL(G.url);
    G.url = URL.createObjectURL(blob);
    const img = $("#merge-result");
    img.src = G.url;
    img.dataset.seq = String(seq);
    img.dataset.frame = String(number);
    markStale(null);
    flash("#merge-msg", `preview in ${r.headers.get("X-Merge-Ms")} ms`);
  } catch (e) {
    if (seq !== G.seq) return;
    flash("#merge-msg", e.message, true);
    markStale(e.message);
  }
}

async function loadMerge() {
  const [frames, cfg] = await Promise.all([api("/api/merge/frames"), api("/api/merge/config")]);
  G.numbers = frames.numbers;
  G.rects = frames.rects || {};
  const s = $("#merge-frame");
  s.min = 0;
  s.max = Math.max(0, G.numbers.length - 1);
  s.disabled = !G.numbers.length;
  if (frames.with_face.length && !s.dataset.init) {
    s.dataset.init = "1";
    s.value = Math.max(0, G.numbers.indexOf(frames.with_face[0]));
  }
  const dirty = markMergeChanges();
  G.cfg = cfg.options;
  G.frameOptions = cfg.frame_options || [];
  if (!G.getForm) {
    const box = $("#merge-form");
    box.textContent = "";
    G.getForm = buildForm(box, S.options.merge, frameOptions(mergeFrame()),
      () => { markMergeChanges(); scheduleMergePreview(); }, { folded: ["output"] });
    for (const [name, { row, input }] of Object.entries(G.getForm.inputs)) {  // options of the whole run
      if (G.frameOptions.includes(name)) continue;
      row.classList.add("run-wide");
      input.title = "the same on every frame (cannot change per frame)";
    }
  }
  if (!dirty) showFrameOptions();                 // the saved settings (the CLI may have changed them)
  renderRangeMarks();
  for (const b of ["#merge-apply-frame", "#merge-apply-following", "#merge-save"]) $(b).disabled = !G.numbers.length;
  if (!G.numbers.length) {
    markStale(null);
    flash("#merge-msg", "data_dst has no frames yet: extract the dst video's frames first (Workspace tab).", true);
    return;
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
function updateJobButtons() {
  const busy = jobRunning();
  for (const b of document.querySelectorAll("#stage-forms button.run, #merge-all, #merge-build, #report-run, #manual-refix"))
    b.disabled = busy;
  $("#manual-confirm").disabled = busy || !M.list.length;
}

function showTab(name) {
  S.tab = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.id === "tab-" + name);
  clearInterval(T.timer);
  if (name === "faces") loadFaces().catch((e) => flash("#faces-count", e.message, true));
  if (name === "manual") loadManual().catch((e) => flash("#manual-msg", e.message, true));
  if (name === "mask") loadMask().catch((e) => flash("#mask-msg", e.message, true));
  if (name === "train") { refreshTrain(); T.timer = setInterval(refreshTrain, 2000); }
  if (name === "merge") { loadMerge().catch((e) => flash("#merge-msg", e.message, true)); loadReport(); }
  if (name === "workspace") refreshState();
}

async function main() {
  S.options = await api("/api/options");
  renderStageForms();
  await refreshState();
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#job-cancel").addEventListener("click", () => api("/api/job/cancel", { json: {} })
    .then(() => { notify("Cancelling: the stage stops at its next safe point"); pollJob(); })
    .catch((e) => notify(e.message, "error")));
  $("#job-close").addEventListener("click", () => { $("#jobbar").hidden = true; });
  // what cannot apply while a job runs is disabled, and enabled again when it ends
  S.onJobChange.push(() => { updateFaceButtons(); updateTrainButtons(); updateJobButtons(); });
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
    try {
      const r = await api(`/api/faces/${$("#faces-side").value}/undo`, { json: {} });
      notify(r.summary || "undone", "ok");
    } catch (e) { notify(e.message, "error"); }
    loadFaces();
    refreshState();
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
  // mask editor
  setupMask();
  // training
  T.getForm = buildForm($("#train-form"), S.options.train, {}, markTrainChanges, { emptyText: "(not set)" });
  $("#train-start").addEventListener("click", () => {
    const ex = {}, it = $("#train-max-it").value, min = $("#train-max-min").value;
    if (it) ex.max_iterations = parseInt(it, 10);
    if (min) ex.max_seconds = parseFloat(min) * 60;
    startJob("train", null, trainOptions(), ex).then((job) => job && refreshTrain());
  });
  $("#train-save").addEventListener("click", () => api("/api/job/save", { json: {} })
    .then(() => notify("Saving the model at the end of this iteration", "ok")).catch((e) => notify(e.message, "error")));
  $("#train-stop").addEventListener("click", () => api("/api/job/cancel", { json: {} })
    .then(() => notify("Training saves and stops at the end of this iteration", "ok")).catch((e) => notify(e.message, "error")));
  $("#train-scrub").addEventListener("input", showHistory);
  // merge
  $("#merge-frame").addEventListener("input", () => {
    const from = G.shown, lost = markMergeChanges();
    if (lost) notify(`${lost} change(s) on frame ${from} were not applied; the form now shows frame ${mergeFrame()}'s settings.`);
    showFrameOptions();
    scheduleMergePreview();
  });
  $("#merge-zoom").addEventListener("change", applyZoom);
  for (const img of [$("#merge-original"), $("#merge-result")]) img.addEventListener("load", applyZoom);
  window.addEventListener("resize", () => { if (S.tab === "merge") applyZoom(); if (S.tab === "train") refreshTrain(); });
  $("#merge-apply-frame").addEventListener("click", () => applyMerge("frame"));
  $("#merge-apply-following").addEventListener("click", () => applyMerge("following"));
  $("#merge-save").addEventListener("click", () => applyMerge("all"));
  $("#merge-all").addEventListener("click", () => {
    if (!((G.cfg && G.cfg.ranges) || []).length) return startJob("merge", null, G.getForm(), {});
    // with per-frame settings the saved config is merged (the form shows one frame's options)
    if (markMergeChanges()) notify("Merging with the saved settings: the changes in the form are not applied yet.");
    return startJob("merge", null, {}, {});
  });
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
