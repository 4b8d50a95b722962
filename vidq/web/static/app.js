// The vidq page: upload with progress, live job status, cancel, play, download, delete.
// It speaks only the public API (API.md) with the key the user gives it.
"use strict";

const $ = (selector) => document.querySelector(selector);
const KEY_STORAGE = "vidq-api-key";
const DEFAULT_PRESET = "mp4-h264";
const ACTIVE = new Set(["queued", "running"]);
const POLL_ACTIVE_MS = 1000;
const POLL_IDLE_MS = 5000;

let apiKey = "";
let accountName = "";
let pollTimer = null;
let refreshSeq = 0;
let errorSource = "";
let currentUpload = null;
const presetDescriptions = new Map();
const rows = new Map(); // job id -> {row, cells, keys, job, busy}
let player = null; // the job in the player: {jobId, stop}

// ---- talking to the API -------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// The readable part of an RFC 9457 problem (or of whatever else came back).
function problemMessage(body, fallback) {
  if (!body || typeof body !== "object") return fallback;
  if (body.detail) return String(body.detail);
  if (Array.isArray(body.errors) && body.errors.length) {
    return body.errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; ");
  }
  return body.title || fallback;
}

async function api(path, options = {}, key = apiKey) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { Authorization: `Bearer ${key}`, ...(options.headers || {}) },
    });
  } catch (_) {
    throw new ApiError("the vidq server cannot be reached. Check that it runs and try again.", 0);
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(problemMessage(body, `${response.status} ${response.statusText}`.trim()), response.status);
  }
  return response;
}

// ---- messages -----------------------------------------------------------------------------

function setError(message, source = "") {
  $("#error").textContent = message || "";
  errorSource = message ? source : "";
}

function clearError(source) {
  if (!source || errorSource === source) setError("");
}

// Said by screen readers, not shown: a job's end, a deletion.
function announce(message) {
  $("#announcer").textContent = message;
}

function uploadStatus(message) {
  $("#upload-status").textContent = message;
}

function formatBytes(bytes) {
  if (bytes == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`;
}

function formatSeconds(seconds) {
  if (seconds == null) return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - 60 * minutes)} s`;
}

// ---- the key --------------------------------------------------------------------------------

function showSignedIn(name) {
  $("#key-status").textContent = name ? `Using the key of “${name}”.` : "Key accepted.";
  $("#forget-key").hidden = false;
  $("#upload-section").hidden = false;
  $("#jobs-section").hidden = false;
}

function signOut() {
  apiKey = "";
  accountName = "";
  refreshSeq += 1; // answers still on their way are for the old key
  clearTimeout(pollTimer);
  closePlayer();
  rows.clear();
  $("#jobs tbody").replaceChildren();
  $("#key-status").textContent = "";
  $("#forget-key").hidden = true;
  $("#upload-section").hidden = true;
  $("#jobs-section").hidden = true;
}

async function useKey(rawKey, { remembered = false } = {}) {
  const key = rawKey.trim();
  if (!key) {
    setError("Enter your API key.", "key");
    $("#api-key").focus();
    return;
  }
  const button = $("#save-key");
  button.disabled = true;
  $("#key-status").textContent = "Checking the key…";
  try {
    const account = await (await api("/account", {}, key)).json();
    await loadPresets(key);
    if (key !== apiKey) signOut(); // another owner's jobs must not stay on the page
    apiKey = key;
    accountName = account.name;
    localStorage.setItem(KEY_STORAGE, key);
    clearError();
    showSignedIn(account.name);
    refreshJobs();
  } catch (error) {
    if (apiKey && !remembered) {
      // A key is in use already: keep it, and say so.
      showSignedIn(accountName);
      $("#api-key").value = apiKey;
      const why = error.status === 401 ? "was not accepted" : `could not be checked (${error.message})`;
      setError(`That API key ${why}. The page still uses the key of “${accountName}”.`, "key");
      return;
    }
    signOut();
    if (error.status === 401) {
      if (remembered) localStorage.removeItem(KEY_STORAGE);
      setError(remembered
        ? "The saved API key is not accepted any more. Enter a valid key."
        : "That API key was not accepted. Check it and try again.", "key");
    } else {
      setError(`The key could not be checked: ${error.message}`, "key");
    }
    $("#api-key").focus();
  } finally {
    button.disabled = false;
  }
}

function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
  signOut();
  clearError();
  $("#api-key").value = "";
  $("#key-status").textContent = "The key is forgotten on this browser.";
  $("#api-key").focus();
}

// ---- presets ------------------------------------------------------------------------------

