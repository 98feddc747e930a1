// Checkout: live totals for the bump, card setup with Stripe.js, one payment, 3-D Secure.
(function () {
  "use strict";
  var form = document.getElementById("checkout-form");
  if (!form) return;
  var payButton = document.getElementById("pay-button");
  var formError = document.getElementById("form-error");
  var statusLine = document.getElementById("stripe-status");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  document.getElementById("without-js").hidden = true;  // totals update live from here on
  var busy = false;
  var quoting = 0;
  var quoteSeq = 0;

  var FIELDS = {email: "id_email", country: "id_country", region: "id_region", coupon: "id_coupon",
                card: "card-element"};
  var LOAD_FAILED = "The card form could not load, so you cannot pay yet and nothing has been charged. " +
                    "Check your connection and reload the page.";

  function clearErrors() {
    formError.textContent = "";
    Object.keys(FIELDS).forEach(function (f) {
      var el = document.getElementById(f + "-error"), input = document.getElementById(FIELDS[f]);
      if (el) el.textContent = "";
      if (input) input.removeAttribute("aria-invalid");
    });
  }

  // The summary at the top is announced (role=alert); the field gets the same words, is marked
  // invalid and takes the focus, so a screen reader lands where the fix is.
  function showError(msg, field) {
    if (!msg) { clearErrors(); return; }
    formError.textContent = "Error: " + msg;
    var el = document.getElementById((FIELDS[field] ? field : "card") + "-error");
    var input = document.getElementById(FIELDS[field] || "");
    if (FIELDS[field] && el) el.textContent = msg;
    if (input && field !== "card") { input.setAttribute("aria-invalid", "true"); input.focus(); }
    else formError.focus();
  }

  var UNREADABLE = "The store could not process this step, and nothing has been charged. " +
                   "Check your connection and try again in a moment.";

  // Every answer becomes an object with an error the buyer can read: a proxy's HTML error
  // page, an empty body or a dropped connection must never surface as a parser message.
  function readAnswer(r) {
    var type = r.headers.get("Content-Type") || "";
    if (type.indexOf("application/json") === -1) {
      return {_status: r.status, status: "error", error: UNREADABLE};
    }
    return r.json().then(function (j) {
      if (!j || typeof j !== "object") j = {};
      j._status = r.status;
      if (r.status >= 400 && typeof j.error !== "string") { j.status = "error"; j.error = UNREADABLE; }
      return j;
    }, function () { return {_status: r.status, status: "error", error: UNREADABLE}; });
  }

  function post(url, data) {
    var body = data instanceof FormData ? data : new URLSearchParams(data);
    return fetch(url, {method: "POST", body: body, credentials: "same-origin",
                       headers: {"X-CSRFToken": csrf, "Accept": "application/json"}})
      .then(readAnswer, function () { return {_status: 0, status: "error", error: UNREADABLE}; });
  }

  function refreshQuote() {
    var params = new URLSearchParams({country: form.country.value, region: form.region.value,
                                      coupon: form.coupon ? form.coupon.value.trim() : ""});
    var bump = form.querySelector("input[name=bump]");
    if (bump) { params.set("bump", bump.value); params.set("add_bump", document.getElementById("id_add_bump").checked ? "on" : ""); }
    // The buyer must not pay a total that is still being recomputed.
    quoting += 1; payButton.disabled = true;
    var mine = ++quoteSeq;  // answers can arrive out of order: only the latest one counts
    fetch(form.dataset.quoteUrl + "?" + params.toString(),
          {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(readAnswer, function () { return {_status: 0, error: UNREADABLE}; })
      .then(function (q) {
        if (mine !== quoteSeq) return;
        if (q.error) { showError(q.error, q.field || (q._status === 400 ? "country" : "")); return; }
        clearErrors();
        var rows = document.getElementById("summary-lines");
        rows.innerHTML = "";
        q.lines.forEach(function (l) {
          var tr = document.createElement("tr");
          var a = document.createElement("td"); a.textContent = l.description;
          var b = document.createElement("td"); b.className = "amount"; b.textContent = l.total_display;
          tr.appendChild(a); tr.appendChild(b); rows.appendChild(tr);
        });
        var discountRow = document.getElementById("discount-line");
        if (discountRow) {
          discountRow.hidden = !q.coupon;
          document.getElementById("discount-label").textContent = q.coupon_label || "";
          document.getElementById("discount").textContent = q.discount_display || "";
        }
        document.getElementById("tax").textContent = q.tax_display;
        document.getElementById("tax-name").textContent = q.tax_name;
        document.getElementById("total").textContent = q.total_display;
        document.getElementById("id_expected_total").value = q.total;
        payButton.textContent = q.total === 0 ? "Start free trial" : "Pay " + q.total_display;
        var trial = (q.trial_terms || []).join("; ");
        document.getElementById("trial-terms").textContent = trial;
        document.getElementById("trial-pay-terms").hidden = !trial;
        document.getElementById("pay-terms").hidden = !!trial;
        document.getElementById("total-status").textContent = "Total now " + q.total_display;
      })
      .finally(function () { quoting -= 1; if (!quoting && stripe && !busy) payButton.disabled = false; });
  }
  var QUOTED = ["id_add_bump", "id_country", "id_region", "id_coupon"];
  QUOTED.forEach(function (id) {
    var el = document.getElementById(id);
    if (el) el.addEventListener("change", refreshQuote);
  });
  // A choice made before this script ran (a quick buyer on a slow line, or the browser
  // restoring the form on Back) fired no change we heard: quote it now.
  function untouched(el) {
    if (el.type === "checkbox") return el.checked === el.defaultChecked;
    if (el.tagName !== "SELECT") return el.value === el.defaultValue;
    var first = Array.prototype.findIndex.call(el.options, function (o) { return o.defaultSelected; });
    return el.selectedIndex === Math.max(first, 0);
  }
  if (QUOTED.some(function (id) { var el = document.getElementById(id); return el && !untouched(el); })) {
    refreshQuote();
  }

  var stripe, card;
  // A slow or blocked Stripe.js must not leave a silent, dead Pay button.
  var loadTimer = setTimeout(function () {
    if (!stripe) statusLine.textContent = LOAD_FAILED;
  }, 8000);
  window.addEventListener("load", function () {
    clearTimeout(loadTimer);
    if (typeof window.Stripe !== "function") {
      statusLine.textContent = LOAD_FAILED;
      payButton.textContent = "Card form unavailable";
      return;
    }
    statusLine.textContent = "";
    stripe = window.Stripe(form.dataset.pk);
    card = stripe.elements().create("card");
    card.mount("#card-element");
    if (!quoting) payButton.disabled = false;
  });

  function finish(result, confirmUrl) {
    if (result.status === "paid" || result.status === "processing") { window.location.assign(result.next); return; }
    if (result.status === "requires_action") {
      statusLine.textContent = "Your bank asks you to confirm this payment.";
      return stripe.confirmCardPayment(result.client_secret).then(function () {
        return post(confirmUrl, {});
      }).then(function (r) { return finish(r, confirmUrl); });
    }
    throw new Error(result.error || "The payment did not go through.");
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    // "Apply" (or Enter in the coupon field) re-prices the order; only Pay pays.
    if (ev.submitter && ev.submitter.id === "apply-coupon") { refreshQuote(); return; }
    if (busy || !stripe) return;
    busy = true; payButton.disabled = true; clearErrors();
    statusLine.textContent = "Processing…";
    var started;
    post(form.dataset.startUrl, new FormData(form)).then(function (s) {
      if (s._status !== 200) { var f = s.fields ? Object.keys(s.fields)[0] : null; showError(s.error, f); throw null; }
      started = s;
      return stripe.confirmCardSetup(s.setup_client_secret, {payment_method: {card: card}});
    }).then(function (setup) {
      if (setup.error) throw new Error(setup.error.message || "Your card could not be saved.");
      if (!setup.setupIntent || setup.setupIntent.status !== "succeeded") throw new Error("Your card could not be verified.");
      started.setupId = setup.setupIntent.id;
      return post(started.pay_url, {setup_intent: started.setupId});
    }).then(function (r) {
      // The card's country disagrees with the chosen one: nothing is charged until the buyer
      // confirms where they live (EU VAT evidence); then the same payment is sent again.
      if (r.status === "confirm_country") {
        if (!window.confirm(r.error)) throw new Error("Choose the country you live in, then pay again.");
        return post(started.pay_url, {setup_intent: started.setupId, confirm_country: r.country});
      }
      return r;
    }).then(function (r) { return finish(r, started.confirm_url); })
      .catch(function (err) {
        if (err) showError(err.message || "The payment did not go through.", "card");
        statusLine.textContent = "";
        busy = false; payButton.disabled = false;
      });
  });
})();
