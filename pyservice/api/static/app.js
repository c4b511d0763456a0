// copyengine's web page: the little behaviour the server-rendered HTML needs.
// - the leaderboard's filter form drops empty fields from the URL;
// - a provider's copy form is sent to the follower API with the token typed into it,
//   a fresh Idempotency-Key per submission, and the verdict shown: applied, pending
//   (polled), or the error message next to the field it names (else at the top).
// No inline script anywhere (the Content-Security-Policy allows only this file).
"use strict";

(function () {
  function idempotencyKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      })
      .join("");
  }

  // -- the leaderboard's filters --------------------------------------------------
  function setUpFilters(form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, name) {
        if (typeof value === "string" && value.trim() !== "") {
          params.append(name, value.trim());
        }
      });
      var query = params.toString();
      window.location.assign(form.getAttribute("action") + (query ? "?" + query : ""));
    });
  }

  // -- the copy form --------------------------------------------------------------
  var FIELD = /field '([a-z_]+)'/;

  function setUpCopy(form) {
    var status = form.querySelector(".form-status");
    var button = form.querySelector("button[type=submit]");

    function clear() {
      status.textContent = "";
      status.className = "form-status";
      form.querySelectorAll(".field-error").forEach(function (p) {
        p.textContent = "";
      });
      form.querySelectorAll("[aria-invalid]").forEach(function (el) {
        el.removeAttribute("aria-invalid");
      });
    }

    function show(kind, text) {
      status.textContent = text;
      status.className = "form-status " + kind;
    }

    function fieldError(name, text) {
      var slot = form.querySelector("#c-" + name + "-error");
      var input = form.querySelector("#c-" + name);
      if (!slot || !input) {
        return false;
      }
      slot.textContent = text;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return true;
    }

    function failure(httpStatus, body) {
      var error = body && body.error ? body.error : null;
      var text = error ? error.message : "the request failed (HTTP " + httpStatus + ")";
      if (httpStatus === 401) {
        if (!fieldError("token", text)) show("error", text);
        return;
      }
      var named = FIELD.exec(text);
      if (named && fieldError(named[1], text)) {
        show("error", "Not copied: see the field marked below.");
        return;
      }
      show("error", (httpStatus === 409 ? "Refused: " : "Not copied: ") + text);
    }

    function answer(httpStatus, body, token) {
      if (httpStatus === 200 && body && body.status === "applied") {
        show("ok", "Applied: you copy this provider now (change " + body.change + ").");
      } else if (httpStatus === 200 || httpStatus === 202) {
        show("pending", "Pending: the engine has not applied change " + body.change + " yet; checking again…");
        poll(body.poll, token, 10);
      } else {
        failure(httpStatus, body);
      }
    }

    function request(url, options) {
      return fetch(url, options).then(function (response) {
        return response
          .json()
          .catch(function () {
            return null;
          })
          .then(function (body) {
            return { status: response.status, body: body };
          });
      });
    }

    function poll(url, token, left) {
      if (left <= 0) {
        show("pending", "Pending: not applied yet. It will be applied when the engine reaches it.");
        return;
      }
      window.setTimeout(function () {
        request(url, { headers: { Authorization: "Bearer " + token } }).then(
          function (r) {
            if (r.status === 202) {
              poll(url, token, left - 1);
            } else {
              answer(r.status, r.body, token);
            }
          },
          function () {
            poll(url, token, left - 1);
          },
        );
      }, 1000);
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clear();
      var data = new FormData(form);
      var token = String(data.get("token") || "").trim();
      if (token === "") {
        fieldError("token", "Enter a follower token.");
        return;
      }
      var body = {};
      data.forEach(function (value, name) {
        value = String(value).trim();
        if (name === "token" || value === "") return;
        if (name === "max_open_trades" && /^[0-9]+$/.test(value)) {
          body[name] = Number(value);
        } else if (name === "stop_copy_on_close") {
          body[name] = value === "true";
        } else {
          body[name] = value;
        }
      });
      if (!("allocation" in body)) {
        fieldError("allocation", "Enter the allocation, e.g. 1000.");
        return;
      }
      button.disabled = true;
      show("pending", "Sending…");
      request(form.getAttribute("data-url"), {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Authorization: "Bearer " + token,
          "Idempotency-Key": idempotencyKey(),
        },
        body: JSON.stringify(body),
      })
        .then(
          function (r) {
            answer(r.status, r.body, token);
          },
          function () {
            show("error", "The request could not be sent; check the connection.");
          },
        )
        .then(function () {
          button.disabled = false;
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var filters = document.getElementById("filters");
    if (filters) setUpFilters(filters);
    var copy = document.getElementById("copy-form");
    if (copy) setUpCopy(copy);
  });
})();