async function loadPresets(key = apiKey) {
  const { presets } = await (await api("/presets", {}, key)).json();
  const select = $("#preset");
  const previous = select.value;
  presetDescriptions.clear();
  select.replaceChildren(...presets.map((preset) => {
    presetDescriptions.set(preset.name, preset.description || "");
    const option = document.createElement("option");
    option.value = preset.name;
    option.textContent = preset.name;
    option.title = preset.description || "";
    return option;
  }));
  const names = presets.map((preset) => preset.name);
  select.value = names.includes(previous) ? previous : names.includes(DEFAULT_PRESET) ? DEFAULT_PRESET : names[0] || "";
  describePreset();
}

function describePreset() {
  $("#preset-description").textContent = presetDescriptions.get($("#preset").value) || "";
}

// ---- the job list -------------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function button(label, accessibleName, onClick, className = "secondary") {
  const b = element("button", className, label);
  b.type = "button";
  b.setAttribute("aria-label", accessibleName);
  b.addEventListener("click", onClick);
  return b;
}

function inputSummary(job) {
  const input = job.input || {};
  const parts = [];
  if (input.video && input.video.width) parts.push(`${input.video.width}×${input.video.height}`);
  if (input.duration_seconds != null) parts.push(formatSeconds(input.duration_seconds));
  if (input.size_bytes != null) parts.push(formatBytes(input.size_bytes));
  const preset = job.options && job.options.preset;
  if (preset) parts.push(`→ ${preset}`);
  return parts;
}

// Short phrases, each kept on one line, separated by dots.
function phrases(parts, className = "detail") {
  const node = element("span", className);
  parts.forEach((part, index) => {
    if (index) node.append(" · ");
    node.append(element("span", "phrase", part));
  });
  return node;
}

function statusDetail(job) {
  if (job.status === "queued" && job.queue_position) return `#${job.queue_position} in the queue`;
  if (job.status === "failed" && job.error) return job.error.message || job.error.code;
  if (job.status === "completed" && job.result) {
    const parts = [formatBytes(job.result.size_bytes)];
    if (job.processing_seconds != null) parts.push(`in ${formatSeconds(job.processing_seconds)}`);
    return parts.filter(Boolean).join(" ");
  }
  return "";
}

function fileName(job) {
  return (job.input && job.input.filename) || job.id;
}

// Each part of a row is rebuilt only when what it shows changes, so that a button is never
// replaced under the pointer by the poll (a click would be lost) and keyboard focus stays put.
const PARTS = {
  file(job) {
    return [fileName(job), inputSummary(job)];
  },
  status(job) {
    return [job.status, statusDetail(job)];
  },
  progress(job) {
    const percent = job.progress_percent == null ? null : Math.round(job.progress_percent);
    return [job.status, percent];
  },
  created(job) {
    return [job.created_at];
  },
  actions(job) {
    const plan = VidqPlayer.describe(job);
    return [job.status, job.result ? job.result.download_url : null, plan && plan.kind];
  },
};

