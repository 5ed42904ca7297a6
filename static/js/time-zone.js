// The signed-in user has chosen no time zone: post the browser's (Intl) once, then
// show this page again in it. A file, not an inline script, which the
// Content-Security-Policy (script-src 'self') refuses. Without JavaScript, times stay
// in UTC and Settings -> Preferences sets the zone.
(() => {
  const form = document.querySelector("form[data-browser-time-zone]");
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!form || !zone) {
    return;
  }
  form.elements.namedItem("time_zone").value = zone;
  fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
    .then((response) => {
      // Shown again in the zone: the times on the page, and the Preferences form's
      // choice (left at UTC, saving it would undo what was just stored).
      const shown = document.querySelector("time[datetime], select[name='time_zone']");
      if (response.status === 204 && zone !== "UTC" && shown) {
        window.location.reload();
      }
    })
    .catch(() => {});
})();
