// Seed 000's echo page: whatever is sent on /echo comes back.
"use strict";
(() => {
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const form = document.getElementById("send");
  const input = document.getElementById("line");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/echo`);

  function show(text) {
    const item = document.createElement("li");
    item.textContent = text;
    log.append(item);
    item.scrollIntoView({ block: "end" });
  }

  socket.addEventListener("open", () => { status.textContent = "Connected."; });
  socket.addEventListener("message", (event) => {
    show(typeof event.data === "string" ? `< ${event.data}` : "< (binary)");
  });
  socket.addEventListener("close", (event) => {
    status.textContent = `Disconnected (${event.code}).`;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.send(input.value);
    show(`> ${input.value}`);
    input.value = "";
  });
})();
