// labrram watch: polls /api/state and draws the run on canvases. No framework, nothing fetched
// from anywhere but this server.
"use strict";

const W = (window.labrramWatch = { state: null, maps: null, draws: 0, polls: 0, errors: 0 });
const $ = (id) => document.getElementById(id);
const COLORS = {
  alone: [255, 255, 255], unread: [200, 200, 200], within: [26, 152, 80], failed: [197, 27, 125],
  lowLight: [171, 217, 233], lowDark: [44, 123, 182], highLight: [253, 174, 97], highDark: [215, 25, 28],
};

function decode(b64, Type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Type(bytes.buffer);
}

function mix(a, b, t) {
  t = Math.max(0, Math.min(1, t));
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * t));
}

// viridis-like ramp for conductances of runs without targets (log scale)
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function ramp(t) {
  t = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const k = Math.min(Math.floor(t), RAMP.length - 2);
  return mix(RAMP[k], RAMP[k + 1], t - k);
}

function fmt(v, unit, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  const d = digits === undefined ? 3 : digits;
  const a = Math.abs(v);
  const text = a >= 1e9 || (a < 1e-3 && v !== 0) ? v.toExponential(d - 1)
    : v.toLocaleString("en-US", { maximumFractionDigits: a >= 100 ? 0 : a >= 1 ? Math.min(d, 2) : d });
  return text + (unit ? " " + unit : "");
}

function duration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 1) return (s * 1e3).toFixed(1) + " ms";
  if (s < 120) return s.toFixed(s < 10 ? 2 : 1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(2) + " h";
}

// --- the array map -------------------------------------------------------------------------
function colorOf(i, m, s) {
  const t = m.targets ? m.targets[i] : NaN;
  const g = m.achieved[i];
  if (m.targets && !Number.isFinite(t)) return COLORS.alone;
  if (!Number.isFinite(g)) return COLORS.unread;
  if (!m.targets) return ramp((Math.log10(Math.max(g, 1e-7)) + 6) / 2.5); // 1 µS .. 316 µS
  if (m.converged && !m.converged[i]) return COLORS.failed;
  const band = Math.max(s.tolerance[0] * Math.abs(t), s.tolerance[1]);
  const err = g - t;
  if (Math.abs(err) <= band || (m.converged && m.converged[i])) return COLORS.within;
  const rel = Math.min(Math.abs(err / t) / 0.5, 1);
  return err < 0 ? mix(COLORS.lowLight, COLORS.lowDark, rel) : mix(COLORS.highLight, COLORS.highDark, rel);
}

function drawMap(s, m) {
  const rows = m.rows, cols = m.cols, n = rows * cols;
  const canvas = $("map");
  const scale = Math.max(1, Math.floor(512 / Math.max(rows, cols)));
  canvas.width = cols * scale;
  canvas.height = rows * scale;
  const off = document.createElement("canvas");
  off.width = cols;
  off.height = rows;
  const octx = off.getContext("2d");
  const img = octx.createImageData(cols, rows);
  let drawn = 0;
  for (let i = 0; i < n; i++) {
    const c = colorOf(i, m, s);
    if (c !== COLORS.unread && c !== COLORS.alone) drawn++;
    img.data[4 * i] = c[0];
    img.data[4 * i + 1] = c[1];
    img.data[4 * i + 2] = c[2];
    img.data[4 * i + 3] = 255;
  }
  octx.putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  canvas.dataset.rev = String(m.rev);
  canvas.dataset.drawn = String(drawn);
  canvas.dataset.scale = String(scale);
  W.draws += 1;
  W.drawnDevices = drawn;
  const items = m.targets
    ? [["within", "within tolerance" + (m.converged ? " / converged" : "")], ["lowDark", "below target"], ["highDark", "above target"],
       ["unread", "not read yet"], ["alone", "left alone"]].concat(m.converged ? [["failed", "not converged (the plan gave up)"]] : [])
    : [["unread", "not read yet"]];
  $("legend").innerHTML = items.map(([k, label]) => `<span><i style="background:rgb(${COLORS[k].join(",")})"></i>${label}</span>`).join("") +
    (m.targets ? "" : "<span>color: last read-back, 1 µS (dark) … 316 µS (yellow), log scale</span>");
}

function hover(ev) {
  const m = W.maps, s = W.state;
  if (!m || !s) return;
  const canvas = $("map");
  const rect = canvas.getBoundingClientRect();
  const col = Math.floor(((ev.clientX - rect.left) / rect.width) * m.cols);
  const row = Math.floor(((ev.clientY - rect.top) / rect.height) * m.rows);
  if (row < 0 || col < 0 || row >= m.rows || col >= m.cols) return;
  const i = row * m.cols + col;
  const us = (v) => (Number.isFinite(v) ? (v * 1e6).toFixed(2) + " µS" : "—");
  $("hover").textContent = `(${row}, ${col})  ` + (m.targets ? `target ${us(m.targets[i])}  ` : "") + `read ${us(m.achieved[i])}  pulses ${m.pulses[i]}`;
}

