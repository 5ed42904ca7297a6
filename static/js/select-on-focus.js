// A field marked data-select-on-focus selects its whole value when focused (a new
// token, to copy). A file, not an onfocus="" attribute, which the
// Content-Security-Policy (script-src 'self') refuses.
document.addEventListener("focusin", (event) => {
  if (event.target instanceof HTMLInputElement && event.target.hasAttribute("data-select-on-focus")) {
    event.target.select();
  }
});
