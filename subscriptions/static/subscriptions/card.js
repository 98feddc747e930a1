// Subscription pages: save a new card with confirmCardSetup, or confirm a renewal on-session.
(function () {
  "use strict";
  var statusLine = document.getElementById("card-status");
  function post(url, form, data) {
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    return fetch(url, {method: "POST", body: new URLSearchParams(data), credentials: "same-origin",
                       headers: {"X-CSRFToken": csrf, "Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .catch(function () { return {error: "The store could not be reached. Nothing was changed."}; });
  }
  window.addEventListener("load", function () {
    if (typeof window.Stripe !== "function") {
      statusLine.textContent = "The card form could not load. Reload the page to try again.";
      return;
    }
    var cardForm = document.getElementById("card-form");
    var confirmForm = document.getElementById("confirm-form");
    var form = cardForm || confirmForm;
    var stripe = window.Stripe(form.dataset.pk);
    var button = form.querySelector("button[type=submit]");
    var card = null;
    if (cardForm) {
      card = stripe.elements().create("card");
      card.mount("#card-element");
    }
    button.disabled = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      button.disabled = true;
      statusLine.textContent = "Working…";
      if (cardForm) {
        stripe.confirmCardSetup(form.dataset.secret, {payment_method: {card: card}}).then(function (result) {
          if (result.error || !result.setupIntent || result.setupIntent.status !== "succeeded") {
            statusLine.textContent = (result.error && result.error.message) || "The card was not saved.";
            button.disabled = false;
            return;
          }
          return post(form.dataset.postUrl, form, {setup_ref: form.dataset.setup}).then(function (j) {
            statusLine.textContent = j.error || j.message;
            if (j.error) button.disabled = false;
          });
        });
      } else {
        stripe.confirmCardPayment(form.dataset.secret).then(function (result) {
          return post(form.dataset.postUrl, form, {}).then(function (j) {
            statusLine.textContent = j.status === "succeeded" ? "Thank you: your payment went through."
              : "The payment was not confirmed. Nothing was charged.";
          });
        });
      }
    });
  });
})();
