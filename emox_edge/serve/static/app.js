// The live page: camera and microphone -> /v1/stream; faces over the video; answers, chart, clips.
// Query parameters (all optional): tasks=emotion,sentiment  window=4  vad=1  fps=5  token=...  autostart=1
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const KIND_JPEG = 1, KIND_PCM16 = 2, RATE = 16000, MAX_BUFFERED = 2 << 20;
const state = { ws: null, media: null, timer: null, audio: null, t0: 0, faces: null, chart: null,
                audioT0: null, audioSent: 0, skipped: 0, clips: 0, faceMessages: 0, lastFrameT: -1 };

function now() { return (performance.now() - state.t0) / 1000; }
function setStatus(text) { $("status").textContent = text; }
function logLine(text, isError) {
  const li = document.createElement("li");
  li.textContent = text;
  if (isError) li.className = "error";
  $("log").prepend(li);
  while ($("log").children.length > 50) $("log").lastChild.remove();
}

function packet(kind, t, payload) {
  const out = new Uint8Array(9 + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, kind);
  view.setFloat64(1, t, true);
  out.set(new Uint8Array(payload), 9);
  return out.buffer;
}

function send(data) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || state.ended) return false;  // nothing after input.end
  if (ws.bufferedAmount > MAX_BUFFERED) { state.skipped += 1; return false; }  // the network is behind
  ws.send(data);
  return true;
}

async function loadInfo() {
  const token = $("token").value;
  const response = await fetch("/v1/info", { headers: token ? { Authorization: "Bearer " + token } : {} });
  const info = await response.json();
  if (!response.ok) { setStatus("info: " + info.error); return; }
  const wanted = (params.get("tasks") || "emotion,sentiment").split(",");
  const box = $("tasks");
  box.querySelectorAll("label").forEach((el) => el.remove());
  for (const task of Object.keys(info.tasks)) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox"; input.value = task; input.checked = wanted.includes(task);
    label.append(input, " " + task);
    box.append(label);
  }
  setStatus(`ready: ${info.name} on ${info.device.name}`);
}

function frameLoop(fps) {
  const video = $("video"), canvas = document.createElement("canvas");
  state.timer = setInterval(() => {
    if (!video.videoWidth) return;
    const scale = Math.min(1, 640 / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const t = now();
    canvas.toBlob(async (blob) => {
      const data = blob && await blob.arrayBuffer();
      if (!data || t <= state.lastFrameT) return;  // frame times must increase
      state.lastFrameT = t;
      send(packet(KIND_JPEG, t, data));
    }, "image/jpeg", 0.75);
  }, 1000 / fps);
}

function resample(input, rateIn) {
  if (rateIn === RATE) return input;
  const n = Math.floor(input.length * RATE / rateIn), out = new Float32Array(n), step = rateIn / RATE;
  for (let i = 0; i < n; i++) {
    const x = i * step, k = Math.floor(x), f = x - k;
    out[i] = input[k] * (1 - f) + (k + 1 < input.length ? input[k + 1] : input[k]) * f;
  }
  return out;
}

async function audioLoop(stream) {
  if (!stream.getAudioTracks().length) return;
  const ctx = new AudioContext();
  await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, "pcm-capture");
  const mute = ctx.createGain();
  mute.gain.value = 0;
  source.connect(node); node.connect(mute); mute.connect(ctx.destination);
  node.port.onmessage = (event) => {
    const samples = resample(event.data, ctx.sampleRate);
    if (state.audioT0 === null) state.audioT0 = Math.max(0, now() - samples.length / RATE);
    const pcm = new Int16Array(samples.length);
    for (let i = 0; i < samples.length; i++) pcm[i] = Math.max(-1, Math.min(1, samples[i])) * 32767;
    send(packet(KIND_PCM16, state.audioT0 + state.audioSent / RATE, pcm.buffer));
    state.audioSent += samples.length;
    document.body.dataset.audio = String(state.audioSent);
  };
  await ctx.resume();
  state.audio = ctx;
}

function drawFaces() {
  const canvas = $("overlay"), video = $("video"), msg = state.faces;
  canvas.width = video.clientWidth; canvas.height = video.clientHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!msg) return;
  const sx = canvas.width / msg.width, sy = canvas.height / msg.height;
  ctx.lineWidth = 2; ctx.font = "14px sans-serif";
  for (const face of msg.faces) {
    const [x0, y0, x1, y1] = face.box;
    ctx.strokeStyle = "#3cb44b";
    ctx.strokeRect(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy);
    const top = Object.entries(face.expression || {}).sort((a, b) => b[1] - a[1])[0];
    const text = `#${face.id ?? "?"}` + (top ? ` ${top[0]} ${(top[1] * 100).toFixed(0)}%` : "");
    ctx.fillStyle = "rgba(0,0,0,0.6)";
    ctx.fillRect(x0 * sx, y0 * sy - 18, ctx.measureText(text).width + 8, 18);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x0 * sx + 4, y0 * sy - 4);
  }
}

