// The run browser of `codeloop ui`: the run list, one run's timeline, two runs compared.
// Everything comes from the JSON API under /api/runs; text from runs (tasks, code, outputs) is only ever set
// as textContent, never parsed as HTML.
"use strict";

const ROOT = document.body.dataset.root || "";
const view = document.getElementById("view");

// --- small helpers ----------------------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

async function api(path) {
  const response = await fetch(ROOT + path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showError(error) {
  view.replaceChildren(h("div", { class: "error-box", role: "alert", text: String(error.message || error) }));
}

const fmt = {
  time(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    return new Date(seconds * 1000).toLocaleString(undefined, { hour12: false });
  },
  duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  },
  cost(usd) {
    if (usd === null || usd === undefined) return "–";
    return usd === 0 ? "$0" : usd < 0.01 ? `$${usd.toFixed(5)}` : `$${usd.toFixed(4)}`;
  },
  tokens(n) { return (n || 0).toLocaleString("en-US"); },
  signed(value, format) {
    if (value === null || value === undefined) return "–";
    if (value === 0) return "±0";
    return (value > 0 ? "+" : "−") + format(Math.abs(value));
  },
};

function stateBadge(state) {
  return h("span", { class: `state state-${state}`, text: state });
}

function runLink(runId, label) {
  return h("a", { href: `${ROOT}/runs/${encodeURIComponent(runId)}`, text: label || runId.slice(0, 12) });
}

function card(key, value, attrs) {
  return h("div", { class: "card", ...(attrs || {}) }, h("div", { class: "k", text: key }),
    h("div", { class: "v" }, value));
}

// --- the run list -----------------------------------------------------------------------------------------------

const FILTERS = ["state", "session", "model", "from", "to", "children"];

function localDay(text, plusDays) {
  // A date input's YYYY-MM-DD as seconds since the epoch at the browser's local midnight.
  const [y, m, d] = text.split("-").map(Number);
  return new Date(y, m - 1, d + (plusDays || 0)).getTime() / 1000;
}

async function showList() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of ["state", "session", "model", "offset", "limit"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  if (params.get("from")) query.set("since", localDay(params.get("from")));
  if (params.get("to")) query.set("until", localDay(params.get("to"), 1)); // the whole "to" day included
  if (params.get("children")) query.set("children", "1");
  const page = await api(`/api/runs?${query}`);

  const form = h("form", { class: "filters", id: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) {
      const field = form.elements[name];
      const value = field.type === "checkbox" ? (field.checked ? "1" : "") : field.value.trim();
      if (value) next.set(name, value);
    }
    navigate(`${ROOT}/runs${next.toString() ? "?" + next : ""}`);
  } },
  h("label", {}, "State", h("input", { name: "state", list: "states", value: params.get("state") || "",
    placeholder: "any" })),
  h("datalist", { id: "states" }, page.states.map((state) => h("option", { value: state }))),
  h("label", {}, "Session", h("input", { name: "session", value: params.get("session") || "", placeholder: "any" })),
  h("label", {}, "Model", h("input", { name: "model", value: params.get("model") || "", placeholder: "any" })),
  h("label", {}, "From", h("input", { name: "from", type: "date", value: params.get("from") || "" })),
  h("label", {}, "To", h("input", { name: "to", type: "date", value: params.get("to") || "" })),
  h("label", { class: "check" }, h("input", { name: "children", type: "checkbox", checked: !!params.get("children") }),
    "managed agents' runs too"),
  h("button", { type: "submit", id: "apply" }, "Filter"),
  h("button", { type: "button", class: "plain", onclick: () => navigate(`${ROOT}/runs`) }, "Clear"));

  const selected = new Set();
  const compareButton = h("button", { id: "compare-selected", disabled: true, onclick: () => {
    const [a, b] = [...selected];
    navigate(`${ROOT}/runs/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
  } }, "Compare selected");

  const rows = page.runs.map((run) => {
    const box = h("input", { type: "checkbox", "aria-label": `select run ${run.run_id}`, onchange: () => {
      if (box.checked) selected.add(run.run_id); else selected.delete(run.run_id);
      compareButton.disabled = selected.size !== 2;
    } });
    return h("tr", { class: "run-row", "data-run-id": run.run_id },
      h("td", {}, box),
      h("td", {}, runLink(run.run_id)),
      h("td", { class: "num" }, fmt.time(run.started_at)),
      h("td", { "data-field": "state" }, stateBadge(run.state)),
      h("td", {}, run.agent, run.parent_run_id ? h("span", { class: "tag", text: "managed" }) : null),
      h("td", { text: run.model_id }),
      h("td", { text: run.session || "" }),
      h("td", { class: "task", title: run.task, text: run.task }),
      ...liveCells(run));
  });

  const pageLink = (offset) => {
    const next = new URLSearchParams(location.search);
    if (offset) next.set("offset", offset); else next.delete("offset");
    return () => navigate(`${ROOT}/runs?${next}`);
  };
  const first = page.offset + 1;
  const last = page.offset + page.runs.length;
  view.replaceChildren(
    h("h1", {}, "Runs"),
    form,
    h("div", { class: "pager" },
      compareButton,
      h("button", { class: "plain", id: "previous-page", disabled: page.previous_offset === null,
        onclick: pageLink(page.previous_offset) }, "← Newer"),
      h("button", { class: "plain", id: "next-page", disabled: page.next_offset === null,
        onclick: pageLink(page.next_offset) }, "Older →"),
      h("span", { class: "muted", id: "range", text: page.runs.length ? `runs ${first}–${last}` : "" })),
    page.runs.length
      ? h("table", { id: "runs" },
        h("thead", {}, h("tr", {}, ["", "Run", "Started", "State", "Agent", "Model", "Session", "Task", "Steps",
          "Tokens", "Cost", "Time"].map((title, i) => h("th", { class: i >= 8 || i === 2 ? "num" : null, text: title })))),
        h("tbody", {}, rows))
      : h("p", { class: "muted", id: "no-runs", text: "No run matches these filters." }));
  if (page.runs.some((run) => isLive(run.state))) watch(`/api/runs?${query}`, updateRows);
}

// --- runs in progress: polled from the store (which another process may be writing) until they end ---------------

const LIVE_STATES = new Set(["running", "awaiting_approval"]);
const POLL_MS = 1000;
let watching = 0; // bumped on every navigation: a poll of a page no longer shown stops

function isLive(state) { return LIVE_STATES.has(state); }

function liveCells(run) {
  return [
    h("td", { class: "num", "data-field": "steps", text: run.step_count }),
    h("td", { class: "num", "data-field": "tokens", text: fmt.tokens(run.input_tokens + run.output_tokens) }),
    h("td", { class: "num", "data-field": "cost", text: fmt.cost(run.cost_usd) }),
    h("td", { class: "num", "data-field": "time", text: fmt.duration(run.duration_s) }),
  ];
}

function watch(path, apply) {
  const generation = watching;
  let last = null;
  const poll = async () => {
    if (generation !== watching) return;
    let again = true;
    try {
      const body = await api(path);
      const text = JSON.stringify(body);
      if (generation !== watching) return;
      if (text !== last) again = apply(body) !== false;
      last = text;
    } catch (error) { /* the server restarting, say: try again */ }
    if (again && generation === watching) setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS);
}

function updateRows(page) {
  // In place: a selection made for comparing, or a scroll position, is kept.
  let live = false;
  for (const run of page.runs) {
    const row = view.querySelector(`tr.run-row[data-run-id="${CSS.escape(run.run_id)}"]`);
    if (!row) continue;
    row.querySelector('[data-field="state"]').replaceChildren(stateBadge(run.state));
    for (const cell of liveCells(run)) row.querySelector(`[data-field="${cell.dataset.field}"]`).replaceWith(cell);
    live = live || isLive(run.state);
  }
  return live;
}

// --- one run's timeline -----------------------------------------------------------------------------------------

async function showRun(runId) {
  const path = `/api/runs/${encodeURIComponent(runId)}`;
  const live = drawRun(await api(path), true);
  if (live) watch(path, (timeline) => drawRun(timeline, false));
}

function drawRun(timeline, fresh) {
  // Redrawn as a run in progress gains steps: keep the scroll position and the <details> left open.
  const run = timeline.run;
  const live = isLive(run.state);
  const opened = new Set([...view.querySelectorAll("details[open]")].map(detailsKey));
  const closed = new Set([...view.querySelectorAll("details.child-run:not([open])")].map(detailsKey));
  const scroll = window.scrollY;
  document.title = `Run ${run.run_id.slice(0, 12)} · codeloop`;
  view.replaceChildren(
    h("h1", {}, `${run.agent} `, h("span", { class: "muted", text: run.run_id }),
      live ? h("span", { class: "tag live", id: "live", title: "updates as the run goes on", text: "live" }) : null),
    ...renderTimeline(timeline, 0));
  if (fresh) return live;
  for (const node of view.querySelectorAll("details")) {
    const key = detailsKey(node);
    if (opened.has(key)) node.open = true;
    if (closed.has(key)) node.open = false;
  }
  window.scrollTo(0, scroll);
  return live;
}

function detailsKey(node) {
  const step = node.closest("[data-step]");
  const summary = node.querySelector("summary")?.textContent || "";  // its first word: counts and states change
  return `${node.dataset.runId || ""}/${step ? step.dataset.step : ""}/${summary.split(" ")[0]}`;
}

function renderTimeline(timeline, depth) {
  const run = timeline.run;
  const span = Math.max(run.duration_s || 0, ...timeline.steps.map((step) =>
    (step.offset_s || 0) + (step.duration_s || 0)), 0.001);
  const childTimelines = new Map(timeline.children.map((child) => [child.run.run_id, child]));
  const parts = [
    h("div", { class: "cards" },
      card("State", stateBadge(run.state)),
      card("Model", run.model_id || "–"),
      card("Session", run.session || "–"),
      card("Started", fmt.time(run.started_at)),
      card("Duration", fmt.duration(run.duration_s)),
      card("Steps", String(run.step_count)),
      card("Tokens in / out", `${fmt.tokens(run.input_tokens)} / ${fmt.tokens(run.output_tokens)}`),
      card("Cost", fmt.cost(run.cost_usd)),
      run.parent_run_id ? card("Called by", runLink(run.parent_run_id)) : null),
    h("div", { class: "task-box" }, h("h2", {}, "Task"), h("pre", { text: run.task })),
  ];
  if (run.error) parts.push(h("pre", { class: "err", text: run.error }));
  if (depth === 0) parts.push(h("h2", {}, "Tokens and cost per step"), tokenChart(timeline.steps));
  parts.push(h("h2", {}, "Timeline"));
  for (const step of timeline.steps) parts.push(renderStep(step, span, childTimelines, depth));
  const placed = new Set(timeline.steps.flatMap((step) => step.child_run_ids));
  for (const child of timeline.child_runs.filter((c) => !placed.has(c.run_id))) {
    parts.push(renderChild(child, childTimelines.get(child.run_id), depth)); // started outside any step
  }
  if (run.output) parts.push(h("h2", {}, "Output"), h("pre", { class: "output", text: run.output }));
  if (timeline.events.length) {
    parts.push(h("details", { class: "more" }, h("summary", {}, `Events (${timeline.events.length})`),
      h("ul", {}, timeline.events.map((event) => h("li", {},
        h("b", { text: event.type }), ` at +${fmt.duration(event.offset_s)}: `,
        h("code", { text: JSON.stringify(event.data) }))))));
  }
  if (timeline.journal.length) {
    parts.push(h("details", { class: "more" }, h("summary", {}, `Effect journal (${timeline.journal.length})`),
      h("table", {}, h("thead", {}, h("tr", {}, ["Seq", "Kind", "Status", "In code effect", "Result"].map((t) =>
        h("th", { text: t })))),
      h("tbody", {}, timeline.journal.map((entry) => h("tr", {},
        h("td", { class: "num", text: entry.seq }), h("td", { text: entry.kind }),
        h("td", {}, stateBadge(entry.status === "failed" ? "failed" : entry.status)),
        h("td", { class: "num", text: entry.parent === null ? "" : entry.parent }),
        h("td", {}, h("code", { text: entry.result }))))))));
  }
  return parts;
}

function stepTitle(step) {
  if (step.kind === "action") return `Step ${step.step_number}`;
  return { task: "Task", planning: "Plan", final_answer: "Final answer" }[step.kind] || step.kind;
}

function renderStep(step, span, childTimelines, depth) {
  const failed = Boolean(step.error);
  const box = h("section", { class: `step step-${step.kind}${failed ? " step-failed" : ""}`,
    "data-step": step.kind === "action" ? step.step_number : step.kind });
  box.append(h("div", { class: "step-head" },
    h("span", { class: "title", text: stepTitle(step) }),
    step.duration_s !== null ? h("span", { class: "muted", text: fmt.duration(step.duration_s) }) : null,
    step.input_tokens || step.output_tokens
      ? h("span", { class: "muted", text: `${fmt.tokens(step.input_tokens)} in / ${fmt.tokens(step.output_tokens)} out` })
      : null,
    step.cost_usd !== null ? h("span", { class: "muted", text: fmt.cost(step.cost_usd) }) : null,
    step.is_final_answer ? h("span", { class: "tag", text: "final answer" }) : null));
  if (step.offset_s !== null && step.duration_s !== null) {
    box.append(h("div", { class: "lane", title: `+${fmt.duration(step.offset_s)} for ${fmt.duration(step.duration_s)}` },
      h("span", { style: `left:${pct(step.offset_s, span)}%;width:${pct(step.duration_s, span)}%` })));
  }
  if (step.kind !== "action") {
    if (step.text) box.append(h("pre", { text: step.text }));
    return box;
  }
  if (step.effects.length) {
    box.append(h("ul", { class: "effects" }, step.effects.map((effect) => h("li", {
      class: `effect effect-${effect.kind}`, "data-kind": effect.kind },
      h("span", { class: `kind kind-${effect.kind}`, text: effect.kind }),
      effect.run_id ? runLink(effect.run_id, effect.name) : h("span", { text: effect.name }),
      h("span", { class: "num", text: fmt.duration(effect.duration_s) }),
      h("span", {}, stateBadge(effect.status)),
      h("span", { class: "bar-cell" }, h("span", {
        class: `kind-${effect.kind}`,
        style: `left:${pct(effect.offset_s, span)}%;width:${pct(effect.duration_s || 0, span)}%` }))))));
  }
  if (step.code !== null) box.append(h("pre", { class: "code", text: step.code }));
  for (const call of step.tool_calls) {
    box.append(h("pre", { class: "code", text: `${call.name}(${JSON.stringify(call.arguments)})` }));
  }
  if (step.observations) box.append(h("pre", { class: "observation", text: step.observations }));
  if (step.error) box.append(h("pre", { class: "err", text: `${step.error_type || "Error"}: ${step.error}` }));
  if (step.model_output) {
    box.append(h("details", { class: "more" }, h("summary", {}, "Model output"), h("pre", { text: step.model_output })));
  }
  for (const childId of step.child_run_ids) {
    const child = childTimelines.get(childId);
    box.append(renderChild(child ? child.run : { run_id: childId, agent: "managed agent" }, child, depth));
  }
  return box;
}

function renderChild(row, child, depth) {
  const summary = h("summary", {}, `Managed agent ${row.agent}`, " ", row.state ? stateBadge(row.state) : null,
    " ", h("span", { class: "muted", text: row.task || "" }), " ", runLink(row.run_id, "open"));
  return h("details", { class: "child-run", open: depth < 2, "data-run-id": row.run_id }, summary,
    ...(child ? renderTimeline(child, depth + 1) : [h("p", { class: "muted", text: "Nested too deep: open it." })]));
}

function pct(value, span) {
  return Math.max(0, Math.min(100, (100 * (value || 0)) / span)).toFixed(2);
}

function tokenChart(steps) {
  const bars = steps.filter((step) => step.input_tokens || step.output_tokens || step.kind === "action");
  if (!bars.length) return h("p", { class: "muted", text: "No model calls recorded." });
  const width = Math.max(320, Math.min(1100, 70 + bars.length * 56));
  const height = 220;
  const left = 54, right = 74, top = 14, bottom = 30;
  const plotW = width - left - right, plotH = height - top - bottom;
  const maxTokens = Math.max(1, ...bars.map((b) => b.input_tokens + b.output_tokens));
  const costs = bars.map((b) => b.cost_usd);
  const maxCost = Math.max(0, ...costs.filter((c) => c !== null));
  const slot = plotW / bars.length;
  const barW = Math.min(36, slot * 0.6);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", id: "token-chart",
    "aria-label": "Tokens (bars: input and output) and cost (line) per step" });
  svg.append(s("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: "#c9ccd3" }));
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - fraction * plotH;
    svg.append(s("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmt.tokens(Math.round(fraction * maxTokens))));
    if (maxCost > 0) svg.append(s("text", { x: left + plotW + 6, y: y + 4 }, fmt.cost(fraction * maxCost)));
  }
  const points = [];
  bars.forEach((step, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    const inH = (step.input_tokens / maxTokens) * plotH;
    const outH = (step.output_tokens / maxTokens) * plotH;
    const label = stepTitle(step);
    const group = s("g", { class: "chart-step", "data-step": label });
    group.append(
      s("rect", { x, y: top + plotH - inH, width: barW, height: inH, fill: "var(--input)", class: "bar-input" },
        s("title", {}, `${label}: ${fmt.tokens(step.input_tokens)} input tokens`)),
      s("rect", { x, y: top + plotH - inH - outH, width: barW, height: outH, fill: "var(--output)", class: "bar-output" },
        s("title", {}, `${label}: ${fmt.tokens(step.output_tokens)} output tokens`)),
      s("text", { x: x + barW / 2, y: height - 10, "text-anchor": "middle" },
        step.kind === "action" ? String(step.step_number) : label.slice(0, 4)));
    svg.append(group);
    if (step.cost_usd !== null && maxCost > 0) {
      const cy = top + plotH - (step.cost_usd / maxCost) * plotH;
      points.push([x + barW / 2, cy]);
      svg.append(s("circle", { cx: x + barW / 2, cy, r: 3.5, fill: "#111827", class: "cost-point" },
        s("title", {}, `${label}: ${fmt.cost(step.cost_usd)}`)));
    }
  });
  if (points.length > 1) {
    svg.insertBefore(s("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none",
      stroke: "#111827", "stroke-width": 1.5 }), svg.querySelector("circle"));
  }
  return h("div", { class: "chart" }, svg, h("div", { class: "legend" },
    h("span", {}, h("i", { style: "background:var(--input)" }), "input tokens"),
    h("span", {}, h("i", { style: "background:var(--output)" }), "output tokens"),
    h("span", {}, h("i", { style: "background:#111827" }), "cost (right axis)")));
}

// --- two runs compared ------------------------------------------------------------------------------------------

async function showCompare() {
  const params = new URLSearchParams(location.search);
  const a = params.get("a") || "", b = params.get("b") || "";
  const form = h("form", { class: "compare-form", onsubmit: (event) => {
    event.preventDefault();
    navigate(`${ROOT}/runs/compare?a=${encodeURIComponent(form.elements.a.value.trim())}` +
      `&b=${encodeURIComponent(form.elements.b.value.trim())}`);
  } },
  h("label", {}, "Run A ", h("input", { name: "a", value: a, placeholder: "run id or prefix" })),
  h("label", {}, "Run B ", h("input", { name: "b", value: b, placeholder: "run id or prefix" })),
  h("button", { type: "submit" }, "Compare"));
  if (!a || !b) {
    view.replaceChildren(h("h1", {}, "Compare two runs"), form,
      h("p", { class: "muted", text: "Pick two runs in the run list, or give their ids." }));
    return;
  }
  const result = await api(`/api/runs/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
  const { a: runA, b: runB, diff } = result;
  const line = (label, left, right, delta, same) => h("tr", { "data-field": label },
    h("th", { text: label }),
    h("td", { class: same === false ? "differs" : null }, left),
    h("td", { class: same === false ? "differs" : null }, right),
    h("td", { class: "num delta" }, delta));
  const delta = (value, format) => h("span", { class: value > 0 ? "delta-up" : value < 0 ? "delta-down" : null,
    text: fmt.signed(value, format) });
  const summary = h("table", { id: "compare-summary" },
    h("thead", {}, h("tr", {}, h("th", {}), h("th", {}, "A ", runLink(runA.run_id)),
      h("th", {}, "B ", runLink(runB.run_id)), h("th", { class: "num", text: "B − A" }))),
    h("tbody", {},
      line("task", runA.task, runB.task, "", runA.task === runB.task),
      line("state", stateBadge(runA.state), stateBadge(runB.state), diff.state ? "same" : "differs", diff.state),
      line("model", runA.model_id, runB.model_id, diff.model_id ? "same" : "differs", diff.model_id),
      line("steps", String(runA.step_count), String(runB.step_count), delta(diff.step_count, String)),
      line("input tokens", fmt.tokens(runA.input_tokens), fmt.tokens(runB.input_tokens), delta(diff.input_tokens, fmt.tokens)),
      line("output tokens", fmt.tokens(runA.output_tokens), fmt.tokens(runB.output_tokens), delta(diff.output_tokens, fmt.tokens)),
      line("cost", fmt.cost(runA.cost_usd), fmt.cost(runB.cost_usd), delta(diff.cost_usd, fmt.cost)),
      line("time", fmt.duration(runA.duration_s), fmt.duration(runB.duration_s), delta(diff.duration_s, fmt.duration)),
      line("answer", h("pre", { text: runA.answer ?? runA.error ?? "" }), h("pre", { text: runB.answer ?? runB.error ?? "" }),
        diff.output ? "same" : "differs", diff.output)));
  const side = (step, same) => {
    if (!step) return h("td", { class: "missing muted", text: "(no such step)" });
    return h("td", { class: same.action === false || same.observations === false || same.error === false ? "differs" : null },
      h("div", { class: "muted", text: `${fmt.duration(step.duration_s)} · ${fmt.tokens(step.input_tokens)} in / ` +
        `${fmt.tokens(step.output_tokens)} out · ${fmt.cost(step.cost_usd)}` }),
      h("pre", { class: "code", text: step.action || "" }),
      step.observations ? h("pre", { class: "observation", text: step.observations }) : null,
      step.error ? h("pre", { class: "err", text: step.error }) : null);
  };
  const steps = h("table", { class: "compare", id: "compare-steps" },
    h("thead", {}, h("tr", {}, h("th", { text: "Step" }), h("th", { text: "A" }), h("th", { text: "B" }))),
    h("tbody", {}, result.rows.map((row) => h("tr", { "data-step": row.step_number },
      h("td", { class: "n", text: row.step_number }), side(row.a, row.same), side(row.b, row.same)))));
  view.replaceChildren(h("h1", {}, "Compare two runs"), form, summary, h("h2", {}, "Steps, aligned by number"), steps);
}

// --- routing ----------------------------------------------------------------------------------------------------

function navigate(url) {
  history.pushState(null, "", url);
  route();
}

async function route() {
  watching += 1;
  const path = location.pathname.slice(ROOT.length).replace(/\/+$/, "");
  delete view.dataset.ready;
  try {
    if (path === "/runs/compare") await showCompare();
    else if (path.startsWith("/runs/")) await showRun(decodeURIComponent(path.slice("/runs/".length)));
    else await showList();
    view.dataset.ready = path || "/runs"; // what the browser tests wait for
  } catch (error) {
    showError(error);
    view.dataset.ready = "error";
  }
}

window.addEventListener("popstate", route);
route();