// --- charts ----------------------------------------------------------------------------------
function frame(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#444";
  ctx.strokeStyle = "#999";
  return { ctx, x0: 52, y0: canvas.height - 24, w: canvas.width - 56, h: canvas.height - 36 };
}

function axes(f, xlo, xhi, ylo, yhi, xlabel) {
  const { ctx, x0, y0, w, h } = f;
  ctx.beginPath();
  ctx.moveTo(x0, y0 - h);
  ctx.lineTo(x0, y0);
  ctx.lineTo(x0 + w, y0);
  ctx.stroke();
  ctx.textAlign = "right";
  ctx.fillText(ylo, x0 - 4, y0);
  ctx.fillText(yhi, x0 - 4, y0 - h + 9);
  ctx.textAlign = "left";
  ctx.fillText(xlo, x0, y0 + 14);
  ctx.textAlign = "right";
  ctx.fillText(xhi, x0 + w, y0 + 14);
  ctx.textAlign = "center";
  ctx.fillText(xlabel, x0 + w / 2, y0 + 14);
}

function bars(canvas, counts, opts) {
  const f = frame(canvas);
  if (!counts || !counts.length) {
    f.ctx.fillText("no data yet", 60, 40);
    return;
  }
  const log = opts.log;
  const tr = (c) => (log ? Math.log10(1 + c) : c);
  const top = Math.max(1, ...counts.map(tr));
  const bw = f.w / counts.length;
  counts.forEach((c, k) => {
    const hh = (tr(c) / top) * f.h;
    f.ctx.fillStyle = opts.color ? opts.color(k) : "#1f77b4";
    f.ctx.fillRect(f.x0 + k * bw + (bw > 3 ? 0.5 : 0), f.y0 - hh, Math.max(bw - (bw > 3 ? 1 : 0), 1), hh);
  });
  f.ctx.fillStyle = "#444";
  axes(f, opts.xlo, opts.xhi, "0", fmt(Math.max(...counts)), opts.xlabel);
}

function line(canvas, points) {
  const f = frame(canvas);
  if (!points || !points.length) {
    f.ctx.fillText("no SET batch finished yet", 60, 40);
    return;
  }
  const n = points[points.length - 1][0];
  const x = (b) => f.x0 + (points.length === 1 ? f.w / 2 : ((b - points[0][0]) / Math.max(n - points[0][0], 1)) * f.w);
  const y = (p) => f.y0 - (p / 100) * f.h;
  f.ctx.strokeStyle = "#1f77b4";
  f.ctx.beginPath();
  points.forEach(([b, p], k) => (k ? f.ctx.lineTo(x(b), y(p)) : f.ctx.moveTo(x(b), y(p))));
  f.ctx.stroke();
  f.ctx.fillStyle = "#1f77b4";
  points.forEach(([b, p]) => f.ctx.fillRect(x(b) - 1.5, y(p) - 1.5, 3, 3));
  f.ctx.fillStyle = "#444";
  f.ctx.strokeStyle = "#999";
  axes(f, String(points[0][0]), String(n), "0", "100", "SET batch");
}

// --- the numbers -------------------------------------------------------------------------------
function rows(s) {
  if (s.kind === "montecarlo") {
    const out = [["trials done", `${fmt(s.done)} / ${fmt(s.trials)}`], ["trials per second", fmt(s.trials_per_second)],
      ["estimated time left", duration(s.eta_wall)], ["trial", s.trial], ["seed", s.seed]];
    for (const [k, r] of Object.entries(s.results)) {
      out.push([`${k} (${r.shape.length ? r.shape.join("×") : "scalar"})`, `mean ${fmt(r.mean)}  std ${fmt(r.std)}  [${fmt(r.min)}, ${fmt(r.max)}]`]);
    }
    return out;
  }
  const pct = s.devices ? ` (${((100 * s.within_band) / s.devices).toFixed(2)} %)` : "";
  const out = [
    ["devices", fmt(s.devices) + `  on ${s.shape[0]}×${s.shape[1]}`],
    ["pulses delivered", `${fmt(s.pulses)}  (SET ${fmt(s.sets)}, RESET ${fmt(s.resets)}${s.uncertain_pulses ? ", uncertain " + fmt(s.uncertain_pulses) : ""})`],
    ["devices pulsed", fmt(s.devices_pulsed)],
    ["steps committed", fmt(s.steps)],
  ];
  if (s.kind === "program") {
    out.push([s.converged_label, fmt(s.within_band) + pct]);
    out.push([s.status === "running" ? "devices outside their band" : "devices not converged", fmt(s.left)]);
    if (s.status === "running") out.push(["still programming (last SET batch)", fmt(s.programming)]);
    out.push(["SET batches", fmt(s.set_batches) + (s.batches_left !== null && s.status === "running" ? `  (≈ ${fmt(s.batches_left)} more)` : "")]);
  }
  out.push(
    ["pulses per second (last 20 s)", fmt(s.pulses_per_second, "", 4)],
    ["pulses per second (run)", fmt(s.pulses_per_second_run, "", 4)],
    ["pulses per bench second", fmt(s.pulses_per_bench_second, "", 4)],
    ["wall time", duration(s.wall_time)],
    ["projected bench time", duration(s.bench_time)],
    ["physical limit", duration(s.physical_limit)],
  );
  if (s.kind === "program") {
    out.push(["estimated wall time left", s.status === "running" ? "≈ " + duration(s.eta_wall) : "—"]);
    out.push(["estimated bench time left", s.status === "running" ? "≈ " + duration(s.eta_bench) : "—"]);
  }
  out.push(["faults recovered", s.faults_recovered === null ? "— (not recorded by this run)" : fmt(s.faults_recovered)]);
  out.push(["stop reason", s.reason || (s.status === "complete" ? "complete" : "—")]);
  if (s.error_histogram && s.error_histogram.rms_relative !== null) out.push(["RMS relative error", (100 * s.error_histogram.rms_relative).toFixed(2) + " %"]);
  if (s.read_errors) out.push(["reads retried", fmt(s.read_errors)]);
  return out;
}

