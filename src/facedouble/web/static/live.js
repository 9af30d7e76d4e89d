// facedouble browser UI: the Live tab (web/live.py). Loaded after app.js and uses its helpers ($, el, api,
// buildForm, flash, notify, pollJob, S). One live swap at a time, run as the UI's job: the page starts it,
// shows its output frames (the frames the outputs get, watermarked) as one MJPEG stream in the <img>
// (/api/live/mjpeg), or, where that fails, by fetching the newest frame as JPEG over and over; its fps /
// latency / dropped frames; and sends the controls' changes while it runs.
"use strict";

const L = { fields: null, settings: [], getStart: null, getControls: null, key: "", count: 0, url: null,
            framesOn: false, mjpegFailed: false, statusTimer: null, sendTimer: null, pending: new Set(), status: null, session: null };

function liveOn() { return S.tab === "live"; }

function liveList(id, values) {
  let list = document.getElementById(id);
  if (!list) { list = el("datalist", { id }); document.body.append(list); }
  list.textContent = "";
  for (const v of values) list.append(el("option", { value: v }));
  return id;
}

async function loadLive() {
  const o = await api("/api/live/options");
  L.settings = o.settings;
  if (!L.getStart) {
    const start = o.fields.filter((f) => !o.settings.includes(f.name));
    const controls = o.fields.filter((f) => o.settings.includes(f.name));
    L.getStart = buildForm($("#live-form"), start, { out: "none" }, null, { emptyText: "(not set)" });
    L.getControls = buildForm($("#live-controls"), controls, {}, liveControlChanged);
  }
  const inputs = L.getStart.inputs;
  inputs.source.input.setAttribute("list", liveList("live-sources", [...o.cameras, ...o.videos]));
  inputs.source.input.placeholder = "0, /dev/video0, a video file, udp://…";
  inputs.out.input.setAttribute("list", liveList("live-outs",
    ["none", "live.mp4", "udp://127.0.0.1:5000", "rtmp://127.0.0.1/live/stream", "vcam"]));
  inputs.model_name.input.setAttribute("list", liveList("live-models", o.models));
  inputs.model_file.input.setAttribute("list", liveList("live-dfm", o.dfm));
  const hint = o.models.length ? `the workspace's model (${o.models.join(", ")})` : "no trained model in this workspace";
  $("#live-model-note").textContent = `Model: ${hint}, or a .dfm file (model file). Output none: only this page.`;
  if (!inputs.source.input.value && o.videos.length) inputs.source.input.value = o.videos[0];
  await liveStatus();
}

function liveStatsText(st) {
  const s = st.stats || {};
  const ms = (v) => (v === null || v === undefined ? "—" : Math.round(v));
  return `${(s.fps || 0).toFixed(1)} fps · latency ${ms(s.latency_ms_median)} ms (p95 ${ms(s.latency_ms_p95)}) · ` +
    `${s.frames_out || 0} frames out, ${s.dropped || 0} dropped, ${s.faces || 0} with a face`;
}

function liveStepsText(st) {
  const steps = (st.stats && st.stats.step_ms) || {};
  return Object.entries(steps).map(([k, v]) => `${k} ${v} ms`).join(", ");
}

function liveShowStatus(st) {
  L.status = st;
  const running = st.running, starting = st.starting;
  $("#live-start").disabled = running || starting || !!st.busy;
  $("#live-stop").disabled = !(running || starting);
  $("#live-start").title = st.busy ? `${st.busy} is running` : "";
  let state;
  if (starting) state = "starting: opening the source and loading the models …";
  else if (running) state = `running: ${st.source.label} → ${st.out}; model ${st.model.name} (${st.model.resolution} px)`;
  else if (st.job && st.job.state === "failed") state = `stopped: ${st.job.message}`;
  else state = st.job && st.job.message ? `stopped — ${st.job.message}` : "stopped";
  if (st.busy && !running) state += ` (${st.busy} is running: start when it ends)`;
  $("#live-state").textContent = state;
  $("#live-state").className = st.job && st.job.state === "failed" && !running ? "error" : "hint";
  $("#live-stats").textContent = st.stats ? liveStatsText(st) : "";
  $("#live-stats").title = st.stats ? liveStepsText(st) : "";
  const morph = L.getControls && L.getControls.inputs.morph;
  if (morph) {       // the morph factor only where the model has one (its section too, when it holds only that)
    morph.row.hidden = !(st.morphable && running);
    morph.input.disabled = !(st.morphable && running);
    const group = morph.row.closest(".group");
    if (group) group.hidden = ![...group.querySelectorAll(".field")].some((r) => !r.hidden);
  }
  if (running && st.session !== L.session) {       // a new session: the controls show what it runs with
    L.session = st.session;
    L.getControls.set(st.settings);
  }
  if ((running || starting) && !L.framesOn && liveOn()) liveFrames();
}

