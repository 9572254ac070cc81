// The gateway's web page: pick or drop an image, POST /upscale, compare before/after, download.
// A large image goes through a job instead (POST /jobs, then GET /jobs/{id} until done): a real
// progress bar from its tiles, and a Cancel button (DELETE /jobs/{id}). A clip (MP4, WebM, MKV,
// MOV) always goes through a job, its bar counting frames, and plays in a <video> when done.
// Plain JS, no build step, nothing from other sites. The form's data-state attribute says where
// the page is (idle, ready, uploading, upscaling, done, error, cancelled), its data-job the job
// under way; tests read them.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("form");
  const fileInput = $("file");
  const drop = $("drop");
  const submit = $("submit");
  const progressBox = $("progress-box");
  const progress = $("progress");
  const statusText = $("status");
  const errorBox = $("error");
  const compareBox = $("compare-box");
  const compare = $("compare");
  const before = $("before");
  const result = $("result");
  const divider = $("divider");
  const slider = $("slider");
  const download = $("download");
  const cancelButton = $("cancel");
  const videoResult = $("video-result");

  // Images whose x4 output reaches this many pixels go through a job (imdsr upscale --jobs uses
  // the same figure, service/client.py DEFAULT_JOBS_ABOVE_MPX). Below it the direct request is
  // quicker (a job costs three requests more and half a poll on average) and over in about a
  // second on CPU at the gateway's starting rate (0.3 s per output Mpx); above it a bar that
  // moves and a way to stop matter. The network's work is the x4 output whatever the final size.
  const JOB_FROM_OUTPUT_PX = 4e6;
  const SCALE = 4;
  const POLL_MS = 500;

  // Content-Type -> {name, label, extension, ...} of each output format, from GET /formats
  const formatsByType = new Map();
  const videoFormats = new Set(); // the names `format=` takes for a clip (GET /formats, video)
  // What the page sends as a clip; the gateway decides by the bytes either way.
  const CLIP_NAME = /\.(mp4|m4v|mov|mkv|webm)$/i;

  let file = null;          // the chosen File
  let originalUrl = null;   // its object URL (the "before" picture)
  let originalShows = false; // whether the browser could decode it (TIFF, for one, it cannot)
  let resultUrl = null;     // object URL of the last result
  let timer = null;         // the "upscaling... N s" ticker
  let imageSize = Promise.resolve(null); // {width, height} of the chosen file, null if unknown
  let run = null;           // the upscale under way: {xhr, job, poll, cancelled}
  const apiKey = $("api-key");
  const apiKeyRow = $("api-key-row");

  // --- pure helpers (window.imdsrPage exposes them to tests) ----------------------------------

  /** The query string of POST /upscale: only the fields that are filled in. Width, height and fit
   * go only when given, so the page works with gateways that do not know them. */
  function buildQuery(values) {
    const q = new URLSearchParams();
    const text = (v) => (v == null ? "" : String(v).trim());
    if (text(values.model)) q.set("model", text(values.model));
    if (text(values.format)) q.set("format", text(values.format));
    const width = text(values.width);
    const height = text(values.height);
    if (width) q.set("width", width);
    if (height) q.set("height", height);
    // fit decides anything only when both sides are given
    if (width && height && text(values.fit)) q.set("fit", text(values.fit));
    if (text(values.outscale)) q.set("outscale", text(values.outscale));
    return q.toString();
  }

  /** The server's error JSON ({"error": code, "detail": ...}) as one readable line; status 0
   * with a body: a job's error, which has no HTTP status of its own. */
  function describeError(status, body, retryAfter) {
    let text;
    if (body && typeof body === "object" && typeof body.error === "string") {
      let detail = body.detail;
      if (Array.isArray(detail)) {
        detail = detail.map((d) => {
          if (!d || typeof d !== "object") return String(d);
          const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "query").join(".") : "";
          let line = [loc, d.msg].filter(Boolean).join(": ");
          if (d.max_tile) line += ` (largest tile: ${d.max_tile})`;
          return line || JSON.stringify(d);
        }).join("; ");
      } else if (detail && typeof detail === "object") {
        detail = JSON.stringify(detail);
      }
      text = status ? `${body.error} (HTTP ${status})` : body.error;
      if (detail && detail !== body.error) text += `: ${detail}`;
    } else {
      text = status ? `HTTP ${status}: the server's answer was not the expected JSON`
        : "no answer from the gateway (network error)";
    }
    if (retryAfter) text += ` - try again in ${retryAfter} s`;
    return text;
  }

  /** The media type of a Content-Type value: "image/avif; x=y" -> "image/avif". */
  function mediaType(contentType) {
    return String(contentType || "").split(";")[0].trim().toLowerCase();
  }

  /** The file extension of an answer, by its Content-Type: the gateway's own (GET /formats),
   * else the media type's subtype ("image/x" -> "x"); "bin" only for a type that is no image
   * nor video. */
  function extensionFor(contentType) {
    const media = mediaType(contentType);
    const known = formatsByType.get(media);
    if (known) return known.extension;
    const subtype = /^(?:image|video)\/([a-z0-9.+-]+)$/.exec(media);
    return subtype ? subtype[1] : "bin";
  }

  /** "<name>_x4.<ext>"; "_x<outscale>" or "_<w>x<h>" when those were asked for; the extension
   * follows the answer's Content-Type. */
  function downloadName(fileName, contentType, query, width, height) {
    const base = (fileName || "image").replace(/\.[^./\\]*$/, "") || "image";
    const ext = extensionFor(contentType);
    const params = new URLSearchParams(query || "");
    let suffix = "_x4";
    if (params.has("width") || params.has("height")) suffix = `_${width}x${height}`;
    else if (params.has("outscale")) suffix = `_x${params.get("outscale")}`;
    return `${base}${suffix}.${ext}`;
  }

  /** Whether an image goes through a job: by its x4 output's pixels; a file the browser cannot
   * decode (TIFF, HEIC) by its size, as if stored at 3 bytes a pixel (TIFF often is). */
  function usesJob(width, height, bytes, clip) {
    if (clip) return true; // minutes of work: the gateway takes clips only as jobs
    const pixels = width && height ? width * height : (bytes || 0) / 3;
    return pixels * SCALE * SCALE >= JOB_FROM_OUTPUT_PX;
  }

  /** Whether a file is a clip: its type, else its name. */
  function isClip(type, name) {
    return String(type || "").startsWith("video/") || CLIP_NAME.test(String(name || ""));
  }

  /** The `format` to send: the chosen one when it suits the file's kind (a clip's for a clip, a
   * picture's for a picture), else none (the gateway's default for that kind). */
  function formatFor(chosen, clip) {
    return chosen && videoFormats.has(chosen) === Boolean(clip) ? chosen : "";
  }

  /** A job's progress as {fraction, text}: fraction null while unknown (queued); a clip's
   * (``clip``) by its frames. */
  function jobProgress(job, clip) {
    const p = job.progress || {};
    if (job.status === "queued") return { fraction: null, text: "queued..." };
    if (clip && p.frames_total > 0) {
      return { fraction: Math.min(1, Math.max(0, p.frames_done / p.frames_total)),
               text: `upscaling: frame ${p.frames_done} of ${p.frames_total}` };
    }
    let fraction = null;
    const parts = [];
    if (p.tiles_total > 0) {
      fraction = p.tiles_done / p.tiles_total;
      parts.push(`tile ${p.tiles_done} of ${p.tiles_total}`);
    }
    if (p.frames_total > 1) {
      if (fraction === null) fraction = p.frames_done / p.frames_total;
      parts.push(`frame ${p.frames_done} of ${p.frames_total}`);
    }
    const text = parts.length ? `upscaling: ${parts.join(", ")}` : "upscaling...";
    return { fraction: fraction === null ? null : Math.min(1, Math.max(0, fraction)), text };
  }

  window.imdsrPage = { buildQuery, describeError, downloadName, extensionFor, usesJob, jobProgress,
                       isClip, formatFor };

  // --- state ----------------------------------------------------------------------------------

  function setState(state, text) {
    form.dataset.state = state;
    const busy = state === "uploading" || state === "upscaling";
    submit.disabled = busy || !file;
    fileInput.disabled = busy;
    progressBox.hidden = !["uploading", "upscaling", "done", "cancelled"].includes(state);
    progress.hidden = state === "cancelled";
    if (state === "upscaling") progress.removeAttribute("value"); // indeterminate until a job says
    cancelButton.hidden = !(busy && run && run.byJob);
    cancelButton.disabled = false;
    if (text !== undefined) statusText.textContent = text;
  }

  function showError(text) {
    stopTimer();
    run = null;
    errorBox.textContent = text;
    errorBox.hidden = false;
    progressBox.hidden = true;
    setState("error");
  }

  function stopTimer() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  // --- API key: asked for only once the gateway answers 401 (IMDSR_API_KEYS) -------------------

  function authHeaders() {
    const key = apiKey.value.trim();
    return key ? { "X-API-Key": key } : {};
  }

  function needsKey(status) {
    if (status !== 401) return;
    apiKeyRow.hidden = false;
  }

  apiKey.addEventListener("change", () => loadModels());

  // --- models ---------------------------------------------------------------------------------

  async function loadModels() {
    const select = $("model");
    const note = $("models-note");
    select.dataset.loaded = "loading";
    note.hidden = true;
    try {
      const response = await fetch("/models",
        { headers: { Accept: "application/json", ...authHeaders() } });
      let body = null;
      try { body = await response.json(); } catch (_) { /* shown below */ }
      if (!response.ok || !body || !Array.isArray(body.models)) {
        needsKey(response.status);
        throw new Error(describeError(response.status, body, response.headers.get("Retry-After")));
      }
      const keep = select.value;
      while (select.options.length > 1) select.remove(1); // all but "server default"
      const guide = $("model-guide");
      guide.replaceChildren();
      for (const m of body.models) {
        let label = m.variant;
        // e.g. "rlfn - RLFN, 317K params, 19.7 GFLOPs": what a user picks between
        if (m.arch) {
          const size = [];
          if (m.params) size.push(`${Math.round(m.params / 1000)}K params`);
          if (m.flops) size.push(`${(m.flops / 1e9).toFixed(1)} GFLOPs`);
          label += ` - ${m.arch.toUpperCase()}${size.length ? ", " + size.join(", ") : ""}`;
        }
        if (m.default) label += " (default)";
        if (!m.ready) label += ` - ${m.state || "not ready"}`;
        const option = new Option(label, m.variant);
        option.disabled = !m.ready;
        if (m.use_when) {
          // the registry's line on the inputs this model suits, as the model publishes it
          option.title = m.use_when;
          const item = document.createElement("li");
          item.dataset.variant = m.variant;
          const name = document.createElement("strong");
          name.textContent = m.variant;
          item.append(name, `: ${m.use_when}`);
          guide.append(item);
        }
        select.add(option);
        if (keep ? m.variant === keep : m.default && m.ready) option.selected = true;
      }
      guide.hidden = guide.children.length === 0;
      markChosenModel();
      select.dataset.loaded = "true";
    } catch (err) {
      note.textContent = apiKeyRow.hidden
        ? `Could not list the models (${err.message}); the server's default is used.`
        : `This gateway needs an API key: enter it below (${err.message}).`;
      note.hidden = false;
      select.dataset.loaded = "failed";
    }
  }

  // The guide's line of the model picked (none for "server default") stands out.
  function markChosenModel() {
    for (const item of $("model-guide").children) {
      item.classList.toggle("chosen", item.dataset.variant === $("model").value);
    }
  }
  $("model").addEventListener("change", markChosenModel);

  // --- output formats: the gateway's list, so the page offers every one it writes ------------

  async function loadFormats() {
    const select = $("format");
    select.dataset.loaded = "loading";
    try {
      const response = await fetch("/formats", { headers: { Accept: "application/json" } });
      const body = response.ok ? await response.json() : null;
      if (!body || !Array.isArray(body.formats)) throw new Error(`HTTP ${response.status}`);
      for (const f of body.formats) {
        formatsByType.set(mediaType(f.content_type), f);
        select.add(new Option(f.label, f.name));
      }
      // a clip's formats, in a group of their own: each file takes the one of its kind
      const clips = Array.isArray(body.video) ? body.video : [];
      if (clips.length) {
        const group = document.createElement("optgroup");
        group.label = "clips";
        for (const f of clips) {
          formatsByType.set(mediaType(f.content_type), f);
          videoFormats.add(f.name);
          group.append(new Option(f.label, f.name));
        }
        select.append(group);
      }
      select.dataset.loaded = "true";
    } catch (_) {
      select.dataset.loaded = "failed"; // "same as input" still works
    }
  }

  // --- picking a file -------------------------------------------------------------------------

  function chooseFile(chosen) {
    if (!chosen) return;
    file = chosen;
    if (originalUrl) URL.revokeObjectURL(originalUrl);
    originalUrl = URL.createObjectURL(file);
    originalShows = false;
    $("drop-text").textContent = file.name;
    $("file-info").textContent = `${formatBytes(file.size)}${file.type ? ", " + file.type : ""}`;
    const probe = new Image();
    imageSize = new Promise((resolve) => {
      probe.onload = () => {
        originalShows = true;
        if (probe.src === originalUrl) {
          $("file-info").textContent = `${probe.naturalWidth}x${probe.naturalHeight}, ` +
            `${formatBytes(file.size)}${file.type ? ", " + file.type : ""}`;
        }
        resolve({ width: probe.naturalWidth, height: probe.naturalHeight });
      };
      probe.onerror = () => resolve(null);
    });
    probe.src = originalUrl;
    errorBox.hidden = true;
    setState("ready", "");
  }

  fileInput.addEventListener("change", () => chooseFile(fileInput.files[0]));

  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (fileInput.disabled || !e.dataTransfer || !e.dataTransfer.files.length) return;
    fileInput.files = e.dataTransfer.files;
    chooseFile(e.dataTransfer.files[0]);
  });
  // a file dropped beside the zone must not make the browser navigate away from the page
  for (const name of ["dragover", "drop"]) {
    document.addEventListener(name, (e) => e.preventDefault());
  }

  // fit matters only when both width and height are given
  function updateFit() {
    $("fit").disabled = !($("width").value.trim() && $("height").value.trim());
  }
  $("width").addEventListener("input", updateFit);
  $("height").addEventListener("input", updateFit);
  updateFit();

  // --- upscaling ------------------------------------------------------------------------------

  function formValues() {
    const values = {};
    for (const name of ["model", "format", "width", "height", "fit", "outscale"]) {
      values[name] = $(name).value;
    }
    return values;
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  let sizing = false; // between a press of Upscale and the request: the size may still decode

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!file || sizing || form.dataset.state === "uploading" || form.dataset.state === "upscaling") return;
    const clip = isClip(file.type, file.name);
    const values = formValues();
    values.format = formatFor(values.format, clip);
    const query = buildQuery(values);
    const fit = values.fit;
    const bothSides = $("width").value.trim() && $("height").value.trim();
    sizing = true;
    let size;
    try { size = await imageSize; } finally { sizing = false; }
    const byJob = usesJob(size && size.width, size && size.height, file.size, clip);
    const current = { byJob, clip, started: performance.now(), xhr: null, job: null, poll: null,
                      cancelled: false, query, beforeFit: bothSides && fit === "cover" ? "cover" : "fill" };
    run = current;
    delete form.dataset.job;
    errorBox.hidden = true;
    progress.value = 0;
    setState("uploading", "uploading 0%");
    send(current, byJob ? "/jobs" : "/upscale");
  });

  /** POST the file (upload progress on the bar) to /upscale or /jobs with the run's query. */
  function send(current, path) {
    const xhr = new XMLHttpRequest();
    current.xhr = xhr;
    xhr.open("POST", path + (current.query ? "?" + current.query : ""));
    xhr.responseType = "blob";
    // the file's own type when it is an image or a clip, else let the server sniff the bytes
    const type = /^(image|video)\//.test(file.type || "") ? file.type : "application/octet-stream";
    xhr.setRequestHeader("Content-Type", type);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);

    xhr.upload.addEventListener("progress", (ev) => {
      if (!ev.lengthComputable || run !== current || form.dataset.state !== "uploading") return;
      progress.value = ev.loaded / ev.total;
      statusText.textContent = `uploading ${Math.round((100 * ev.loaded) / ev.total)}%`;
    });
    xhr.upload.addEventListener("load", () => {
      if (run !== current) return;
      setState("upscaling", current.byJob ? "queued..." : "upscaling...");
      if (!current.byJob) startTimer(current.started, () => "upscaling...");
    });
    xhr.addEventListener("error", () => { if (run === current) showError(describeError(0, null)); });
    xhr.addEventListener("load", async () => {
      if (run !== current) return; // cancelled meanwhile
      const answer = xhr.response;
      if (current.byJob) {
        if (xhr.status === 404 || xhr.status === 405) { // a gateway without jobs: ask directly
          current.byJob = false;
          setState("uploading", "uploading 0%");
          send(current, "/upscale");
          return;
        }
        await jobAccepted(current, xhr.status, answer, xhr.getResponseHeader("Retry-After"));
        return;
      }
      stopTimer();
      if (xhr.status !== 200) {
        await showErrorAnswer(xhr.status, answer, xhr.getResponseHeader("Retry-After"));
        return;
      }
      showResult(answer, current.query, current.beforeFit, xhr.getResponseHeader("X-Model") || "",
                 seconds(current));
    });
    xhr.send(file);
  }

  function seconds(current) {
    return ((performance.now() - current.started) / 1000).toFixed(1);
  }

  function startTimer(started, label) {
    stopTimer();
    timer = setInterval(() => {
      statusText.textContent = `${label()} ${Math.round((performance.now() - started) / 1000)} s`;
    }, 1000);
  }

  async function showErrorAnswer(status, blob, retryAfter) {
    let body = null;
    try { body = JSON.parse(await blob.text()); } catch (_) { /* not JSON */ }
    needsKey(status);
    showError(describeError(status, body, retryAfter));
  }

  // --- jobs: POST /jobs answered 202, then GET /jobs/{id} until it is done ----------------------

  async function jobAccepted(current, status, blob, retryAfter) {
    if (status !== 202 && current.cancelled) {
      cancelled(current, "cancelled");
      return;
    }
    if (status !== 202) {
      await showErrorAnswer(status, blob, retryAfter);
      return;
    }
    let job = null;
    try { job = JSON.parse(await blob.text()); } catch (_) { /* below */ }
    if (!job || typeof job.id !== "string") {
      showError(describeError(status, null));
      return;
    }
    current.job = job;
    form.dataset.job = job.id;
    if (current.cancelled) { // Cancel was pressed after the upload, before this answer
      await cancelJob(current);
      return;
    }
    setState("upscaling");
    followJob(current, job);
  }

  /** Whether the answers of a run still count: it is the page's, and not being cancelled. */
  function live(current) {
    return run === current && !current.cancelled;
  }

  /** Show the job's progress; poll again, or fetch its result once done. */
  async function followJob(current, job) {
    if (!live(current)) return;
    const shown = jobProgress(job, current.clip);
    if (shown.fraction === null) progress.removeAttribute("value");
    else progress.value = shown.fraction;
    statusText.textContent = `${shown.text} (${Math.round((performance.now() - current.started) / 1000)} s)`;
    if (job.status === "done") {
      await jobResult(current, job);
      return;
    }
    if (job.status === "failed" || job.status === "cancelled") {
      showError(job.error ? describeError(0, job.error) : `the job was ${job.status}`);
      return;
    }
    current.poll = setTimeout(() => pollJob(current, job.id), POLL_MS);
  }

  async function pollJob(current, id) {
    if (!live(current)) return;
    let response;
    try {
      response = await fetch(`/jobs/${encodeURIComponent(id)}`,
        { headers: { Accept: "application/json", ...authHeaders() } });
    } catch (_) {
      if (live(current)) showError(describeError(0, null));
      return;
    }
    if (!live(current)) return;
    if (response.status === 429 || response.status === 503) { // busy: ask again when told
      const wait = Number(response.headers.get("Retry-After")) || 1;
      current.poll = setTimeout(() => pollJob(current, id), Math.min(wait, 30) * 1000);
      return;
    }
    if (!response.ok) {
      await showErrorAnswer(response.status, await response.blob(), response.headers.get("Retry-After"));
      return;
    }
    followJob(current, await response.json());
  }

  async function jobResult(current, job) {
    const path = job.result || `/jobs/${encodeURIComponent(job.id)}/result`;
    let response;
    try {
      response = await fetch(path, { headers: authHeaders() });
    } catch (_) {
      if (live(current)) showError(describeError(0, null));
      return;
    }
    if (!live(current)) return;
    const blob = await response.blob();
    if (response.status !== 200) {
      await showErrorAnswer(response.status, blob, response.headers.get("Retry-After"));
      return;
    }
    run = null;
    showResult(blob, current.query, current.beforeFit, response.headers.get("X-Model") || "",
               seconds(current));
  }

  /** Stop the run: an upload still going is aborted (the gateway makes no job of a body cut
   * short); a job is deleted; one whose id is not back yet is deleted when it comes. */
  async function cancelJob(current) {
    current.cancelled = true;
    cancelButton.disabled = true;
    if (current.poll !== null) clearTimeout(current.poll);
    if (!current.job) {
      if (form.dataset.state !== "uploading") return; // jobAccepted() calls back here
      current.xhr.abort();
      cancelled(current, "cancelled");
      return;
    }
    let response = null;
    try {
      response = await fetch(`/jobs/${encodeURIComponent(current.job.id)}`,
        { method: "DELETE", headers: { Accept: "application/json", ...authHeaders() } });
    } catch (_) { /* below */ }
    if (run !== current) return;
    if (!response || !response.ok) {
      if (!response) showError(describeError(0, null));
      else await showErrorAnswer(response.status, await response.blob(), null);
      return;
    }
    cancelled(current, `cancelled (job ${current.job.id})`);
  }

  function cancelled(current, text) {
    stopTimer();
    run = null;
    setState("cancelled", text);
  }

  cancelButton.addEventListener("click", () => { if (run && run.byJob) cancelJob(run); });

  function showResult(blob, query, beforeFit, model, seconds) {
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = URL.createObjectURL(blob);
    const name = file.name;
    if (mediaType(blob.type).startsWith("video/")) {
      showClip(blob, query, model, seconds, name);
      return;
    }
    videoResult.hidden = true;
    videoResult.removeAttribute("src");
    compare.hidden = false;
    slider.hidden = false;
    result.onload = () => {
      const w = result.naturalWidth;
      const h = result.naturalHeight;
      compare.style.width = `${w}px`;
      slider.style.width = `${w}px`;
      compare.style.aspectRatio = `${w} / ${h}`;
      before.style.objectFit = beforeFit;
      before.hidden = !originalShows;
      slider.disabled = !originalShows;
      if (originalShows) before.src = originalUrl;
      else before.removeAttribute("src");
      setSplit(slider.value);
      resultReady(blob, name, query, w, h, `${model ? ", model " + model : ""}, ${seconds} s` +
        (originalShows ? "" : " (the browser cannot show the original: no before/after)"), seconds);
    };
    result.onerror = () => showError(`the result (${blob.type}, ${formatBytes(blob.size)}) ` +
      "could not be shown by this browser");
    result.src = resultUrl;
  }

  /** The download link, the info line ("WxH Format, size" and ``details``) and the done state,
   * once a result (picture or clip) is on the page. */
  function resultReady(blob, name, query, w, h, details, seconds) {
    download.href = resultUrl;
    download.download = downloadName(name, blob.type, query, w, h);
    const shown = formatsByType.get(mediaType(blob.type));
    $("result-info").textContent = `${w}x${h} ${shown ? shown.label : blob.type}, ` +
      `${formatBytes(blob.size)}${details}`;
    $("placeholder").hidden = true;
    compareBox.hidden = false;
    progress.value = 1;
    setState("done", `done in ${seconds} s`);
  }

  /** A clip's result: played in the <video> (no before/after), with its download link. */
  function showClip(blob, query, model, seconds, name) {
    videoResult.onloadedmetadata = () => {
      const w = videoResult.videoWidth;
      const h = videoResult.videoHeight;
      compare.hidden = true;
      slider.hidden = true;
      videoResult.hidden = false;
      resultReady(blob, name, query, w, h, `, ${videoResult.duration.toFixed(1)} s of video` +
        `${model ? ", model " + model : ""}, ${seconds} s`, seconds);
    };
    videoResult.onerror = () => showError(`the result (${blob.type}, ${formatBytes(blob.size)}) ` +
      "could not be played by this browser; download it from GET /jobs/{id}/result");
    videoResult.src = resultUrl;
  }

  // --- before/after slider: the result is clipped from the left, the original shows there -----

  function setSplit(percent) {
    const p = Math.min(100, Math.max(0, Number(percent)));
    result.style.clipPath = `inset(0 0 0 ${p}%)`;
    divider.style.left = `${p}%`;
  }

  slider.addEventListener("input", () => setSplit(slider.value));

  let dragging = false;
  function dragTo(ev) {
    const box = compare.getBoundingClientRect();
    const p = ((ev.clientX - box.left) / box.width) * 100;
    slider.value = String(Math.min(100, Math.max(0, p)));
    setSplit(slider.value);
  }
  compare.addEventListener("pointerdown", (ev) => {
    if (slider.disabled) return;
    dragging = true;
    compare.setPointerCapture(ev.pointerId);
    dragTo(ev);
  });
  compare.addEventListener("pointermove", (ev) => { if (dragging) dragTo(ev); });
  compare.addEventListener("pointerup", () => { dragging = false; });
  compare.addEventListener("pointercancel", () => { dragging = false; });

  setSplit(slider.value);
  setState("idle", "");
  loadFormats();
  loadModels();
})();
