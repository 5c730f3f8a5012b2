// XDP47 operator UI: the few behaviours htmx does not cover. No inline script is
// allowed by the Content-Security-Policy, so everything is delegated from here.
(function () {
  "use strict";
  // A confirmation dialog fetched into #modal-slot opens as a modal.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "modal-slot") return;
    var dialog = target.querySelector("dialog");
    if (dialog && !dialog.open) dialog.showModal();
  });
  // Cancel closes the dialog it sits in.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-close-dialog]");
    if (!button) return;
    var dialog = button.closest("dialog");
    if (dialog) dialog.close();
  });
  // A closed dialog leaves the page, so a stale count is never reused.
  document.addEventListener("close", function (event) {
    var dialog = event.target;
    if (dialog instanceof HTMLDialogElement && dialog.parentElement &&
        dialog.parentElement.id === "modal-slot") {
      dialog.remove();
    }
  }, true);
  // A one-shot notice (e.g. "rollout started", "artifact registered") comes from a
  // query parameter of the redirect after a POST; drop that parameter from the
  // address once shown, so a reload or a return to the page does not repeat it.
  var flashes = document.querySelectorAll("[data-flash]");
  if (flashes.length && window.history && window.history.replaceState) {
    var url = new URL(window.location.href);
    flashes.forEach(function (el) { url.searchParams.delete(el.dataset.flash); });
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }
  // The upload form: a file over the server's limit is refused here, before its
  // bytes are sent (the server refuses it too, but only once they arrive).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.maxBytes) return;
    var input = form.querySelector("input[type=file]");
    var note = form.querySelector("[data-file-too-large]");
    var file = input && input.files && input.files[0];
    if (!file || !note || file.size <= Number(form.dataset.maxBytes)) return;
    event.preventDefault();
    note.textContent = "The file is " + file.size + " bytes, more than the limit of " +
      form.dataset.maxLabel + " (" + form.dataset.maxBytes + " bytes).";
    note.hidden = false;
  });
  // The create-rollout form: percentages, when given, are the waves (the server
  // does not read Waves then), so Waves shows their count as they are typed.
  function syncWaves(form) {
    var percentages = form.querySelector("input[name=percentages]");
    var waves = form.querySelector("input[name=waves]");
    if (!percentages || !waves) return;
    var items = percentages.value.split(/[,\s]+/).filter(Boolean);
    if (items.length) waves.value = String(items.length);
  }
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (input instanceof HTMLInputElement && input.name === "percentages" && input.form) {
      syncWaves(input.form);
    }
  });
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.form) return;
    var note = input.form.querySelector("[data-file-too-large]");
    if (note) note.hidden = true;
  });
})();
