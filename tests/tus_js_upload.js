// Upload a file to vidq's /uploads with the tus-js-client the page bundles, under node.
//
//     node tests/tus_js_upload.js ENDPOINT API_KEY FILE CHUNK_BYTES
//
// The bundle is tus-js-client's browser build (vidq/web/static/vendor/tus/tus.min.js);
// node has no XMLHttpRequest, so it is given an HTTP stack on node's own `http` module
// through its documented `httpStack` option; everything else (creation, HEAD, PATCH,
// retries after a broken connection, resuming from the server's offset) is the library's.
// Prints one JSON line: {"url": the upload's URL, "attempts": PATCH requests sent,
// "errors": requests that failed on the network}; exits 1 if the upload fails.
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");

const tus = require(path.join(__dirname, "..", "vidq", "web", "static", "vendor", "tus", "tus.min.js"));

const [endpoint, apiKey, file, chunkBytes] = process.argv.slice(2);
const counts = { attempts: 0, errors: 0 };

class NodeResponse {
  constructor(message, body) {
    this._message = message;
    this._body = body;
  }
  getStatus() {
    return this._message.statusCode;
  }
  getHeader(name) {
    const value = this._message.headers[name.toLowerCase()];
    return value === undefined ? undefined : String(value);
  }
  getBody() {
    return this._body;
  }
  getUnderlyingObject() {
    return this._message;
  }
}

class NodeRequest {
  constructor(method, url) {
    this._method = method;
    this._url = url;
    this._headers = {};
    this._request = null;
  }
  getMethod() {
    return this._method;
  }
  getURL() {
    return this._url;
  }
  setHeader(name, value) {
    this._headers[name] = value;
  }
  getHeader(name) {
    return this._headers[name];
  }
  setProgressHandler() {}
  async send(body = null) {
    const data = body === null ? null : Buffer.from(await body.arrayBuffer());
    if (this._method === "PATCH") counts.attempts += 1;
    return new Promise((resolve, reject) => {
      const headers = { ...this._headers };
      if (data !== null) headers["Content-Length"] = String(data.length);
      this._request = http.request(this._url, { method: this._method, headers }, (message) => {
        const parts = [];
        message.on("data", (part) => parts.push(part));
        message.on("end", () => resolve(new NodeResponse(message, Buffer.concat(parts).toString())));
        message.on("error", (error) => {
          counts.errors += 1;
          reject(error);
        });
      });
      this._request.on("error", (error) => {
        counts.errors += 1;
        reject(error);
      });
      this._request.end(data === null ? undefined : data);
    });
  }
  abort() {
    if (this._request !== null) this._request.destroy();
    return Promise.resolve();
  }
  getUnderlyingObject() {
    return this._request;
  }
}

const httpStack = {
  createRequest: (method, url) => new NodeRequest(method, url),
  getName: () => "NodeHttpStack",
};

const bytes = fs.readFileSync(file);
const blob = new Blob([bytes], { type: "video/mp4" });
const upload = new tus.Upload(blob, {
  endpoint,
  httpStack,
  chunkSize: Number(chunkBytes),
  retryDelays: [0, 200, 500, 1000, 2000],
  headers: { Authorization: `Bearer ${apiKey}` },
  metadata: { filename: path.basename(file), filetype: "video/mp4" },
  onError: (error) => {
    console.error(String(error));
    process.exit(1);
  },
  onSuccess: () => {
    console.log(JSON.stringify({ url: upload.url, ...counts }));
  },
});
upload.start();
