// Quick exit: leave at once for a neutral site without leaving this page as the one "back" returns to.
"use strict";
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[data-quick-exit]");
  if (!link) return;
  event.preventDefault();
  window.open(link.href, "_blank", "noopener,noreferrer");
  window.location.replace(link.href);
});
