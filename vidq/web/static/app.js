// The vidq page: drop or choose files, follow each upload and then its conversion live,
// cancel, play, download, delete. It speaks only the public API (API.md) with the key the
// user gives it: api.js asks, uploads.js sends files, events.js keeps the list live,
// rows.js draws it, player.js plays a finished job.
"use strict";

const $ = (selector) => document.querySelector(selector);
const KEY_STORAGE = "vidq-api-key";
const DEFAULT_PRESET = "mp4-h264";
const LIST_LIMIT = 50;
const OPTION_FIELDS = ["preset", "width", "height", "start", "end"];
// News of a job nobody here has asked for, while uploads await their answers, may be of one
// of them: it is held until they are answered (or this long), so no row shows twice.
const HOLD_NEWS_MS = 5000;
const ANNOUNCEMENTS_KEPT = 3;

let apiKey = "";
let accountName = "";
let live = null; // the follower of GET /jobs/events
let player = null; // the job in the player: {jobId, stop}
let listWatch = null; // ids the page heard of while a list was on its way
const presetDescriptions = new Map();
const heldNews = new Map(); // job id -> job
let heldNewsTimer = null;
let batches = 0;

const table = VidqRows.create($("#jobs tbody"), {
  play: openPlayer,
  cancel: cancelJob,
  remove: deleteJob,
  stop: (upload) => uploads.stop(upload),
  retry: (upload) => uploads.retry(upload),
  dismiss: dismissUpload,
  announce,
});
const uploads = new VidqUploads.UploadQueue(onUploadChange);

function api(path, options = {}, key = apiKey) {
  return VidqApi.request(path, key, options);
}

// ---- messages -----------------------------------------------------------------------------

// The page's alert: it stays until the user's next action (the list's own updates never
// clear it).
function setError(message) {
  $("#error").textContent = message || "";
}

function clearError() {
  setError("");
}

// Said by screen readers, not shown: uploads and jobs changing status. The last few stay in
// the region, so that quick changes do not cut each other off.
function announce(message) {
  const region = $("#announcer");
  region.append(Object.assign(document.createElement("p"), { textContent: message }));
  while (region.childElementCount > ANNOUNCEMENTS_KEPT) region.firstElementChild.remove();
}

function showLiveState(state, waitMs) {
  const line = $("#live-status");
  if (state === "polling") {
    const seconds = Math.max(1, Math.round(waitMs / 1000));
    line.textContent = `Live updates are interrupted; the list is refreshed every few seconds meanwhile. Reconnecting in ${seconds} s.`;
  } else if (state === "live") {
    line.textContent = "";
  }
}

// ---- the key --------------------------------------------------------------------------------

// Folded: only the account's name and a button to open the key form again.
function foldKey(folded) {
  $("#key-form").hidden = folded;
  $("#change-key").setAttribute("aria-expanded", String(!folded));
}

function showSignedIn(name) {
  $("#key-status").textContent = name ? `Using the key of “${name}”.` : "Key accepted.";
  $("#change-key").hidden = false;
  $("#forget-key").hidden = false;
  $("#upload-section").hidden = false;
  $("#jobs-section").hidden = false;
}

function signOut() {
  apiKey = "";
  accountName = "";
  if (live) live.stop();
  live = null;
  uploads.stopAll();
  closePlayer();
  table.clear();
  heldNews.clear();
  clearTimeout(heldNewsTimer);
  heldNewsTimer = null;
  $("#key-status").textContent = "";
  $("#live-status").textContent = "";
  $("#change-key").hidden = true;
  $("#forget-key").hidden = true;
  foldKey(false);
  $("#upload-section").hidden = true;
  $("#jobs-section").hidden = true;
}

async function useKey(rawKey, { remembered = false } = {}) {
  const key = rawKey.trim();
  if (!key) {
    setError("Enter your API key.");
    $("#api-key").focus();
    return;
  }
  const saveButton = $("#save-key");
  saveButton.disabled = true;
  $("#key-status").textContent = "Checking the key…";
  try {
    const account = await (await api("/account", {}, key)).json();
    await loadPresets(key);
    if (key !== apiKey) signOut(); // another owner's jobs must not stay on the page
    const changed = !live;
    apiKey = key;
    accountName = account.name;
    localStorage.setItem(KEY_STORAGE, key);
    clearError();
    showSignedIn(account.name);
    foldKey(true);
    if (!remembered) $("#drop-zone").focus();
    if (changed) startLive();
  } catch (error) {
    if (apiKey && !remembered) {
      // A key is in use already: keep it, and say so.
      showSignedIn(accountName);
      $("#api-key").value = apiKey;
      const why = error.status === 401 ? "was not accepted" : `could not be checked (${error.message})`;
      setError(`That API key ${why}. The page still uses the key of “${accountName}”.`);
      return;
    }
    signOut();
    if (error.status === 401) {
      if (remembered) localStorage.removeItem(KEY_STORAGE);
      setError(remembered
        ? "The saved API key is not accepted any more. Enter a valid key."
        : "That API key was not accepted. Check it and try again.");
    } else {
      setError(`The key could not be checked: ${error.message}`);
    }
    $("#api-key").focus();
  } finally {
    saveButton.disabled = false;
  }
}