async function liveStatus() {
  clearTimeout(L.statusTimer);
  try { liveShowStatus(await api("/api/live/status")); } catch (e) { flash("#live-msg", e.message, true); }
  if (liveOn()) L.statusTimer = setTimeout(liveStatus, L.status && (L.status.running || L.status.starting) ? 1000 : 3000);
}

function liveActive() { return !!(L.status && (L.status.running || L.status.starting)); }

function liveShown(img, key) {
  if (key && key !== img.dataset.key) {
    img.dataset.key = key;
    img.dataset.count = String(++L.count);
  }
  img.hidden = false;
  $("#live-none").hidden = true;
}

// the frames as one multipart JPEG stream in the <img>, while the session runs. Resolves true when it ran
// (the stream ends with the session), false when it failed before its first frame (then: polling)
async function liveMjpeg(img) {
  let first = false, failed = false;
  img.onload = () => { first = true; img.dataset.mode = "mjpeg"; liveShown(img, L.status && L.status.frame); };
  img.onerror = () => { failed = true; };
  img.src = `/api/live/mjpeg?t=${Date.now()}`;
  const started = Date.now();
  while (liveOn() && liveActive() && !failed) {
    await new Promise((ok) => setTimeout(ok, 200));
    // the frame the <img> shows is the newest one the server has: its key comes with the status
    if (first) liveShown(img, L.status && L.status.frame);
    else if (L.status && L.status.frame && Date.now() - started > 15000) failed = true;  // frames, none shown
  }
  img.onload = img.onerror = null;
  if (!liveOn()) img.removeAttribute("src");   // closes the stream; shown again on coming back
  if (failed && !first) { L.mjpegFailed = true; return false; }
  return true;
}

// the newest frame, again and again: the server answers when there is one newer than the one shown
async function liveFrames() {
  if (L.framesOn) return;
  L.framesOn = true;
  const img = $("#live-view");
  try {
    if (!L.mjpegFailed && await liveMjpeg(img)) return;
    img.dataset.mode = "poll";
    while (liveOn()) {
      let r;
      try { r = await api("/api/live/frame?after=" + encodeURIComponent(L.key), { raw: true }); }
      catch (e) { await new Promise((ok) => setTimeout(ok, 1000)); continue; }
      if (r.status === 204) {
        if (!(L.status && (L.status.running || L.status.starting))) break;
        continue;
      }
      const blob = await r.blob();
      const url = URL.createObjectURL(blob);
      await new Promise((ok) => { img.onload = ok; img.onerror = ok; img.src = url; });
      if (L.url) URL.revokeObjectURL(L.url);
      L.url = url;
      L.key = r.headers.get("X-Live-Frame") || "";
      img.dataset.key = L.key;
      img.dataset.count = String(++L.count);
      img.hidden = false;
      $("#live-none").hidden = true;
    }
  } finally { L.framesOn = false; }
}

function liveControlChanged(name) {
  L.pending.add(name);
  clearTimeout(L.sendTimer);
  L.sendTimer = setTimeout(liveSend, 150);
}

async function liveSend() {
  if (!(L.status && L.status.running)) { L.pending.clear(); return; }   // sent with Start instead
  const all = L.getControls(), settings = {};
  for (const name of L.pending) if (all[name] !== undefined) settings[name] = all[name];
  L.pending.clear();
  if (!Object.keys(settings).length) return;
  try {
    const st = await api("/api/live/settings", { json: { settings } });
    flash("#live-msg", Object.entries(settings).map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`).join(", "));
    liveShowStatus(st);
  } catch (e) { flash("#live-msg", e.message, true); }
}

async function liveStart() {
  $("#live-start").disabled = true;
  flash("#live-msg", "starting …");
  $("#live-state").textContent = "starting: opening the source and loading the models …";
  const options = { ...L.getStart(), ...L.getControls() };
  try {
    const st = await api("/api/live/start", { json: { options, extra: { realtime: $("#live-realtime").checked } } });
    flash("#live-msg", "");
    liveShowStatus(st);
    notify("Live started", "ok");
  } catch (e) {
    flash("#live-msg", e.message, true);
    notify(e.message, "error");
  }
  pollJob();
  liveStatus();
}

async function liveStop() {
  $("#live-stop").disabled = true;
  try { liveShowStatus(await api("/api/live/stop", { json: {} })); } catch (e) { notify(e.message, "error"); }
  liveStatus();
}

function liveShow() {
  if (!liveOn()) return;
  loadLive().catch((e) => flash("#live-msg", e.message, true));
}

document.querySelector("#tabs button[data-tab=live]").addEventListener("click", () => setTimeout(liveShow, 0));
$("#live-start").addEventListener("click", liveStart);
$("#live-stop").addEventListener("click", liveStop);
