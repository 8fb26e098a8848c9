// Loaded before the ipywidgets html-manager (see book/_config.yml).
(function () {
  // The html-manager finds its fonts (Font Awesome's) relative to the address require.js gives its
  // own modules ("@jupyter-widgets/base", "/controls", ...): without a path, an address relative to
  // the page (notebooks/@jupyter-widgets/), where no font is. Map the whole prefix onto our vendored
  // copy, which holds the fonts (require.js reads this global as its configuration).
  var here = document.currentScript ? document.currentScript.src : window.location.href;
  var vendored = new URL("vendor/html-manager", here).href;
  window.require = {
    paths: { "@jupyter-widgets/html-manager/dist": vendored, "@jupyter-widgets": vendored },
  };
  // ipywidgets' controls typeset labels through MathJax 2's MathJax.Hub.Queue; the book loads
  // MathJax 3. Give them the one call they make, mapped onto MathJax 3.
  function shim() {
    if (window.MathJax && !window.MathJax.Hub) {
      window.MathJax.Hub = {
        Queue: function () {
          if (window.MathJax.typesetPromise) window.MathJax.typesetPromise();
        },
      };
    }
  }
  shim();
  document.addEventListener("DOMContentLoaded", shim);
  window.addEventListener("load", shim);
})();
