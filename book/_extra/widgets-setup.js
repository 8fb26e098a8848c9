// Loaded before the ipywidgets html-manager (see book/_config.yml).
(function () {
  // The html-manager finds its fonts relative to the address require.js gives its own modules;
  // map that prefix onto our vendored copy (require.js reads this global as its configuration).
  var here = document.currentScript ? document.currentScript.src : window.location.href;
  window.require = { paths: { "@jupyter-widgets/html-manager/dist": new URL("vendor/html-manager", here).href } };
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
