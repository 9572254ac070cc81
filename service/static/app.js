// The gateway's web page: pick or drop an image, POST /upscale, compare before/after, download.
// Plain JS, no build step, nothing from other sites. The form's data-state attribute says where
// the page is (idle, ready, uploading, upscaling, done, error); tests read it.
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

  // Content-Type -> {name, label, extension, ...} of each output format, from GET /formats
  const formatsByType = new Map();

  let file = null;          // the chosen File
  let originalUrl = null;   // its object URL (the "before" picture)
  let originalShows = false; // whether the browser could decode it (TIFF, for one, it cannot)
  let resultUrl = null;     // object URL of the last result
  let timer = null;         // the "upscaling... N s" ticker
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

  /** The server's error JSON ({"error": code, "detail": ...}) as one readable line. */
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
      text = `${body.error} (HTTP ${status})`;
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
   * else the media type's subtype ("image/x" -> "x"); "bin" only for a type that is no image. */
  function extensionFor(contentType) {
    const media = mediaType(contentType);
    const known = formatsByType.get(media);
    if (known) return known.extension;
    const subtype = /^image\/([a-z0-9.+-]+)$/.exec(media);
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

  window.imdsrPage = { buildQuery, describeError, downloadName, extensionFor };

  // --- state ----------------------------------------------------------------------------------

  function setState(state, text) {
    form.dataset.state = state;
    const busy = state === "uploading" || state === "upscaling";
    submit.disabled = busy || !file;
    fileInput.disabled = busy;
    progressBox.hidden = state !== "uploading" && state !== "upscaling" && state !== "done";
    if (state === "upscaling") progress.removeAttribute("value"); // indeterminate
    if (text !== undefined) statusText.textContent = text;
  }

  function showError(text) {
    stopTimer();
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
        select.add(option);
        if (keep ? m.variant === keep : m.default && m.ready) option.selected = true;
      }
      select.dataset.loaded = "true";
    } catch (err) {
      note.textContent = apiKeyRow.hidden
        ? `Could not list the models (${err.message}); the server's default is used.`
        : `This gateway needs an API key: enter it below (${err.message}).`;
      note.hidden = false;
      select.dataset.loaded = "failed";
    }
  }

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
    probe.onload = () => {
      originalShows = true;
      if (probe.src === originalUrl) {
        $("file-info").textContent = `${probe.naturalWidth}x${probe.naturalHeight}, ` +
          `${formatBytes(file.size)}${file.type ? ", " + file.type : ""}`;
      }
    };
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

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!file || form.dataset.state === "uploading" || form.dataset.state === "upscaling") return;
    const query = buildQuery(formValues());
    const fit = formValues().fit;
    const bothSides = $("width").value.trim() && $("height").value.trim();
    const started = performance.now();
    errorBox.hidden = true;
    progress.value = 0;
    setState("uploading", "uploading 0%");

    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upscale" + (query ? "?" + query : ""));
    xhr.responseType = "blob";
    // the file's own type when it is an image, else let the server sniff the bytes
    const type = file.type && file.type.startsWith("image/") ? file.type : "application/octet-stream";
    xhr.setRequestHeader("Content-Type", type);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);

    xhr.upload.addEventListener("progress", (ev) => {
      if (!ev.lengthComputable || form.dataset.state !== "uploading") return;
      progress.value = ev.loaded / ev.total;
      statusText.textContent = `uploading ${Math.round((100 * ev.loaded) / ev.total)}%`;
    });
    xhr.upload.addEventListener("load", () => {
      setState("upscaling", "upscaling...");
      timer = setInterval(() => {
        statusText.textContent = `upscaling... ${Math.round((performance.now() - started) / 1000)} s`;
      }, 1000);
    });
    xhr.addEventListener("error", () => showError(describeError(0, null)));
    xhr.addEventListener("load", async () => {
      stopTimer();
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (xhr.status !== 200) {
        let body = null;
        try { body = JSON.parse(await xhr.response.text()); } catch (_) { /* not JSON */ }
        needsKey(xhr.status);
        showError(describeError(xhr.status, body, xhr.getResponseHeader("Retry-After")));
        return;
      }
      const blob = xhr.response;
      const model = xhr.getResponseHeader("X-Model") || "";
      showResult(blob, query, bothSides && fit === "cover" ? "cover" : "fill", model, seconds);
    });
    xhr.send(file);
  });

  function showResult(blob, query, beforeFit, model, seconds) {
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = URL.createObjectURL(blob);
    const name = file.name;
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
      download.href = resultUrl;
      download.download = downloadName(name, blob.type, query, w, h);
      const shown = formatsByType.get(mediaType(blob.type));
      $("result-info").textContent = `${w}x${h} ${shown ? shown.label : blob.type}, ` +
        `${formatBytes(blob.size)}${model ? ", model " + model : ""}, ${seconds} s` +
        (originalShows ? "" : " (the browser cannot show the original: no before/after)");
      $("placeholder").hidden = true;
      compareBox.hidden = false;
      progress.value = 1;
      setState("done", `done in ${seconds} s`);
    };
    result.onerror = () => showError(`the result (${blob.type}, ${formatBytes(blob.size)}) ` +
      "could not be shown by this browser");
    result.src = resultUrl;
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
