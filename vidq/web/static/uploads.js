// Sending files to POST /convert, a few at a time, each with its progress. The options go
// before the file in the multipart body: the server checks each field as it arrives, so a
// bad option is refused (422) at the start of an upload rather than after all of it.
// XMLHttpRequest rather than fetch, because only it reports an upload's progress.
//
// A large file goes as a resumable upload instead (tus, with the bundled tus-js-client):
// its options are checked first (POST /convert?dry_run=true), then it goes to /uploads in
// chunks; a connection that drops is tried again and the upload goes on from the bytes the
// server has, and the same file chosen again after a reload goes on with its upload too
// (tus-js-client remembers it in localStorage). Its job is asked for once the last byte is in.
"use strict";

const VidqUploads = (() => {
  const AT_ONCE = 2;
  // A busy server (503) or a key over its rate (429) says when to come back: the upload
  // waits and starts again by itself, a few times, if that is soon enough.
  const AUTO_RETRIES = 3;
  const AUTO_RETRY_MAX_SECONDS = 30;
  const UNFINISHED = new Set(["waiting", "uploading", "checking", "retrying"]);
  // Bytes per PATCH of a resumable upload (as vidq's Python client): a request's own cost is
  // small beside it, and a proxy's limit on a request's body is rarely below it.
  const RESUMABLE_CHUNK_BYTES = 64 * 1024 * 1024;
  // A dropped connection is tried again after these waits (then the upload has failed, and
  // goes on by itself once the browser is back online, or with "Try again").
  const RESUMABLE_RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
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

  function errorOfAnswer(status, body, statusText, retryAfterHeader) {
    const message = status === 401
      ? "the API key is not accepted any more."
      : VidqApi.problemMessage(body, `${status} ${statusText || ""}`.trim());
    const retryAfter = Number(retryAfterHeader);
    return new UploadError(message, {
      status,
      retryAfterSeconds: [429, 503].includes(status) && retryAfter > 0 ? retryAfter : null,
    });
  }

  // A JSON request of the upload's: the answer's body, or an UploadError in words.
  async function postJson(upload, path, body, signal, headers = {}) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        signal,
        headers: { Authorization: `Bearer ${upload.key}`, "Content-Type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    } catch (error) {
      if (signal.aborted) throw new UploadError("the upload was stopped.", { stopped: true });
      throw new UploadError("the connection to the server failed.");
    }
    let answer = null;
    try { answer = await response.json(); } catch (_) { /* no body, or not JSON */ }
    if (!response.ok) {
      throw errorOfAnswer(response.status, answer, response.statusText, response.headers.get("Retry-After"));
    }
    return answer;
  }

  // The options of an upload, checked by the server as its job's would be (204 or 422),
  // before the first byte of a long upload goes up.
  function checkOptions(upload, signal) {
    return postJson(upload, "/convert?dry_run=true", upload.options, signal);
  }

  // A large file's trip: {request, done} as `send`'s. `onRetry(attempt)` is told when a
  // dropped connection is tried again. Once all of it is in, `upload.uploadId` names it: a
  // try after one that failed on the way to its job only asks for the job.
  function sendResumably(upload, onProgress, onSent, onRetry) {
    const controller = new AbortController();
    let transfer = null;
    let stop = null;
    const stopped = new Promise((_, reject) => { stop = reject; });
    const transferred = async () => {
      await checkOptions(upload, controller.signal);
      const uploadUrl = await new Promise((resolve, reject) => {
        transfer = new tus.Upload(upload.file, {
          endpoint: new URL("/uploads", window.location.href).href,
          chunkSize: RESUMABLE_CHUNK_BYTES,
          retryDelays: RESUMABLE_RETRY_DELAYS_MS,
          headers: { Authorization: `Bearer ${upload.key}` },
          metadata: { filename: upload.file.name, filetype: upload.file.type || "application/octet-stream" },
          removeFingerprintOnSuccess: true,
          onProgress,
          onShouldRetry: (error, attempt) => {
            const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
            const again = status === 0 || status >= 500 || [409, 423, 429].includes(status);
            if (again) onRetry(attempt + 1);
            return again;
          },
          onError: (error) => {
            const response = error.originalResponse;
            if (!response) {
              reject(new UploadError("the connection to the server failed; the upload goes on from where it stopped when tried again."));
              return;
            }
            let body = null;
            try { body = JSON.parse(response.getBody()); } catch (_) { /* not JSON */ }
            reject(errorOfAnswer(response.getStatus(), body, "", response.getHeader("Retry-After")));
          },
          onSuccess: () => resolve(transfer.url),
        });
        // The same file begun before (this browser remembers it): go on from its offset.
        transfer.findPreviousUploads().then((previous) => {
          if (controller.signal.aborted) return;
          if (previous.length) transfer.resumeFromPreviousUpload(previous[0]);
          transfer.start();
        }, reject);
      });
      return uploadUrl.replace(/\/+$/, "").split("/").pop();
    };
    const work = (async () => {
      if (!upload.uploadId) upload.uploadId = await transferred();
      onSent();
      return postJson(upload, "/convert", { ...upload.options, upload_id: upload.uploadId }, controller.signal, {
        "Idempotency-Key": upload.idempotencyKey,
      });
    })();
    const request = {
      abort() {
        controller.abort();
        // Stopped by the user: the server drops what it has (if it can be told).
        if (transfer) transfer.abort(true).catch(() => {});
        stop(new UploadError("the upload was stopped.", { stopped: true }));
      },
    };
    return { request, done: Promise.race([work, stopped]) };
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
        reject(errorOfAnswer(request.status, body, request.statusText, request.getResponseHeader("Retry-After")));
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

  // The page's uploads. Each is an object the page reads: {id, file, batch, resumable, state,
  // loaded, total, job, error, retryAt, note}, `note` a line on a resumable upload's
  // reconnection, `state` one of waiting (for its turn), uploading, checking (sent;
  // the server probes it), retrying (waiting to start again), accepted (`job` is set),
  // refused (the server said no: `error`), failed (`error`; it can be tried again) or
  // stopped (by the user). `onChange(upload)` is called at each change.
  class UploadQueue {
    constructor(onChange) {
      this.onChange = onChange;
      this.waiting = [];
      this.running = new Set();
      this.unfinished = new Set();
      // Back online: resumable uploads that failed on the network go on by themselves.
      window.addEventListener("online", () => {
        for (const upload of [...this.unfinished]) {
          if (upload.state === "failed" && upload.resumable && !upload.error.status) this.retry(upload);
        }
      });
    }

    // A new upload of `file` with these options (form fields, sent in this order); `batch`
    // names the files chosen or dropped together; `resumable`: sent as a resumable upload.
    add(file, options, key, batch, { resumable = false } = {}) {
      lastId += 1;
      const upload = {
        id: `upload-${lastId}`, file, options: { ...options }, key, batch, idempotencyKey: idempotencyKey(),
        resumable, state: "waiting", loaded: 0, total: file.size, job: null, error: null,
        retryAt: null, autoRetries: 0, request: null, timer: null, note: null, uploadId: null,
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
      upload.note = null;
      this.onChange(upload);
      const onProgress = (loaded, total) => {
        upload.loaded = loaded;
        upload.total = total;
        upload.note = null;
        this.onChange(upload);
      };
      const onSent = () => {
        if (upload.state !== "uploading") return;
        upload.state = "checking";
        this.onChange(upload);
      };
      const onRetry = (attempt) => {
        upload.note = `The connection dropped; reconnecting (try ${attempt}) to go on from where it stopped.`;
        this.onChange(upload);
      };
      const { request, done } = upload.resumable
        ? sendResumably(upload, onProgress, onSent, onRetry)
        : send(upload, onProgress, onSent);
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
