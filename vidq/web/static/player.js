// The player of a finished job, shown in the page itself: a <video> for a single video file,
// hls.js (or the browser's own HLS) or dash.js for a streaming package, an <audio> for sound
// only, an <img> for a still; the poster, and the storyboard as a preview over a seek bar.
// hls.js and dash.js are bundled under /static/vendor (see `make vendor`) and loaded only
// when a package is played; every file comes from the job's own signed URLs.
"use strict";

const VidqPlayer = (() => {
  const SCRIPTS = {
    hls: "/static/vendor/hls/hls.min.js",
    dash: "/static/vendor/dashjs/dash.mediaplayer.min.js",
  };
  const HLS_TYPE = "application/vnd.apple.mpegurl";
  const scripts = new Map(); // src -> Promise, so that each player is loaded once

  function loadScript(src) {
    if (!scripts.has(src)) {
      scripts.set(src, new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = src;
        script.addEventListener("load", resolve);
        script.addEventListener("error", () => {
          scripts.delete(src); // try again next time
          script.remove();
          reject(new Error("the player could not be loaded from the server"));
        });
        document.head.append(script);
      }));
    }
    return scripts.get(src);
  }

  // The signed URL of a file of the result, or null. Until a result has a `base_url` its
  // files other than the download cannot be fetched (relative names then give null).
  function resolve(path, result) {
    if (!path) return null;
    try {
      return new URL(path, result.base_url || undefined).href;
    } catch (_) {
      return null;
    }
  }

  function fileUrl(result, role) {
    const file = (result.files || []).find((f) => f.role === role);
    return file ? resolve(file.path, result) : null;
  }

  // What the player shows for a job: {kind, ...urls}, or null when there is nothing to play.
  // kind: "package" (hls and/or dash manifests), "video", "audio" or "image".
  function describe(job) {
    const result = job.status === "completed" ? job.result : null;
    if (!result) return null;
    const poster = fileUrl(result, "poster");
    const storyboard = fileUrl(result, "storyboard_vtt");
    const manifests = result.manifests || {};
    const hls = resolve(manifests.hls, result);
    const dash = resolve(manifests.dash, result);
    if (hls || dash) return { kind: "package", hls, dash, poster, storyboard };
    if (result.manifests || !result.download_url) return null; // a package not playable here
    const type = result.content_type || "";
    const source = result.download_url;
    if (type.startsWith("video/")) return { kind: "video", source, poster, storyboard };
    if (type.startsWith("audio/")) return { kind: "audio", source };
    if (type.startsWith("image/")) return { kind: "image", source };
    return null;
  }

  // ---- the storyboard ---------------------------------------------------------------------

  // "01:02:03.456" or "02:03.456" in seconds.
  function seconds(timestamp) {
    return timestamp.split(":").reduce((total, part) => total * 60 + Number(part), 0);
  }

  // The cues of a storyboard WebVTT: [{start, end, image, x, y, w, h}] in time order.
  function parseStoryboard(text, vttUrl) {
    const cues = [];
    const lines = text.split(/\r?\n/);
    const timing = /^\s*((?:\d+:)?\d{1,2}:\d{2}\.\d{3})\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}\.\d{3})/;
    lines.forEach((line, index) => {
      const times = timing.exec(line);
      if (!times) return;
      const tile = /^(.+)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec((lines[index + 1] || "").trim());
      if (!tile) return;
      cues.push({
        start: seconds(times[1]),
        end: seconds(times[2]),
        image: new URL(tile[1], vttUrl).href,
        x: Number(tile[2]),
        y: Number(tile[3]),
        w: Number(tile[4]),
        h: Number(tile[5]),
      });
    });
    return cues.sort((a, b) => a.start - b.start);
  }

  async function loadStoryboard(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`.trim());
    return parseStoryboard(await response.text(), url);
  }

  function cueAt(cues, time) {
    let found = cues[0];
    for (const cue of cues) {
      if (cue.start > time) break;
      found = cue;
    }
    return found;
  }

  function clock(time) {
    const whole = Math.max(0, Math.floor(time));
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const s = String(whole % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function element(tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  // A seek bar under the video: the pointer over it (or the arrow keys on it) shows the
  // storyboard's tile for that time; a click or a key seeks there.
  function scrubBar(video, cues, fallbackDuration) {
    const bar = element("div", "scrub");
    bar.tabIndex = 0;
    bar.setAttribute("role", "slider");
    bar.setAttribute("aria-label", "Seek, with a preview picture");
    bar.setAttribute("aria-valuemin", "0");
    const fill = element("div", "scrub-fill");
    const preview = element("div", "scrub-preview");
    preview.setAttribute("aria-hidden", "true");
    preview.hidden = true;
    const tile = element("div", "scrub-tile");
    const label = element("span", "scrub-time");
    preview.append(tile, label);
    bar.append(fill, preview);

    const duration = () => (Number.isFinite(video.duration) && video.duration > 0 ? video.duration : fallbackDuration);
    const clamp = (value, low, high) => Math.min(Math.max(value, low), high);
    const timeAt = (clientX) => {
      const box = bar.getBoundingClientRect();
      return clamp((clientX - box.left) / box.width, 0, 1) * duration();
    };

    function show(time) {
      const cue = cueAt(cues, time);
      tile.style.width = `${cue.w}px`;
      tile.style.height = `${cue.h}px`;
      tile.style.backgroundImage = `url("${cue.image}")`;
      tile.style.backgroundPosition = `${-cue.x}px ${-cue.y}px`;
      label.textContent = clock(time);
      const width = bar.clientWidth;
      const at = duration() ? (time / duration()) * width : 0;
      preview.style.left = `${clamp(at - cue.w / 2, 0, Math.max(0, width - cue.w))}px`;
      preview.hidden = false;
    }

    function hide() {
      if (document.activeElement !== bar) preview.hidden = true;
    }

    // Not quite to the end: a stream's last frames may end a little before its stated
    // duration, and a seek past them would wait for data that never comes.
    function seek(time) {
      video.currentTime = clamp(time, 0, Math.max(0, duration() - 0.1));
      update();
    }

    function update() {
      const total = duration();
      const now = video.currentTime || 0;
      fill.style.width = total ? `${clamp((100 * now) / total, 0, 100)}%` : "0";
      bar.setAttribute("aria-valuemax", String(Math.round(total)));
      bar.setAttribute("aria-valuenow", String(Math.round(now)));
      bar.setAttribute("aria-valuetext", `${clock(now)} of ${clock(total)}`);
    }

    bar.addEventListener("pointermove", (event) => show(timeAt(event.clientX)));
    bar.addEventListener("pointerleave", hide);
    bar.addEventListener("click", (event) => seek(timeAt(event.clientX)));
    bar.addEventListener("focus", () => show(video.currentTime || 0));
    bar.addEventListener("blur", () => { preview.hidden = true; });
    bar.addEventListener("keydown", (event) => {
      const total = duration();
      const steps = {
        ArrowLeft: -5, ArrowDown: -5, ArrowRight: 5, ArrowUp: 5,
        PageDown: -total / 10, PageUp: total / 10,
      };
      let time;
      if (event.key in steps) time = (video.currentTime || 0) + steps[event.key];
      else if (event.key === "Home") time = 0;
      else if (event.key === "End") time = total;
      else return;
      event.preventDefault();
      seek(time);
      show(clamp(time, 0, total));
    });
    for (const name of ["timeupdate", "durationchange", "seeked", "loadedmetadata"]) {
      video.addEventListener(name, update);
    }
    update();
    return bar;
  }

  // ---- playing ----------------------------------------------------------------------------

  function startPlaying(media) {
    // Asked for by a click, so the browser allows sound; if it still says no, the controls are there.
    const started = media.play();
    if (started) started.catch(() => {});
  }

  // Attach a package to the video; returns a function that stops its player, or throws.
  async function attachPackage(video, plan, fail) {
    if (plan.hls) {
      await loadScript(SCRIPTS.hls);
      if (window.Hls && window.Hls.isSupported()) {
        const hls = new window.Hls();
        hls.on(window.Hls.Events.ERROR, (_, data) => {
          if (data.fatal) fail(`The stream stopped: ${data.details || data.type}.`);
        });
        hls.on(window.Hls.Events.MANIFEST_PARSED, () => startPlaying(video));
        hls.loadSource(plan.hls);
        hls.attachMedia(video);
        video.vidqHls = hls; // for whoever inspects the page (and the tests)
        return () => hls.destroy();
      }
      if (video.canPlayType(HLS_TYPE)) {
        video.src = plan.hls;
        startPlaying(video);
        return () => {};
      }
    }
    if (plan.dash && window.MediaSource) {
      await loadScript(SCRIPTS.dash);
      const player = window.dashjs.MediaPlayer().create();
      player.on(window.dashjs.MediaPlayer.events.ERROR, (event) => {
        const error = event && event.error;
        fail(`The stream stopped: ${(error && error.message) || "a playback error"}.`);
      });
      player.initialize(video, plan.dash, true);
      video.vidqDash = player;
      return () => player.reset();
    }
    throw new Error("this browser cannot play streaming video");
  }

  // Show the job in `container`; `status(message)` reports trouble. Returns a function that
  // stops everything and empties the container.
  function mount(container, job, plan, status) {
    const name = (job.result && job.result.filename) || (job.input && job.input.filename) || job.id;
    const stops = [];
    let closed = false;
    const fail = (message) => { if (!closed) status(message); };
    const frame = element("figure", `player player-${plan.kind}`);
    container.replaceChildren(frame);
    const stop = () => {
      closed = true;
      for (const each of stops.splice(0)) each();
      container.replaceChildren();
    };

    if (plan.kind === "image") {
      const image = element("img");
      image.src = plan.source;
      image.alt = `${name}, the converted still`;
      frame.append(image);
      return stop;
    }

    const media = element(plan.kind === "audio" ? "audio" : "video");
    media.controls = true;
    media.preload = "metadata";
    media.setAttribute("aria-label", name);
    const video = job.result && job.result.video;
    if (plan.kind !== "audio" && video && video.width && video.height) {
      media.width = video.width; // the right shape before the first frame arrives
      media.height = video.height;
    }
    if (plan.poster) media.poster = plan.poster;
    media.addEventListener("error", () => {
      fail("This browser cannot play this file. Download it instead.");
    });
    frame.append(media);
    stops.push(() => {
      media.pause();
      media.removeAttribute("src");
      media.load();
    });

    if (plan.storyboard) {
      const duration = (job.result && job.result.duration_seconds) || 0;
      loadStoryboard(plan.storyboard).then((cues) => {
        if (!closed && cues.length) frame.append(scrubBar(media, cues, duration || cues[cues.length - 1].end));
      }).catch(() => {}); // the preview is a nicety: the video plays without it
    }

    if (plan.kind === "package") {
      attachPackage(media, plan, fail).then((stopPlayer) => {
        if (closed) stopPlayer();
        else stops.unshift(stopPlayer);
      }).catch((error) => fail(`This package cannot be played here: ${error.message}.`));
    } else {
      media.src = plan.source;
      startPlaying(media);
    }
    return stop;
  }

  return { describe, mount, parseStoryboard };
})();
