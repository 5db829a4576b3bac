// MathJax 2.7, served from this site (assets/mathjax, copied from the jupyter-server-mathjax
// package at build time): no CDN, the pages render formulas offline.
window.MathJax = {
  tex2jax: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    ignoreClass: ".*",
    processClass: "arithmatex",
  },
  TeX: { extensions: ["AMSmath.js", "AMSsymbols.js"] },
  "HTML-CSS": { availableFonts: [], imageFont: null, preferredFont: null, webFont: "STIX-Web" },
  showMathMenu: false,
  messageStyle: "none",
};
(function () {
  var here = document.currentScript.src;
  var s = document.createElement("script");
  s.src = here.replace(/javascripts\/mathjax\.js.*$/, "assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full");
  document.head.appendChild(s);
})();
