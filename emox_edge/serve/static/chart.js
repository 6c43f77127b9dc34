// A tiny time chart drawn by hand on a <canvas>: valence as a line in [-1, 1], emotion labels as
// coloured dots along the top. No library, so the page works offline.
"use strict";

class EmotionChart {
  constructor(canvas, spanSeconds = 60) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.span = spanSeconds;
    this.points = [];  // {t, valence, emotion}
    this.colors = new Map();
    this.palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46a0a0", "#f032e6", "#9a6324", "#808000"];
    this.draw();
  }

  add(t, valence, emotion) {
    this.points.push({ t, valence, emotion });
    if (emotion && !this.colors.has(emotion)) {
      this.colors.set(emotion, this.palette[this.colors.size % this.palette.length]);
    }
    this.draw();
  }

  draw() {
    const { ctx, canvas } = this;
    const w = canvas.width, h = canvas.height, left = 34, right = 8, top = 26, bottom = 18;
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#666";
    ctx.strokeStyle = "#ddd";
    const yOf = (v) => top + (1 - (v + 1) / 2) * (h - top - bottom);
    for (const v of [-1, 0, 1]) {
      ctx.beginPath(); ctx.moveTo(left, yOf(v)); ctx.lineTo(w - right, yOf(v)); ctx.stroke();
      ctx.fillText(v.toFixed(0).padStart(2), 4, yOf(v) + 4);
    }
    ctx.fillText("valence", left, h - 4);
    if (!this.points.length) return;
    const end = Math.max(this.points[this.points.length - 1].t, this.span);
    const start = end - this.span;
    const xOf = (t) => left + ((t - start) / this.span) * (w - left - right);
    const shown = this.points.filter((p) => p.t >= start);
    ctx.strokeStyle = "#333";
    ctx.lineWidth = 2;
    ctx.beginPath();
    let drawing = false;
    for (const p of shown) {
      if (typeof p.valence !== "number") { drawing = false; continue; }
      const x = xOf(p.t), y = yOf(Math.max(-1, Math.min(1, p.valence)));
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
    }
    ctx.stroke();
    ctx.lineWidth = 1;
    for (const p of shown) {
      if (!p.emotion) continue;
      ctx.fillStyle = this.colors.get(p.emotion);
      ctx.beginPath(); ctx.arc(xOf(p.t), 12, 5, 0, 2 * Math.PI); ctx.fill();
    }
    let x = left + 60;
    for (const [label, color] of this.colors) {
      ctx.fillStyle = color;
      ctx.fillText(label, x, h - 4);
      x += ctx.measureText(label).width + 10;
    }
  }
}

window.EmotionChart = EmotionChart;
