// Talking to the vidq API (API.md) with the user's key: requests, and the words of its
// RFC 9457 problem answers.
"use strict";

const VidqApi = (() => {
  class ApiError extends Error {
    constructor(message, status = 0, problem = null) {
      super(message);
      this.status = status;
      this.problem = problem;
    }
  }

  // The readable part of a problem (or of whatever else came back): its detail, else its
  // list of field errors, else its title.
  function problemMessage(body, fallback) {
    if (!body || typeof body !== "object") return fallback;
    if (body.detail) return String(body.detail);
    if (Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; ");
    }
    return body.title || fallback;
  }

  // fetch with the key; an answer other than 2xx is thrown as an ApiError in words.
  async function request(path, key, options = {}) {
    let response;
    try {
      response = await fetch(path, {
        ...options,
        headers: { Authorization: `Bearer ${key}`, ...(options.headers || {}) },
      });
    } catch (_) {
      throw new ApiError("the vidq server cannot be reached. Check that it runs and try again.");
    }
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON */ }
      const fallback = `${response.status} ${response.statusText}`.trim();
      throw new ApiError(problemMessage(body, fallback), response.status, body);
    }
    return response;
  }

  return { ApiError, problemMessage, request };
})();