function answerText(task) {
  if (task.label) return task.label + (typeof task.score === "number" ? ` (${task.score.toFixed(2)})` : "");
  if (task.reply) return task.reply;
  return task.text || "";
}

function valenceOf(result) {
  const sentiment = result.tasks.sentiment;
  if (sentiment && typeof sentiment.score === "number") return sentiment.score;
  const p = result.perception || {};
  if (typeof p.valence === "number") return p.valence;
  const map = { positive: 1, neutral: 0, negative: -1 };
  return sentiment && sentiment.label in map ? map[sentiment.label] : null;
}

function showResult(message) {
  const result = message.result, body = $("answers").querySelector("tbody");
  const span = `${result.start.toFixed(1)}-${result.end.toFixed(1)} s`;
  for (const [name, task] of Object.entries(result.tasks)) {
    let row = body.querySelector(`tr[data-task="${CSS.escape(name)}"]`);
    if (!row) {
      row = document.createElement("tr"); row.dataset.task = name;
      row.append(document.createElement("td"), document.createElement("td"), document.createElement("td"));
      row.cells[0].textContent = name;
      body.append(row);
    }
    row.cells[1].textContent = answerText(task);
    row.cells[2].textContent = span;
  }
  const emotion = result.tasks.emotion ? result.tasks.emotion.label : null;
  state.chart.add(result.end, valenceOf(result), emotion);
  const li = document.createElement("li");
  li.textContent = `${span}: ` + Object.entries(result.tasks).map(([k, v]) => `${k}=${answerText(v)}`).join(", ")
    + (result.error ? ` (error: ${result.error})` : "") + ` [${message.analysis_ms} ms]`;
  $("clips").append(li);
  state.clips += 1;
  document.body.dataset.clips = String(state.clips);
}

function onMessage(event) {
  const msg = JSON.parse(event.data);
  if (msg.type === "faces") {
    state.faces = msg;
    state.faceMessages += 1;
    document.body.dataset.faces = String(state.faceMessages);
    drawFaces();
  }
  else if (msg.type === "result") showResult(msg);
  else if (msg.type === "error") logLine(msg.message, true);
  else if (msg.type === "stats" || msg.type === "session.end") {
    $("stats").textContent = `frames ${msg.frames_received} received, ${msg.frames_dropped} dropped; clips ` +
      `${msg.clips_analysed} analysed, ${msg.clips_dropped} dropped; page skipped ${state.skipped} messages`;
  } else if (msg.type === "session.updated") setStatus(`streaming: ${msg.tasks.join(", ")}, ${msg.window_s} s clips`);
}

async function start() {
  const tasks = [...$("tasks").querySelectorAll("input:checked")].map((el) => el.value);
  if (!tasks.length) { setStatus("choose at least one task"); return; }
  $("start").disabled = true;
  try {
    state.media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
  } catch (err) {
    setStatus("camera/microphone: " + err.message); $("start").disabled = false; return;
  }
  const video = $("video");
  video.srcObject = state.media;
  await video.play();
  const token = $("token").value;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/v1/stream` + (token ? "?token=" + encodeURIComponent(token) : ""));
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onmessage = onMessage;
  ws.onclose = (event) => { setStatus(`closed (${event.code})`); stopCapture(); };
  ws.onopen = async () => {
    state.ended = false;
    state.t0 = performance.now(); state.audioT0 = null; state.audioSent = 0; state.lastFrameT = -1;
    ws.send(JSON.stringify({ type: "session.update", tasks, window_s: Number($("window").value),
                             vad: $("vad").checked }));
    frameLoop(Number($("fps").value) || 5);
    try { await audioLoop(state.media); } catch (err) { logLine("microphone: " + err.message, true); }
    $("stop").disabled = false;
  };
  state.statsTimer = setInterval(() => send(JSON.stringify({ type: "stats" })), 2000);
}

function stopCapture() {
  clearInterval(state.timer); clearInterval(state.statsTimer);
  if (state.audio) state.audio.close();
  if (state.media) state.media.getTracks().forEach((track) => track.stop());
  state.audio = state.media = null;
  $("start").disabled = false; $("stop").disabled = true;
}

function stop() {
  stopCapture();  // first: no frame or audio chunk may follow input.end
  state.ended = true;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "input.end" }));
  setStatus("finishing the last clip...");
}

window.addEventListener("load", async () => {
  state.chart = new EmotionChart($("chart"));
  $("token").value = params.get("token") || "";
  if (params.get("window")) $("window").value = params.get("window");
  if (params.get("fps")) $("fps").value = params.get("fps");
  $("vad").checked = params.get("vad") === "1";
  $("start").onclick = start;
  $("stop").onclick = stop;
  $("token").onchange = loadInfo;
  window.addEventListener("resize", drawFaces);
  await loadInfo();
  if (params.get("autostart") === "1") start();
});
