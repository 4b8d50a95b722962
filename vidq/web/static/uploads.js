// Sending files to POST /convert, a few at a time, each with its progress. The options go
// before the file in the multipart body: the server checks each field as it arrives, so a
// bad option is refused (422) at the start of an upload rather than after all of it.
// XMLHttpRequest rather than fetch, because only it reports an upload's progress.
"use strict";

const VidqUploads = (() => {
  const AT_ONCE = 2;
  // A busy server (503) or a key over its rate (429) says when to come back: the upload
  // waits and starts again by itself, a few times, if that is soon enough.
  const AUTO_RETRIES = 3;
  const AUTO_RETRY_MAX_SECONDS = 30;
  const UNFINISHED = new Set(["waiting", "uploading", "checking", "retrying"]);
  let lastId = 0;

  class UploadError extends Error {
    constructor(message, { status = 0, stopped = false, retryAfterSeconds = null } = {}) {
      super(message);
      this.status = status;
      this.stopped = stopped;
      this.retryAfterSeconds = retryAfterSeconds;
    }
  }

  // One per upload, sent with each try: if a try that failed on the way back had made its
  // job after all, the next gets that job again instead of a second one.
  function idempotencyKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return `vidq-page-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  // One file's trip: {request, done}; `done` gives the Job, or an UploadError.
  function send(upload, onProgress, onSent) {
    const data = new FormData();
    for (const [name, value] of Object.entries(upload.options)) data.append(name, value);
    data.append("file", upload.file, upload.file.name); // last: the fields are checked first
    const request = new XMLHttpRequest();
    const done = new Promise((resolve, reject) => {
      request.open("POST", "/convert");
      request.setRequestHeader("Authorization", `Bearer ${upload.key}`);
      request.setRequestHeader("Idempotency-Key", upload.idempotencyKey);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
      request.upload.addEventListener("load", onSent);
      request.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
        if (request.status >= 200 && request.status < 300 && body && body.id) {
          resolve(body);
          return;
        }
        const status = request.status;
        const message = status === 401
          ? "the API key is not accepted any more."
          : VidqApi.problemMessage(body, `${status} ${request.statusText}`.trim());
        const retryAfter = Number(request.getResponseHeader("Retry-After"));
        reject(new UploadError(message, {
          status,
          retryAfterSeconds: [429, 503].includes(status) && retryAfter > 0 ? retryAfter : null,
        }));
      });
      request.addEventListener("error", () => {
        reject(new UploadError("the connection to the server failed."));
      });
      request.addEventListener("abort", () => {
        reject(new UploadError("the upload was stopped.", { stopped: true }));
      });
      request.send(data);
    });
    return { request, done };
  }

  // The page's uploads. Each is an object the page reads: {id, file, batch, state, loaded,
  // total, job, error, retryAt}, `state` one of waiting (for its turn), uploading, checking (sent;
  // the server probes it), retrying (waiting to start again), accepted (`job` is set),
  // refused (the server said no: `error`), failed (`error`; it can be tried again) or
  // stopped (by the user). `onChange(upload)` is called at each change.
  class UploadQueue {
    constructor(onChange) {
      this.onChange = onChange;
      this.waiting = [];
      this.running = new Set();
      this.unfinished = new Set();
    }

    // A new upload of `file` with these options (form fields, sent in this order); `batch`
    // names the files chosen or dropped together.
    add(file, options, key, batch) {
      lastId += 1;
      const upload = {
        id: `upload-${lastId}`, file, options: { ...options }, key, batch, idempotencyKey: idempotencyKey(),
        state: "waiting", loaded: 0, total: file.size, job: null, error: null,
        retryAt: null, autoRetries: 0, request: null, timer: null,
      };
      this.unfinished.add(upload);
      this.waiting.push(upload);
      this.onChange(upload);
      this.next();
      return upload;
    }

    get busy() {
      return this.unfinished.size > 0;
    }

    // Sending files while none is answered yet: a new job the list learns of may be one of them.
    get awaitingAnswers() {
      return [...this.unfinished].some((upload) => upload.state === "uploading" || upload.state === "checking");
    }

    // Stopped by the user: not an error.
    stop(upload) {
      if (upload.request) {
        upload.request.abort(); // its end is told by `start`
        return;
      }
      if (!UNFINISHED.has(upload.state)) return;
      clearTimeout(upload.timer);
      this.waiting = this.waiting.filter((each) => each !== upload);
      this.finish(upload, "stopped");
    }

    stopAll() {
      for (const upload of [...this.unfinished]) this.stop(upload);
    }

    // Send a failed upload again.
    retry(upload) {
      if (upload.state !== "failed") return;
      upload.error = null;
      upload.autoRetries = 0;
      upload.state = "waiting";
      this.unfinished.add(upload);
      this.waiting.push(upload);
      this.onChange(upload);
      this.next();
    }

    finish(upload, state) {
      upload.state = state;
      this.unfinished.delete(upload);
      this.onChange(upload);
    }

    next() {
      while (this.running.size < AT_ONCE && this.waiting.length) this.start(this.waiting.shift());
    }

    async start(upload) {
      this.running.add(upload);
      upload.state = "uploading";
      upload.loaded = 0;
      upload.retryAt = null;
      this.onChange(upload);
      const { request, done } = send(
        upload,
        (loaded, total) => {
          upload.loaded = loaded;
          upload.total = total;
          this.onChange(upload);
        },
        () => {
          if (upload.state !== "uploading") return;
          upload.state = "checking";
          this.onChange(upload);
        },
      );
      upload.request = request;
      try {
        upload.job = await done;
        this.settle(upload, "accepted");
      } catch (error) {
        const wait = error.retryAfterSeconds;
        if (wait != null && wait <= AUTO_RETRY_MAX_SECONDS && upload.autoRetries < AUTO_RETRIES) {
          upload.autoRetries += 1;
          upload.retryAt = Date.now() + wait * 1000;
          upload.error = error;
          upload.timer = setTimeout(() => {
            this.waiting.unshift(upload);
            this.next();
          }, wait * 1000);
          this.settle(upload, "retrying");
        } else {
          upload.error = error;
          const refused = error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status);
          this.settle(upload, error.stopped ? "stopped" : refused ? "refused" : "failed");
        }
      }
    }

    settle(upload, state) {
      upload.request = null;
      this.running.delete(upload);
      if (UNFINISHED.has(state)) {
        upload.state = state;
        this.onChange(upload);
      } else {
        this.finish(upload, state);
      }
      this.next();
    }
  }

  return { UploadQueue };
})();
