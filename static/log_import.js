// Progressive enhancement for the log import form (htmx): upload progress, and the form's error answers
// (400 a wrong field, 413 a file over the cap) swapped in like a success. Without JavaScript the form posts
// normally and the page comes back with the same errors.
(function () {
  "use strict";
  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = document.getElementById("log-import-progress");
    if (!bar || !event.detail.lengthComputable) return;
    bar.hidden = false;
    bar.value = Math.round(100 * event.detail.loaded / event.detail.total);
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (event.detail.elt && event.detail.elt.id === "log-import" && (status === 400 || status === 413)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