function show(s) {
  W.state = s;
  const name = s.kind === "montecarlo" ? "Monte Carlo study" : `${s.plan || s.kind}`;
  $("title").textContent = `${name}`;
  document.title = `${s.status} · ${name} · labrram watch`;
  const badge = $("status");
  badge.textContent = s.status;
  badge.className = "badge " + (["running", "complete", "interrupted"].includes(s.status) ? s.status : "other");
  $("sub").textContent = s.path + (s.chip ? "  ·  " + s.chip : "") + (s.created ? "  ·  started " + s.created : "");
  $("stats").innerHTML = "";
  for (const [k, v] of rows(s)) {
    const tr = document.createElement("tr");
    const a = document.createElement("td");
    const b = document.createElement("td");
    a.textContent = k;
    b.textContent = v;
    b.className = "v";
    tr.append(a, b);
    $("stats").append(tr);
  }
  document.body.dataset.status = s.status;
  document.body.dataset.rev = String(s.rev);
  const study = s.kind === "montecarlo";
  for (const id of ["mappanel", "charts"]) $(id).classList.toggle("hidden", study);
  $("progresswrap").classList.toggle("hidden", !study);
  if (study) {
    $("progress").firstElementChild.style.width = ((100 * s.done) / Math.max(s.trials, 1)).toFixed(1) + "%";
    return;
  }
  line($("conv"), s.convergence);
  $("c-conv").classList.toggle("hidden", s.kind !== "program");
  const ph = s.pulse_histogram;
  bars($("pulses"), ph, { log: true, xlo: "0", xhi: String(ph.length - 1), xlabel: "pulses", color: () => "#1f77b4" });
  const eh = s.error_histogram;
  $("c-error").classList.toggle("hidden", !eh);
  if (eh) {
    const tol = s.tolerance[0];
    bars($("errors"), eh.counts, {
      log: false, xlo: "≤ −50 %", xhi: "≥ +50 %", xlabel: `band ±${(100 * tol).toFixed(0)} %`,
      color: (k) => (Math.abs((eh.edges[k] + eh.edges[k + 1]) / 2) <= tol ? "#1a9850" : eh.edges[k] < 0 ? "#2c7bb6" : "#d7191c"),
    });
  }
}

// --- polling -----------------------------------------------------------------------------------
async function poll() {
  let delay = 1000;
  try {
    const rev = W.maps ? W.maps.rev : -1;
    const resp = await fetch(`/api/state?rev=${rev}`, { cache: "no-store" });
    const s = await resp.json();
    if (!resp.ok || s.error) throw new Error(s.error || resp.statusText);
    W.polls += 1;
    if (s.maps && s.maps.achieved) {
      const m = s.maps;
      W.maps = {
        rev: m.rev, rows: m.rows, cols: m.cols,
        achieved: decode(m.achieved, Float32Array), pulses: decode(m.pulses, Uint16Array),
        targets: m.targets ? decode(m.targets, Float32Array) : null, converged: m.converged ? decode(m.converged, Uint8Array) : null,
      };
    } else if (s.maps) {
      W.maps = { rev: s.maps.rev };
    }
    delete s.maps;
    show(s);
    if (W.maps && W.maps.achieved && s.kind !== "montecarlo" && String(W.maps.rev) !== $("map").dataset.rev) drawMap(s, W.maps);
    $("error").textContent = s.last_error ? `last read of the store failed (${s.last_error}); retrying` : "";
    if (s.status !== "running" && s.kind !== "montecarlo") delay = 5000;
  } catch (e) {
    W.errors += 1;
    $("error").textContent = `cannot reach the watch server (${e.message}); retrying`;
    delay = 2000;
  }
  setTimeout(poll, delay);
}

$("map").addEventListener("mousemove", hover);
poll();