function keyNoLongerAccepted() {
  localStorage.removeItem(KEY_STORAGE);
  signOut();
  setError("Your API key is not accepted any more. Enter a valid key.");
  $("#api-key").focus();
}

function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
  signOut();
  clearError();
  $("#api-key").value = "";
  $("#key-status").textContent = "The key is forgotten on this browser.";
  $("#api-key").focus();
}

function toggleKeyForm() {
  const opening = $("#key-form").hidden;
  foldKey(!opening);
  if (opening) $("#api-key").select();
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

// ---- the live list ------------------------------------------------------------------------

function showEmptyState() {
  const empty = table.size === 0;
  $("#jobs-empty").hidden = !empty;
  $("#jobs").hidden = empty;
}

function heardOf(id) {
  if (listWatch) listWatch.add(id);
}

async function listJobs() {
  listWatch = new Set();
  const { jobs } = await (await api(`/jobs?limit=${LIST_LIMIT}`)).json();
  return jobs;
}

function startLive() {
  live = VidqEvents.follow({
    key: apiKey,
    list: listJobs,
    handlers: {
      job: onJobNews,
      deleted: (id) => {
        heardOf(id);
        heldNews.delete(id);
        removeJobRow(id);
      },
      listing: onListing,
      state: showLiveState,
      unauthorized: keyNoLongerAccepted,
    },
  });
}

// A job new to this page: shown, unless it may be one of the uploads still awaiting answers.
function showNewJob(job) {
  if (uploads.awaitingAnswers) {
    heldNews.set(job.id, job);
    if (!heldNewsTimer) heldNewsTimer = setTimeout(releaseHeldNews, HOLD_NEWS_MS);
    return;
  }
  table.showJob(job);
  showEmptyState();
}

function releaseHeldNews() {
  clearTimeout(heldNewsTimer);
  heldNewsTimer = null;
  for (const job of heldNews.values()) table.showJob(job);
  heldNews.clear();
  showEmptyState();
}

function onJobNews(job) {
  heardOf(job.id);
  if (table.job(job.id)) table.showJob(job);
  else showNewJob(job);
}

// The list from GET /jobs. What the page heard of while it was on its way is newer than
// it; a job missing from it was deleted elsewhere, unless it is older than what a full list
// reaches.
function onListing(jobs) {
  const heard = listWatch || new Set();
  listWatch = null;
  const listed = new Set(jobs.map((job) => job.id));
  for (const job of jobs) {
    if (heard.has(job.id)) continue;
    if (table.job(job.id)) table.showJob(job);
    else showNewJob(job);
  }
  const reach = jobs.length >= LIST_LIMIT ? Date.parse(jobs[jobs.length - 1].created_at) : -Infinity;
  for (const id of table.jobIds()) {
    const entry = table.job(id);
    if (!listed.has(id) && !heard.has(id) && Date.parse(entry.job.created_at) >= reach) removeJobRow(id);
  }
  showEmptyState();
}

// Remove a row with `remove()`; if it held the keyboard focus, the focus goes to the row
// that takes its place (or the one above), else to the drop zone.
function removeKeepingFocus(row, remove) {
  const held = row && row.contains(document.activeElement);
  const neighbour = held && (row.nextElementSibling || row.previousElementSibling);
  remove();
  if (!held) return;
  const control = neighbour && neighbour.querySelector("button, a");
  (control || $("#drop-zone")).focus();
}

function uploadRow(upload) {
  return document.querySelector(`#jobs tr[data-upload-id="${upload.id}"]`);
}

function removeJobRow(id) {
  const entry = table.job(id);
  removeKeepingFocus(entry && entry.row, () => table.removeJob(id));
  if (player && player.jobId === id) closePlayer({ returnFocus: false });
  showEmptyState();
}

async function cancelJob(entry) {
  const job = entry.job;
  clearError();
  table.setBusy(entry, true);
  try {
    const updated = await (await api(`/job/${encodeURIComponent(job.id)}/cancel`, { method: "POST" })).json();
    heardOf(updated.id);
    if (table.job(updated.id)) table.showJob(updated); // unless deleted meanwhile
  } catch (error) {
    const reason = error.status === 409 ? "it has already finished." : error.message;
    setError(`${VidqRows.fileName(job)} could not be cancelled: ${reason}`);
  } finally {
    table.setBusy(entry, false);
  }
}

async function deleteJob(entry) {
  const job = entry.job;
  const name = VidqRows.fileName(job);
  const what = job.status === "completed" ? "this job and its converted file" : "this job";
  if (!window.confirm(`Delete ${what} (${name})? This cannot be undone.`)) return;
  clearError();
  table.setBusy(entry, true);
  try {
    await api(`/job/${encodeURIComponent(job.id)}`, { method: "DELETE" });
    heardOf(job.id);
    removeJobRow(job.id);
    announce(`${name}: deleted.`);
  } catch (error) {
    if (error.status === 404) {
      removeJobRow(job.id); // already gone
    } else {
      table.setBusy(entry, false);
      setError(`${name} could not be deleted: ${error.message}`);
    }
  }
}

// ---- uploads ------------------------------------------------------------------------------

function chosenOptions() {
  const form = $("#upload-form");
  const options = {};
  for (const name of OPTION_FIELDS) {
    const value = form.elements[name].value;
    if (value !== "") options[name] = value;
  }
  return options;
}

// Each file is its own upload, and its own row, converted with the options shown.
function addFiles(files) {
  if (!apiKey || !files.length) return;
  clearError();
  const options = chosenOptions();
  const resumableAbove = Number($("#upload-form").dataset.resumableAboveBytes);
  batches += 1;
  for (const file of files) {
    uploads.add(file, options, apiKey, batches, { resumable: file.size > resumableAbove });
  }
  announce(files.length === 1 ? `Uploading ${files[0].name}.` : `Uploading ${files.length} files.`);
}

function onUploadChange(upload) {
  const name = upload.file.name;
  if (upload.error && upload.error.status === 401 && upload.state !== "stopped") {
    keyNoLongerAccepted();
    return;
  }
  if (upload.state === "accepted") {
    const job = heldNews.get(upload.job.id) || upload.job; // the stream's news is the newer
    heldNews.delete(job.id);
    heardOf(job.id);
    table.adoptUpload(upload, job);
    announce(`${name} is uploaded: ${job.status}.`);
  } else if (upload.state === "stopped") {
    removeKeepingFocus(uploadRow(upload), () => table.removeUpload(upload));
    announce(`The upload of ${name} is stopped.`);
  } else {
    table.showUpload(upload);
    if (upload.state === "refused") announce(`${name} was not accepted: ${upload.error.message}`);
    if (upload.state === "failed") announce(`The upload of ${name} failed: ${upload.error.message}`);
  }
  if (heldNews.size && !uploads.awaitingAnswers) releaseHeldNews();
  showEmptyState();
}

function dismissUpload(upload) {
  removeKeepingFocus(uploadRow(upload), () => table.removeUpload(upload));
  showEmptyState();
}

// The drop zone is a button: a click (or Enter, or Space) opens the file picker.
function wireDropZone() {
  const zone = $("#drop-zone");
  const input = $("#file");
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  zone.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = ""; // the same file can be chosen again
  });
  zone.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const items = [...(event.dataTransfer.items || [])];
    const folders = new Set(items
      .map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry())
      .filter((entry) => entry && entry.isDirectory)
      .map((entry) => entry.name));
    addFiles([...event.dataTransfer.files].filter((file) => !folders.has(file.name)));
  });
  // A file dropped beside the zone must not make the browser leave the page (and its uploads).
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (hasFiles(event) && !zone.contains(event.target)) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "none";
      }
    });
  }
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
  const name = VidqRows.fileName(job);
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
  const entry = table.job(jobId);
  const play = entry && entry.row.querySelector("button.play");
  if (returnFocus && play) play.focus();
}

// ---- wiring ---------------------------------------------------------------------------------

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  useKey($("#api-key").value);
});
$("#key-form").addEventListener("keydown", (event) => {
  if (event.key === "Escape" && apiKey) {
    foldKey(true);
    $("#change-key").focus();
  }
});
$("#change-key").addEventListener("click", toggleKeyForm);
$("#forget-key").addEventListener("click", forgetKey);
$("#preset").addEventListener("change", describePreset);
$("#upload-form").addEventListener("submit", (event) => event.preventDefault());
wireDropZone();
$("#close-player").addEventListener("click", () => closePlayer());
$("#player-section").addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !document.fullscreenElement) closePlayer();
});
window.addEventListener("beforeunload", (event) => {
  if (uploads.busy) {
    event.preventDefault();
    event.returnValue = "";
  }
});

const savedKey = localStorage.getItem(KEY_STORAGE);
if (savedKey) {
  $("#api-key").value = savedKey;
  foldKey(true);
  useKey(savedKey, { remembered: true });
} else {
  $("#api-key").focus();
}
