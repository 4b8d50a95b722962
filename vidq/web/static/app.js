// The vidq page: upload with progress, live job status, cancel, download, delete.
// It speaks only the public API (API.md) with the key the user gives it.
"use strict";

const $ = (selector) => document.querySelector(selector);
let apiKey = localStorage.getItem("vidq-api-key") || "";
let pollTimer = null;

function authHeaders() {
  return { Authorization: `Bearer ${apiKey}` };
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok && response.status !== 304) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function showError(message) {
  $("#error").textContent = message || "";
}

async function loadPresets() {
  const response = await api("/presets");
  const { presets } = await response.json();
  const select = $("#preset");
  select.replaceChildren(...presets.map((preset) => {
    const option = document.createElement("option");
    option.value = preset.name;
    option.textContent = `${preset.name} — ${preset.description}`;
    return option;
  }));
}

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content ?? "";
  return td;
}

function button(label, onClick, secondary = false) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (secondary) b.className = "secondary";
  b.addEventListener("click", onClick);
  return b;
}

function renderJobs(jobs) {
  const body = $("#jobs tbody");
  body.replaceChildren(...jobs.map((job) => {
    const row = document.createElement("tr");
    row.dataset.jobId = job.id;
    const status = document.createElement("span");
    status.className = `status status-${job.status}`;
    status.textContent = job.status === "queued" && job.queue_position ? `queued (#${job.queue_position})` : job.status;
    if (job.error) status.title = job.error.message;
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = job.progress_percent ?? 0;
    const actions = document.createElement("span");
    if (job.status === "queued" || job.status === "running") {
      actions.append(button("Cancel", () => act(`/job/${job.id}/cancel`, "POST"), true));
    }
    if (job.status === "completed" && job.result) {
      const link = document.createElement("a");
      link.href = job.result.download_url;
      link.textContent = "Download";
      link.className = "download";
      link.setAttribute("download", job.result.filename);
      actions.append(link, " ");
    }
    actions.append(button("Delete", () => act(`/job/${job.id}`, "DELETE"), true));
    const errorText = job.error ? ` — ${job.error.message}` : "";
    row.append(cell(job.input.filename), cell(status), cell(progress),
               cell(new Date(job.created_at).toLocaleString() + errorText), cell(actions));
    return row;
  }));
}

async function refreshJobs() {
  if (!apiKey) return;
  try {
    const response = await api("/jobs?limit=50");
    const { jobs } = await response.json();
    renderJobs(jobs);
    const active = jobs.some((job) => job.status === "queued" || job.status === "running");
    schedulePoll(active ? 1000 : 5000);
  } catch (error) {
    showError(error.message);
    schedulePoll(5000);
  }
}

function schedulePoll(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(refreshJobs, ms);
}

async function act(path, method) {
  showError("");
  try {
    await api(path, { method });
  } catch (error) {
    showError(error.message);
  }
  refreshJobs();
}

function upload(form) {
  return new Promise((resolve, reject) => {
    const data = new FormData();
    data.append("file", $("#file").files[0]);
    for (const name of ["preset", "width", "height", "start", "end"]) {
      const value = form.elements[name].value;
      if (value !== "") data.append(name, value);
    }
    const request = new XMLHttpRequest();
    request.open("POST", "/convert");
    request.setRequestHeader("Authorization", `Bearer ${apiKey}`);
    const bar = $("#upload-progress");
    bar.hidden = false;
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.value = (100 * event.loaded) / event.total;
    });
    request.addEventListener("load", () => {
      bar.hidden = true;
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
      if (request.status === 202 || request.status === 200) resolve(body);
      else reject(new Error(body.detail || `${request.status} ${request.statusText}`));
    });
    request.addEventListener("error", () => { bar.hidden = true; reject(new Error("The upload failed: network error.")); });
    request.send(data);
  });
}

async function useKey(key) {
  apiKey = key.trim();
  localStorage.setItem("vidq-api-key", apiKey);
  showError("");
  try {
    await loadPresets();
    $("#key-status").textContent = "Key accepted.";
    refreshJobs();
  } catch (error) {
    $("#key-status").textContent = "";
    showError(`That key did not work: ${error.message}`);
  }
}

$("#save-key").addEventListener("click", () => useKey($("#api-key").value));
$("#upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const submit = $("#submit");
  submit.disabled = true;
  try {
    await upload(event.target);
    event.target.reset();
    await loadPresets();
  } catch (error) {
    showError(error.message);
  } finally {
    submit.disabled = false;
  }
  refreshJobs();
});

if (apiKey) {
  $("#api-key").value = apiKey;
  useKey(apiKey);
}