const RENDER = {
  file(td, job) {
    td.replaceChildren(element("span", "file-name", fileName(job)), phrases(inputSummary(job)));
  },
  status(td, job) {
    td.replaceChildren(element("span", `status status-${job.status}`, job.status), element("span", "detail", statusDetail(job)));
  },
  progress(td, job) {
    const percent = job.progress_percent;
    if (job.status === "running" || job.status === "completed") {
      const bar = element("progress");
      bar.max = 100;
      if (job.status === "completed") bar.value = 100;
      else if (percent != null) bar.value = percent; // else: indeterminate
      bar.setAttribute("aria-label", `Progress of ${fileName(job)}`);
      const value = job.status === "completed" ? 100 : percent;
      td.replaceChildren(bar, element("span", "percent", value == null ? "" : `${Math.round(value)} %`));
    } else {
      td.replaceChildren(element("span", "detail", job.status === "queued" ? "waiting" : "—"));
    }
  },
  created(td, job) {
    const created = new Date(job.created_at);
    const time = element("time", null, created.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
    time.title = created.toLocaleString();
    time.dateTime = job.created_at;
    td.replaceChildren(time);
  },
  actions(td, job, entry) {
    const name = fileName(job);
    const wrap = element("div", "actions");
    const plan = VidqPlayer.describe(job);
    if (plan) {
      const label = plan.kind === "image" ? "Show" : "Play";
      const play = button(label, `${label} ${name}`, () => openPlayer(entry), "secondary play");
      play.setAttribute("aria-controls", "player-section");
      wrap.append(play);
    }
    if (job.status === "completed" && job.result && job.result.download_url) {
      const link = element("a", "button download", "Download");
      link.href = job.result.download_url;
      link.setAttribute("download", job.result.filename || "");
      link.setAttribute("aria-label", `Download ${job.result.filename || name}`);
      wrap.append(link);
    }
    if (ACTIVE.has(job.status)) {
      wrap.append(button("Cancel", `Cancel ${name}`, () => cancelJob(entry)));
    }
    wrap.append(button("Delete", `Delete ${name}`, () => deleteJob(entry), "secondary danger"));
    td.replaceChildren(wrap);
    for (const control of td.querySelectorAll("button")) control.disabled = entry.busy;
  },
};

function createRow(job) {
  const row = element("tr");
  row.dataset.jobId = job.id;
  const cells = {};
  for (const part of Object.keys(PARTS)) {
    cells[part] = element(part === "file" ? "th" : "td", `cell-${part}`);
    if (part === "file") cells[part].scope = "row";
    row.append(cells[part]);
  }
  return { row, cells, keys: {}, job: null, busy: false };
}

function updateRow(entry, job) {
  const before = entry.job;
  entry.job = job;
  for (const part of Object.keys(PARTS)) {
    const key = JSON.stringify(PARTS[part](job));
    if (entry.keys[part] !== key) {
      entry.keys[part] = key;
      RENDER[part](entry.cells[part], job, entry);
    }
  }
  if (before && before.status !== job.status && !ACTIVE.has(job.status)) {
    announce(`${fileName(job)}: ${job.status}.`);
  }
}

function setBusy(entry, busy) {
  entry.busy = busy;
  for (const control of entry.row.querySelectorAll("button")) control.disabled = busy;
}

function removeRow(id) {
  const entry = rows.get(id);
  if (entry) entry.row.remove();
  rows.delete(id);
  if (player && player.jobId === id) closePlayer({ returnFocus: false });
  showEmptyState();
}

function showEmptyState() {
  const empty = rows.size === 0;
  $("#jobs-empty").hidden = !empty;
  $("#jobs").hidden = empty;
}

function renderJobs(jobs) {
  const body = $("#jobs tbody");
  const seen = new Set();
  for (const job of jobs) {
    seen.add(job.id);
    let entry = rows.get(job.id);
    if (!entry) {
      entry = createRow(job);
      rows.set(job.id, entry);
    }
    updateRow(entry, job);
  }
  for (const id of [...rows.keys()]) {
    if (!seen.has(id)) removeRow(id);
  }
  // Newest first; move only the rows that are out of place.
  jobs.forEach((job, index) => {
    const row = rows.get(job.id).row;
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
  });
  showEmptyState();
}

// A job just made here: shown at the top at once, before the next poll.
function addJob(job) {
  let entry = rows.get(job.id);
  if (!entry) {
    entry = createRow(job);
    rows.set(job.id, entry);
    const body = $("#jobs tbody");
    body.insertBefore(entry.row, body.firstChild);
  }
  updateRow(entry, job);
  showEmptyState();
}

async function refreshJobs() {
  if (!apiKey) return;
  const seq = ++refreshSeq;
  clearTimeout(pollTimer);
  try {
    const { jobs } = await (await api("/jobs?limit=50")).json();
    if (seq !== refreshSeq) return; // a newer refresh has started: its answer wins
    renderJobs(jobs);
    clearError("poll");
    schedulePoll(jobs.some((job) => ACTIVE.has(job.status)) ? POLL_ACTIVE_MS : POLL_IDLE_MS);
  } catch (error) {
    if (seq !== refreshSeq) return;
    if (error.status === 401) {
      localStorage.removeItem(KEY_STORAGE);
      signOut();
      setError("Your API key is not accepted any more. Enter a valid key.", "key");
      $("#api-key").focus();
      return;
    }
    setError(`Your jobs could not be loaded: ${error.message}`, "poll");
    schedulePoll(POLL_IDLE_MS);
  }
}

function schedulePoll(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(refreshJobs, ms);
}

async function cancelJob(entry) {
  const job = entry.job;
  clearError();
  setBusy(entry, true);
  try {
    const updated = await (await api(`/job/${encodeURIComponent(job.id)}/cancel`, { method: "POST" })).json();
    updateRow(entry, updated);
  } catch (error) {
    const reason = error.status === 409 ? "it has already finished." : error.message;
    setError(`${fileName(job)} could not be cancelled: ${reason}`);
  } finally {
    setBusy(entry, false);
  }
  refreshJobs();
}

async function deleteJob(entry) {
  const job = entry.job;
  const what = job.status === "completed" ? "this job and its converted file" : "this job";
  if (!window.confirm(`Delete ${what} (${fileName(job)})? This cannot be undone.`)) return;
  clearError();
  setBusy(entry, true);
  try {
    await api(`/job/${encodeURIComponent(job.id)}`, { method: "DELETE" });
    removeRow(job.id);
    announce(`${fileName(job)}: deleted.`);
  } catch (error) {
    if (error.status === 404) {
      removeRow(job.id); // already gone
    } else {
      setBusy(entry, false);
      setError(`${fileName(job)} could not be deleted: ${error.message}`);
    }
  }
  refreshJobs();
}

// ---- the player ---------------------------------------------------------------------------

function playerStatus(message) {
  $("#player-status").textContent = message || "";
}

function openPlayer(entry) {
  const job = entry.job;
  const plan = VidqPlayer.describe(job);
  if (!plan) return;
  closePlayer({ returnFocus: false });
  const name = fileName(job);
  $("#player-heading").textContent = plan.kind === "image" ? name : `Playing ${name}`;
  $("#close-player").setAttribute("aria-label", `Close the player of ${name}`);
  const section = $("#player-section");
  section.hidden = false;
  playerStatus("");
  const stop = VidqPlayer.mount($("#player"), job, plan, playerStatus);
  player = { jobId: job.id, stop };
  section.scrollIntoView({ block: "nearest" });
  const media = $("#player video, #player audio");
  (media || $("#close-player")).focus();
}

// Stop and hide the player; focus goes back to the Play button it came from.
function closePlayer({ returnFocus = true } = {}) {
  if (!player) return;
  const { jobId, stop } = player;
  player = null;
  stop();
  playerStatus("");
  $("#player-section").hidden = true;
  const entry = rows.get(jobId);
  const play = entry && entry.row.querySelector("button.play");
  if (returnFocus && play) play.focus();
}

// ---- upload -------------------------------------------------------------------------------

function upload(form, file) {
  return new Promise((resolve, reject) => {
    const data = new FormData();
    data.append("file", file);
    for (const name of ["preset", "width", "height", "start", "end"]) {
      const value = form.elements[name].value;
      if (value !== "") data.append(name, value);
    }
    const request = new XMLHttpRequest();
    currentUpload = request;
    request.open("POST", "/convert");
    request.setRequestHeader("Authorization", `Bearer ${apiKey}`);
    const bar = $("#upload-progress");
    bar.value = 0;
    bar.hidden = false;
    $("#abort-upload").hidden = false;
    uploadStatus(`Uploading ${file.name}…`);
    const done = () => {
      currentUpload = null;
      bar.hidden = true;
      $("#abort-upload").hidden = true;
    };
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = (100 * event.loaded) / event.total;
      bar.value = percent;
      uploadStatus(`Uploading ${file.name}: ${Math.floor(percent)} %`);
    });
    request.upload.addEventListener("load", () => {
      bar.removeAttribute("value"); // the server now checks the video
      uploadStatus(`Checking ${file.name}…`);
    });
    request.addEventListener("load", () => {
      done();
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
      if (request.status === 202 || request.status === 200) {
        resolve(body);
        return;
      }
      if (request.status === 401) {
        reject(new ApiError("your API key is not accepted any more.", 401));
        return;
      }
      reject(new ApiError(problemMessage(body, `${request.status} ${request.statusText}`.trim()), request.status));
    });
    request.addEventListener("error", () => {
      done();
      reject(new ApiError("the connection to the server failed. Try again.", 0));
    });
    request.addEventListener("abort", () => {
      done();
      reject(new ApiError("the upload was stopped.", 0));
    });
    request.send(data);
  });
}

