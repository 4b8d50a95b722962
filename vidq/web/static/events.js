// Live job updates for the page: GET /jobs/events read as Server-Sent Events. EventSource
// cannot send an Authorization header, so the stream is read with fetch and parsed here.
// A dropped stream is opened again with growing waits; only while it cannot be had is
// GET /jobs polled instead. After each (re)connection the list is read once from GET /jobs,
// since the stream's first events are the unfinished jobs only and changes made while it
// was closed are not sent again.
"use strict";

const VidqEvents = (() => {
  const STREAM = "/jobs/events";
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30_000;
  const UNAVAILABLE_RETRY_MS = 60_000; // the server has no stream (an older vidq, a proxy)
  const STALL_MS = 45_000; // the server sends a keep-alive at least every 15 s
  const STEADY_MS = 10_000; // a stream open this long has worked: the waits start again
  const POLL_ACTIVE_MS = 2000;
  const POLL_IDLE_MS = 10_000;
  const ACTIVE = new Set(["queued", "running"]);

  // An incremental reader of text/event-stream, after the WHATWG "event stream
  // interpretation": lines end with CRLF, LF or CR (a CR at the end of one chunk may be
  // followed by its LF at the start of the next); `:` starts a comment; a blank line
  // dispatches the event gathered so far.
  class EventStreamParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.rest = "";
      this.skipLineFeed = false;
      this.lastEventId = "";
      this.clear();
    }

    clear() {
      this.type = "";
      this.data = [];
    }

    push(text) {
      if (this.skipLineFeed && text.startsWith("\n")) text = text.slice(1);
      const whole = this.rest + text;
      const lines = whole.split(/\r\n|\r|\n/);
      this.rest = lines.pop();
      this.skipLineFeed = whole.endsWith("\r");
      for (const line of lines) this.line(line);
    }

    line(line) {
      if (line === "") {
        if (this.data.length) {
          this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId });
        }
        this.clear();
        return;
      }
      if (line.startsWith(":")) return;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.type = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
      // `retry` is not used: the page keeps its own waits between connections.
    }
  }

  function isEventStream(response) {
    return (response.headers.get("content-type") || "").toLowerCase().startsWith("text/event-stream");
  }

  function retryAfterMs(response) {
    const seconds = Number(response.headers.get("retry-after"));
    return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : null;
  }

  // Follow the owner's jobs until `stop()`. `list()` reads GET /jobs (its jobs, or throws an
  // error with a `status`); the handlers receive:
  //   job(job)             a job as the stream sent it (new, or changed)
  //   deleted(id)          a job deleted
  //   listing(jobs)        the list from GET /jobs: once after each opening of the stream,
  //                        and as the fallback poll while the stream is down
  //   state(name, waitMs)  "connecting", "live", or "polling" (the stream is down and is
  //                        tried again in waitMs)
  //   unauthorized()       the key is refused: everything has stopped
  function follow({ key, list, handlers }) {
    let stopped = false;
    let controller = null;
    let reconnectTimer = null;
    let pollTimer = null;
    let stallTimer = null;
    let failures = 0;
    let openedAt = 0;
    let live = false;
    let listed = false; // a list has been shown at least once
    let listSeq = 0;

    function stop() {
      stopped = true;
      live = false;
      listSeq += 1;
      clearTimeout(reconnectTimer);
      clearTimeout(pollTimer);
      clearTimeout(stallTimer);
      if (controller) controller.abort();
    }

    function unauthorized() {
      if (stopped) return;
      stop();
      handlers.unauthorized();
    }

    // Read the list once; an answer overtaken by a newer read is dropped.
    async function readList() {
      const seq = ++listSeq;
      let jobs;
      try {
        jobs = await list();
      } catch (error) {
        if (stopped || seq !== listSeq) return null;
        if (error.status === 401) {
          unauthorized();
          return null;
        }
        throw error;
      }
      if (stopped || seq !== listSeq) return null;
      listed = true;
      handlers.listing(jobs);
      return jobs;
    }

    async function syncAfterOpen(attempt = 0) {
      try {
        await readList();
      } catch (_) {
        // Not a poll: one read the stream needs, tried again until it works.
        if (!stopped && live) {
          clearTimeout(pollTimer);
          pollTimer = setTimeout(() => syncAfterOpen(attempt + 1), Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt));
        }
      }
    }

    async function poll() {
      if (stopped || live) return;
      let delay = POLL_IDLE_MS;
      try {
        const jobs = await readList();
        if (jobs && jobs.some((job) => ACTIVE.has(job.status))) delay = POLL_ACTIVE_MS;
      } catch (_) {
        // The server is unreachable: the state line says so already; try again later.
      }
      if (!stopped && !live) {
        clearTimeout(pollTimer);
        pollTimer = setTimeout(poll, delay);
      }
    }

    function dispatch(event) {
      let body;
      try {
        body = JSON.parse(event.data);
      } catch (_) {
        return; // not an event of this API
      }
      if (!body || typeof body.id !== "string") return;
      if (event.type === "deleted") {
        handlers.deleted(body.id);
      } else if (event.type === "job") {
        handlers.job(body);
      }
    }

    function watchStall() {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => { if (controller) controller.abort(); }, STALL_MS);
    }

    function down(waitMs) {
      if (stopped) return;
      live = false;
      clearTimeout(stallTimer);
      if (openedAt && Date.now() - openedAt > STEADY_MS) failures = 0;
      openedAt = 0;
      failures += 1;
      const backoff = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1));
      const delay = waitMs != null ? waitMs : backoff * (0.75 + Math.random() / 2);
      handlers.state("polling", delay);
      clearTimeout(reconnectTimer);
      reconnectTimer = setTimeout(connect, delay);
      clearTimeout(pollTimer);
      // A list is needed now if none was ever shown; else the reconnection may well bring it.
      pollTimer = setTimeout(poll, listed ? POLL_ACTIVE_MS : 0);
    }

    async function connect() {
      if (stopped) return;
      handlers.state("connecting");
      controller = new AbortController();
      const signal = controller.signal;
      let response;
      try {
        response = await fetch(STREAM, {
          headers: { Authorization: `Bearer ${key}`, Accept: "text/event-stream" },
          cache: "no-store",
          signal,
        });
      } catch (_) {
        down();
        return;
      }
      if (stopped) return;
      if (response.status === 401) {
        unauthorized();
        return;
      }
      if (!response.ok || !isEventStream(response) || !response.body) {
        if (response.body) response.body.cancel().catch(() => {});
        const unavailable = [404, 405, 406, 501].includes(response.status) || response.ok;
        down(retryAfterMs(response) || (unavailable ? UNAVAILABLE_RETRY_MS : null));
        return;
      }
      live = true;
      openedAt = Date.now();
      clearTimeout(pollTimer);
      handlers.state("live");
      const parser = new EventStreamParser(dispatch);
      syncAfterOpen();
      watchStall();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || stopped) break;
          watchStall();
          parser.push(value);
        }
      } catch (_) {
        // The connection broke, or the stall watch aborted it: opened again below.
      }
      if (!stopped) down();
    }

    connect();
    return { stop };
  }

  return { follow, EventStreamParser };
})();
