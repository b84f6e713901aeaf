// Marks that scripts run, so CSS may fold the wide-screen menu open. Loaded in <head>
// without defer: it must run before the first paint.
document.documentElement.classList.add("js");
