// The page: fills the form from GET /api/models, posts a job, polls it, shows the preview and the downloads.
"use strict";
const $ = (id) => document.getElementById(id);
let catalog = null;

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  select.appendChild(o);
}

function showModel() {
  const m = catalog.models.find((x) => x.name === $("model").value);
  const labels = $("labels");
  labels.replaceChildren();
  if (!m) return;
  const chans = m.channels.map((c) => c.unit ? `${c.name} [${c.unit}]` : c.name).join(", ");
  $("card").textContent = `${chans} at ${m.fs} Hz; window ${m.window_seconds.toFixed(1)} s; ` +
    `trained ${m.training.step} steps on ${m.training.windows} windows`;
  for (const spec of m.labels) {
    const label = document.createElement("label");
    label.textContent = spec.name + " ";
    const select = document.createElement("select");
    select.className = "label-select";
    select.dataset.label = spec.name;
    for (const c of spec.classes) option(select, c, c);
    label.appendChild(select);
    labels.appendChild(label);
  }
  const max = m.max_seconds;
  $("length-note").textContent = `at most ${clock(max)} (${max} s)`;
  if (!$("length").value) $("length").value = clock(Math.min(max, 600));
}

function clock(seconds) {
  const s = Math.floor(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}

async function load() {
  const r = await fetch("/api/models");
  catalog = await r.json();
  for (const m of catalog.models) option($("model"), m.name, m.name);
  for (const p of catalog.presets) option($("preset"), p.name, `${p.name}: ${p.description}`);
  $("preset").value = catalog.default_preset;
  $("model").addEventListener("change", () => { $("length").value = ""; showModel(); });
  $("form").addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  showModel();
}

function fail(text) {
  $("error").textContent = text;
  $("status").textContent = "";
  $("generate").disabled = false;
}

async function generate() {
  const labels = {};
  for (const s of document.querySelectorAll(".label-select")) labels[s.dataset.label] = s.value;
  const body = { model: $("model").value, length: $("length").value.trim(), labels,
                 seed: Number.parseInt($("seed").value || "0", 10), preset: $("preset").value };
  $("job").hidden = false;
  $("error").textContent = "";
  $("preview").hidden = true;
  $("downloads").replaceChildren();
  $("progress").value = 0;
  $("generate").disabled = true;
  const r = await fetch("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify(body) });
  const job = await r.json();
  if (!r.ok) {
    const wait = r.headers.get("Retry-After");
    return fail(job.detail + (wait ? ` (try again in ${wait} s)` : ""));
  }
  poll(job.id);
}

async function poll(id) {
  const r = await fetch(`/api/jobs/${encodeURIComponent(id)}`);
  const job = await r.json();
  if (!r.ok) return fail(job.detail);
  $("progress").value = job.progress;
  $("status").textContent = `${job.state} ${Math.round(job.progress * 100)} %`;
  if (job.state === "failed") return fail(job.error);
  if (job.state !== "done") { setTimeout(() => poll(id), 500); return; }
  $("preview").src = job.preview;
  $("preview").hidden = false;
  for (const f of catalog.formats) {
    const a = document.createElement("a");
    a.href = job.files[f.name];
    a.dataset.format = f.name;
    a.setAttribute("download", "");
    a.title = f.description;
    a.textContent = `Download ${f.name.toUpperCase()}`;
    $("downloads").appendChild(a);
  }
  $("generate").disabled = false;
}

load().catch((e) => fail(`could not load the models: ${e}`));
