// The rows of the jobs table: one per job, and one per file being uploaded, which becomes
// its job's row once the server has accepted it. Each part of a row is rebuilt only when
// what it shows changes, so that a button is never replaced under the pointer by an update
// (a click would be lost) and keyboard focus stays put.
"use strict";

const VidqRows = (() => {
  const ACTIVE = new Set(["queued", "running"]);
  const PARTS = ["file", "status", "progress", "created", "actions"];

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

  // Short phrases, each kept on one line, separated by dots.
  function phrases(parts, className = "detail") {
    const node = element("span", className);
    parts.filter(Boolean).forEach((part, index) => {
      if (index) node.append(" · ");
      node.append(element("span", "phrase", part));
    });
    return node;
  }

  function progressBar(label, percent) {
    const bar = element("progress");
    bar.max = 100;
    if (percent != null) bar.value = percent; // else: indeterminate
    bar.setAttribute("aria-label", label);
    return bar;
  }

  function percentText(percent) {
    return element("span", "percent", percent == null ? "" : `${Math.floor(percent)} %`);
  }

  function fileName(job) {
    return (job.input && job.input.filename) || job.id;
  }

  // ---- a job's row --------------------------------------------------------------------------

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

  // What each part shows (its key), and how it is drawn.
  const JOB_KEYS = {
    file: (job) => [fileName(job), inputSummary(job)],
    status: (job) => [job.status, statusDetail(job)],
    progress: (job) => [job.status, job.progress_percent == null ? null : Math.floor(job.progress_percent)],
    created: (job) => [job.created_at],
    actions: (job) => {
      const plan = VidqPlayer.describe(job);
      return [job.status, job.result ? job.result.download_url : null, plan && plan.kind];
    },
  };

  const JOB_RENDER = {
    file(td, job) {
      td.replaceChildren(element("span", "file-name", fileName(job)), phrases(inputSummary(job)));
    },
    status(td, job) {
      td.replaceChildren(element("span", `status status-${job.status}`, job.status), element("span", "detail", statusDetail(job)));
    },
    progress(td, job) {
      if (job.status === "running" || job.status === "completed") {
        const percent = job.status === "completed" ? 100 : job.progress_percent;
        td.replaceChildren(progressBar(`Progress of ${fileName(job)}`, percent), percentText(percent));
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
    actions(td, job, entry, actions) {
      const name = fileName(job);
      const wrap = element("div", "actions");
      const plan = VidqPlayer.describe(job);
      if (plan) {
        const label = plan.kind === "image" ? "Show" : "Play";
        const play = button(label, `${label} ${name}`, () => actions.play(entry), "secondary play");
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
        wrap.append(button("Cancel", `Cancel ${name}`, () => actions.cancel(entry)));
      }
      wrap.append(button("Delete", `Delete ${name}`, () => actions.remove(entry), "secondary danger"));
      td.replaceChildren(wrap);
      for (const control of td.querySelectorAll("button")) control.disabled = entry.busy;
    },
  };

  // ---- an upload's row ----------------------------------------------------------------------

  const UPLOAD_STATUS = {
    waiting: "waiting to upload",
    uploading: "uploading",
    checking: "checking",
    retrying: "waiting to retry",
    refused: "not accepted",
    failed: "upload failed",
  };

  function uploadDetail(upload) {
    if (upload.state === "checking") return "The server checks the video.";
    if (upload.state === "uploading" && upload.note) return upload.note;
    if (upload.state === "retrying") {
      const at = new Date(upload.retryAt).toLocaleTimeString();
      return `${upload.error.message} Trying again at ${at}.`;
    }
    if (upload.state === "refused" || upload.state === "failed") return upload.error.message;
    return "";
  }

  const UPLOAD_KEYS = {
    file: (upload) => [upload.file.name],
    status: (upload) => [upload.state, uploadDetail(upload)],
    progress: (upload) => [upload.state, upload.total ? Math.floor((100 * upload.loaded) / upload.total) : null],
    created: () => [],
    actions: (upload) => [upload.state],
  };

  const UPLOAD_RENDER = {
    file(td, upload) {
      const preset = upload.options.preset;
      td.replaceChildren(
        element("span", "file-name", upload.file.name),
        phrases([formatBytes(upload.file.size), preset && `→ ${preset}`]),
      );
    },
    status(td, upload) {
      const detail = uploadDetail(upload);
      const failed = upload.state === "refused" || upload.state === "failed";
      td.replaceChildren(
        element("span", `status status-${failed ? "failed" : "uploading"}`, UPLOAD_STATUS[upload.state]),
        element("span", failed ? "detail row-error" : "detail", detail),
      );
    },
    progress(td, upload) {
      const label = `Upload of ${upload.file.name}`;
      if (upload.state === "uploading") {
        const percent = upload.total ? (100 * upload.loaded) / upload.total : null;
        td.replaceChildren(progressBar(label, percent), percentText(percent));
      } else if (upload.state === "checking") {
        td.replaceChildren(progressBar(label, null));
      } else {
        td.replaceChildren(element("span", "detail", upload.state === "waiting" ? "waiting" : "—"));
      }
    },
    created(td) {
      td.replaceChildren();
    },
    actions(td, upload, entry, actions) {
      const name = upload.file.name;
      const wrap = element("div", "actions");
      if (["waiting", "uploading", "retrying"].includes(upload.state)) {
        wrap.append(button("Stop", `Stop the upload of ${name}`, () => actions.stop(upload)));
      }
      if (upload.state === "failed") {
        wrap.append(button("Try again", `Upload ${name} again`, () => actions.retry(upload)));
      }
      if (upload.state === "refused" || upload.state === "failed") {
        wrap.append(button("Dismiss", `Dismiss the message about ${name}`, () => actions.dismiss(upload)));
      }
      td.replaceChildren(wrap);
    },
  };

  // ---- the table ------------------------------------------------------------------------------

  function createEntry() {
    const row = element("tr");
    const cells = {};
    for (const part of PARTS) {
      cells[part] = element(part === "file" ? "th" : "td", `cell-${part}`);
      if (part === "file") cells[part].scope = "row";
      row.append(cells[part]);
    }
    return { row, cells, keys: {}, job: null, upload: null, busy: false };
  }

  // A part redrawn while it holds the keyboard focus gives it to its control of the same
  // name (or its first control), so that a keyboard user is not thrown out of the row.
  function draw(entry, subject, keys, render, actions) {
    for (const part of PARTS) {
      const key = JSON.stringify(keys[part](subject));
      if (entry.keys[part] !== key) {
        entry.keys[part] = key;
        const cell = entry.cells[part];
        const focused = cell.contains(document.activeElement) ? document.activeElement.textContent : null;
        render[part](cell, subject, entry, actions);
        if (focused != null) {
          const controls = [...cell.querySelectorAll("button, a")];
          const next = controls.find((control) => control.textContent === focused) || controls[0];
          if (next) next.focus();
        }
      }
    }
  }

  // The table body `tbody`; `actions`: play, cancel, remove (a job's entry), stop, retry,
  // dismiss (an upload), announce(message) for a job's change of status.
  function create(tbody, actions) {
    const jobs = new Map(); // job id -> entry
    const uploads = new Map(); // upload id -> entry
    let lastUpload = null; // the upload row placed last: {upload, row}

    function drawJob(entry, job) {
      const before = entry.job;
      entry.job = job;
      draw(entry, job, JOB_KEYS, JOB_RENDER, actions);
      if (before && before.status !== job.status) actions.announce(`${fileName(job)}: ${job.status}.`);
    }

    // Newest first: uploads at the top, then jobs by creation time.
    function placeJob(entry, job) {
      const created = Date.parse(job.created_at);
      const later = [...tbody.children].find((row) => row.dataset.created && Date.parse(row.dataset.created) < created);
      tbody.insertBefore(entry.row, later || null);
    }

    function showJob(job) {
      let entry = jobs.get(job.id);
      if (!entry) {
        entry = createEntry();
        entry.row.dataset.jobId = job.id;
        entry.row.dataset.created = job.created_at;
        jobs.set(job.id, entry);
        placeJob(entry, job);
      }
      drawJob(entry, job);
      return entry;
    }

    function removeJob(id) {
      const entry = jobs.get(id);
      if (entry) entry.row.remove();
      jobs.delete(id);
    }

    // At the top; the files of one batch in the order they were given.
    function placeUpload(entry, upload) {
      const last = lastUpload && lastUpload.upload.batch === upload.batch && lastUpload.row.parentNode === tbody;
      tbody.insertBefore(entry.row, last ? lastUpload.row.nextSibling : tbody.firstChild);
      lastUpload = { upload, row: entry.row };
    }

    function showUpload(upload) {
      let entry = uploads.get(upload.id);
      if (!entry) {
        entry = createEntry();
        entry.upload = upload;
        entry.row.dataset.uploadId = upload.id;
        uploads.set(upload.id, entry);
        placeUpload(entry, upload);
      }
      draw(entry, upload, UPLOAD_KEYS, UPLOAD_RENDER, actions);
    }

    function removeUpload(upload) {
      const entry = uploads.get(upload.id);
      if (entry) entry.row.remove();
      uploads.delete(upload.id);
    }

    // The accepted upload's row becomes its job's row, where it stands (unless the job has
    // a row already: then that one stays, the upload's goes).
    function adoptUpload(upload, job) {
      const entry = uploads.get(upload.id);
      uploads.delete(upload.id);
      if (!entry) return showJob(job);
      if (jobs.has(job.id)) {
        entry.row.remove();
        return showJob(job);
      }
      delete entry.row.dataset.uploadId;
      entry.row.dataset.jobId = job.id;
      entry.row.dataset.created = job.created_at;
      entry.upload = null;
      entry.keys = {};
      jobs.set(job.id, entry);
      drawJob(entry, job);
      return entry;
    }

    function setBusy(entry, busy) {
      entry.busy = busy;
      for (const control of entry.row.querySelectorAll("button")) control.disabled = busy;
    }

    function clear() {
      jobs.clear();
      uploads.clear();
      tbody.replaceChildren();
    }

    return {
      showJob,
      removeJob,
      showUpload,
      removeUpload,
      adoptUpload,
      setBusy,
      clear,
      job: (id) => jobs.get(id),
      jobIds: () => [...jobs.keys()],
      get size() { return jobs.size + uploads.size; },
    };
  }

  return { create, fileName, ACTIVE };
})();