async function onSubmit(event) {
  event.preventDefault();
  if (!apiKey || currentUpload) return;
  const form = event.target;
  const file = form.elements.file.files[0];
  if (!file) {
    setError("Choose a video file first.");
    form.elements.file.focus();
    return;
  }
  clearError();
  const submit = $("#submit");
  submit.disabled = true;
  try {
    const job = await upload(form, file);
    form.elements.file.value = ""; // the options stay for the next file
    uploadStatus(`${file.name} is queued.`);
    if (job && job.id) addJob(job);
  } catch (error) {
    uploadStatus("");
    setError(`${file.name} was not accepted: ${error.message}`);
  } finally {
    submit.disabled = false;
  }
  refreshJobs();
}

// ---- wiring ---------------------------------------------------------------------------------

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  useKey($("#api-key").value);
});
$("#forget-key").addEventListener("click", forgetKey);
$("#preset").addEventListener("change", describePreset);
$("#upload-form").addEventListener("submit", onSubmit);
$("#abort-upload").addEventListener("click", () => { if (currentUpload) currentUpload.abort(); });
$("#close-player").addEventListener("click", () => closePlayer());
$("#player-section").addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !document.fullscreenElement) closePlayer();
});
window.addEventListener("beforeunload", (event) => {
  if (currentUpload) {
    event.preventDefault();
    event.returnValue = "";
  }
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && apiKey) refreshJobs();
});

const savedKey = localStorage.getItem(KEY_STORAGE);
if (savedKey) {
  $("#api-key").value = savedKey;
  useKey(savedKey, { remembered: true });
} else {
  $("#api-key").focus();
}
