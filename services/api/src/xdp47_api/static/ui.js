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
})();
