// The chat's browser client: one WebSocket to /ws on the page's own host.
const log = document.getElementById("log");
const status = document.getElementById("status");
const form = document.getElementById("form");
const text = document.getElementById("text");

function show(line) {
  const p = document.createElement("p");
  p.textContent = line;
  log.appendChild(p);
  log.scrollTop = log.scrollHeight;
}

const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onopen = () => { status.textContent = "connected"; };
ws.onmessage = (event) => show(event.data);
ws.onclose = (event) => {
  status.textContent = "disconnected (" + event.code + ")";
};

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (text.value && ws.readyState === WebSocket.OPEN) {
    ws.send(text.value);
    text.value = "";
  }
});
