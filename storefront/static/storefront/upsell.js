// Post-purchase page: poll while a charge waits behind the gate; 3-D Secure confirmation.
(function () {
  "use strict";
  var root = document.getElementById("upsell");
  if (!root) return;
  var stage = root.dataset.stage;
  var csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;

  // One click means one POST: a second click while the first is on its way does nothing.
  ["accept-form", "decline-form"].forEach(function (id) {
    var form = document.getElementById(id);
    if (!form) return;
    form.addEventListener("submit", function (ev) {
      if (form.dataset.sent) { ev.preventDefault(); return; }
      form.dataset.sent = "1";
      Array.prototype.forEach.call(document.querySelectorAll("#offer button"), function (b) { b.disabled = true; });
    });
  });

  if (stage === "queued" || stage === "charging") {
    var tries = 0;
    var timer = setInterval(function () {
      if (++tries > 150) { clearInterval(timer); return; }  // ~5 minutes, then the Refresh link
      fetch(root.dataset.statusUrl, {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (s) { if (s.stage !== stage) { clearInterval(timer); window.location.reload(); } })
        .catch(function () {});
    }, 2000);
  }

  if (stage === "requires_action") {
    var button = document.getElementById("confirm-button");
    var error = document.getElementById("confirm-error");
    var LOAD_FAILED = "The payment form could not load, so nothing can be confirmed and nothing was charged. " +
                      "Reload the page, or choose Not now.";
    window.addEventListener("load", function () {
      if (typeof window.Stripe !== "function") error.textContent = LOAD_FAILED;
    });
    button.addEventListener("click", function () {
      if (typeof window.Stripe !== "function") { error.textContent = LOAD_FAILED; return; }
      button.disabled = true; error.textContent = "";
      var stripe = window.Stripe(root.dataset.pk);
      stripe.confirmCardPayment(root.dataset.clientSecret).then(function () {
        // Whatever the bank said, the server re-reads the payment: it is the source of truth.
        return fetch(root.dataset.confirmUrl, {method: "POST", credentials: "same-origin",
                                               headers: {"X-CSRFToken": csrf}});
      }).then(function (r) { return r.json(); }).then(function (s) {
        if (s.stage === "requires_action") { error.textContent = "The payment was not confirmed. Try again, or choose Not now."; button.disabled = false; return; }
        window.location.assign(s.next || window.location.href);
      }).catch(function () { error.textContent = "Something went wrong. Try again."; button.disabled = false; });
    });
  }
})();
