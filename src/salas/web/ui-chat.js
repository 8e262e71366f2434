// Seed 000's chat page: the /chat WebSocket speaks the line protocol, one
// line per text frame. Text from the server is always shown as text.
"use strict";
(() => {
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const form = document.getElementById("send");
  const input = document.getElementById("line");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/chat`);

  function show(text, mine) {
    const item = document.createElement("li");
    item.textContent = text;
    if (mine) item.className = "mine";
    log.append(item);
    item.scrollIntoView({ block: "end" });
  }

  socket.addEventListener("open", () => { status.textContent = "Connected."; });
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") show(event.data, false);
  });
  socket.addEventListener("close", (event) => {
    status.textContent = `Disconnected (${event.code}${event.reason ? ": " + event.reason : ""}).`;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || socket.readyState !== WebSocket.OPEN) return;
    socket.send(text);
    if (!text.startsWith("/") || text.startsWith("//")) show(`[You] ${text}`, true);
    input.value = "";
  });
})();
