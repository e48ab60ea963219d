// The chat page: renders the session's events (server-sent, replayed from the start on reload) and sends
// tasks, stops, answers and approval decisions. No framework, nothing from a CDN.
"use strict";

const $ = (selector) => document.querySelector(selector);
const transcript = $("#transcript");
const runEls = [];      // runEls[depth]: the run being shown at that nesting depth
const stepEls = [];     // stepEls[depth]: its current step

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

async function api(path, body) {
  const options = body instanceof FormData ? { method: "POST", body }
    : body !== undefined ? { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }
    : {};
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function showBanner(text, info) {
  const banner = $("#banner");
  banner.hidden = !text;
  banner.textContent = text || "";
  banner.className = info ? "info" : "";
}

function container(depth) {
  return stepEls[depth] || runEls[depth] || (depth > 0 ? container(depth - 1) : transcript);
}

function money(value) { return value === null || value === undefined ? "cost unknown" : "$" + value.toFixed(4); }
function seconds(value) { return value === null || value === undefined ? "" : value.toFixed(1) + " s"; }

function addImages(target, urls) {
  if (!urls || !urls.length) return;
  const box = el("div", "images");
  for (const url of urls) { const img = el("img"); img.src = url; img.alt = "image"; box.append(img); }
  target.append(box);
}

function render(item) {
  const depth = item.depth || 0;
  const where = container(depth);
  switch (item.type) {
    case "run_started": {
      const run = el("div", "run");
      run.dataset.runId = item.run_id;
      run.dataset.depth = depth;
      run.append(el("div", "task", (depth ? item.agent + ": " : "") + item.task));
      (depth ? container(depth - 1) : transcript).append(run);
      runEls[depth] = run; stepEls[depth] = null;
      runEls.length = depth + 1; stepEls.length = depth + 1;
      break;
    }
    case "step_started": {
      const step = el("div", "step");
      step.append(el("div", "label", "Step " + item.step));
      (runEls[depth] || where).append(step);
      stepEls[depth] = step;
      break;
    }
    case "text_delta": {
      let live = where.querySelector(":scope > .ev-thought.live");
      if (!live) { live = el("div", "ev-thought live"); where.append(live); }
      live.textContent += item.text;
      break;
    }
    case "thought": {
      const live = where.querySelector(":scope > .ev-thought.live");
      if (live) live.remove();
      where.append(el("div", "ev-thought", item.text));
      break;
    }
    case "code": {
      const live = where.querySelector(":scope > .ev-thought.live");
      if (live) live.remove();
      const code = el("div", "ev-code");
      code.innerHTML = item.html;  // made by Pygments on the server: escaped, only its spans
      where.append(code);
      break;
    }
    case "tool_call": {
      const call = el("div", "ev-tool-call", "Tool call: " + item.tool);
      call.append(el("pre", null, item.arguments));
      where.append(call);
      break;
    }
    case "log": where.append(el("div", "ev-log", item.text)); break;
    case "observation": where.append(el("div", "ev-observation", item.text)); break;
    case "plan": (runEls[depth] || where).append(el("div", "ev-plan", item.text)); break;
    case "error": where.append(el("div", "ev-error", "Error: " + item.text)); break;
    case "failure": transcript.append(el("div", "ev-failure", item.text)); break;
    case "notice": where.append(el("div", "ev-notice", item.text)); break;
    case "step_finished": {
      addImages(where, item.images);
      where.append(el("div", "meta",
        `step ${item.step} · ${item.input_tokens} in / ${item.output_tokens} out tokens · ${money(item.cost_usd)} · ${seconds(item.duration_s)}`));
      break;
    }
    case "files": {  // what the step's code wrote into its working directory
      const box = el("div", "ev-files");
      box.append(el("div", "label", "Files written"));
      const list = el("ul");
      for (const file of item.files) {
        const entry = el("li");
        if (file.url) {
          const link = el("a", "download", file.path);
          link.href = file.url; link.download = file.name;
          entry.append(link);
        } else entry.append(el("span", null, file.path));
        entry.append(el("span", "muted", ` ${file.size}` + (file.note ? ` · ${file.note}` : "")));
        list.append(entry);
      }
      box.append(list);
      if (item.note) box.append(el("div", "muted", item.note));
      addImages(box, item.files.filter((file) => file.image).map((file) => file.url));
      where.append(box);
      break;
    }
    case "final_answer": {
      const answer = el("div", "ev-final", item.text);
      addImages(answer, item.images);
      for (const file of item.files || []) {
        const link = el("a", "download", "Download " + file.name);
        link.href = file.url; link.download = file.name;
        answer.append(el("br"), link);
      }
      (runEls[depth] || where).append(answer);
      break;
    }
    case "run_finished": {
      const ok = item.state === "success";
      let text = `${item.state} · ${item.input_tokens} in / ${item.output_tokens} out tokens · ${money(item.cost_usd)} · ${seconds(item.duration_s)}`;
      if (item.error) text += " · " + item.error;
      if (item.pending && item.pending.length) text += ` · ${item.pending.length} call(s) await approval`;
      (runEls[depth] || where).append(el("div", "summary" + (ok || item.state === "awaiting_approval" ? "" : " bad"), text));
      stepEls[depth] = null;
      if (depth === 0) refreshState();
      break;
    }
    case "question": {
      const box = el("form", "question");
      box.dataset.questionId = item.id;
      box.append(el("div", null, item.text));
      const input = el("input"); input.name = "answer"; input.placeholder = "Your answer";
      const button = el("button", null, "Answer"); button.type = "submit";
      box.append(input, button);
      box.addEventListener("submit", async (event) => {
        event.preventDefault();
        button.disabled = true;
        try { await api("api/chat/answer", { id: item.id, text: input.value }); }
        catch (error) { showBanner(error.message); button.disabled = false; }
      });
      where.append(box);
      input.focus();
      break;
    }
    case "answer": {
      const box = document.querySelector(`.question[data-question-id="${item.id}"]`);
      if (box) box.replaceWith(el("div", "ev-notice", "You answered: " + item.text));
      break;
    }
    case "idle": setBusy(false); refreshState(); break;
  }
  transcript.scrollTop = transcript.scrollHeight;
}

function setBusy(busy) {
  $("#send").disabled = busy;
  $("#stop").disabled = !busy;
}

function renderApprovals(pending) {
  const box = $("#approvals");
  // The list is redrawn whenever the session's state is refreshed: keep what was typed into a reason box
  // (a refresh between typing and clicking Deny sent "denied by the user" instead of the reason).
  const typed = {};
  for (const old of box.querySelectorAll(".approval-card")) {
    const input = old.querySelector("input[name=reason]");
    if (input && input.value) typed[`${old.dataset.runId}/${old.dataset.callId}`] = input.value;
  }
  box.replaceChildren();
  if (!pending.length) { box.append(el("p", "muted", "No tool call is waiting.")); return; }
  for (const run of pending) {
    for (const call of run.calls) {
      const card = el("div", "approval-card");
      card.dataset.runId = run.run_id; card.dataset.callId = call.call_id;
      card.append(el("div", null, `${call.tool} (call ${call.call_id})`));
      if (call.reason) card.append(el("div", "muted", call.reason));
      card.append(el("pre", null, JSON.stringify(call.arguments, null, 2)));
      const reason = el("input"); reason.placeholder = "Reason, if you deny"; reason.name = "reason";
      reason.value = typed[`${run.run_id}/${call.call_id}`] || "";
      const yes = el("button", "approve", "Approve"); const no = el("button", "deny", "Deny");
      const decide = async (decision) => {
        yes.disabled = no.disabled = true;
        try {
          await api("api/chat/approve", { run_id: run.run_id, decisions: { [call.call_id]: decision } });
          card.remove(); setBusy(true);
        } catch (error) { showBanner(error.message); yes.disabled = no.disabled = false; }
      };
      yes.addEventListener("click", () => decide(true));
      no.addEventListener("click", () => decide(reason.value.trim() || "denied by the user"));
      card.append(reason, yes, document.createTextNode(" "), no);
      box.append(card);
    }
  }
}

function renderRuns(runs, linked) {
  const list = $("#runs");
  list.replaceChildren();
  for (const run of runs) {
    const item = el("li");
    const link = el(linked ? "a" : "span", null, run.task.slice(0, 60));
    if (linked) link.href = "runs/" + encodeURIComponent(run.run_id);  // the run browser's timeline
    item.append(link, el("span", "muted", " " + run.state));
    list.append(item);
  }
}

async function refreshState() {
  try {
    const state = await api("api/chat/state");
    $("#agent-name").textContent = state.agent ? "agent: " + state.agent : "";
    if (state.error) showBanner(state.error);
    else if (state.shared) showBanner("One agent instance serves every browser session: runs take turns. Serve a function returning a new agent to run sessions side by side.", true);
    else showBanner("");
    setBusy(Boolean(state.busy));
    $("#send").disabled = Boolean(state.busy || state.error);
    renderApprovals(state.pending || []);
    renderRuns(state.runs || [], Boolean(state.run_browser));
  } catch (error) { showBanner(error.message); }
}

async function send(event) {
  event.preventDefault();
  const task = $("#task").value.trim();
  if (!task) return;
  setBusy(true);
  try {
    await api("api/chat/send", { task });
    $("#task").value = ""; $("#uploaded").textContent = "";
  } catch (error) { showBanner(error.message); setBusy(false); }
}

$("#composer").addEventListener("submit", send);
$("#task").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) send(event);
});
$("#stop").addEventListener("click", () => api("api/chat/stop", {}).catch((error) => showBanner(error.message)));
$("#files").addEventListener("change", async () => {
  const form = new FormData();
  for (const file of $("#files").files) form.append("file", file, file.name);
  try {
    const data = await api("api/chat/upload", form);
    $("#uploaded").textContent = "attached: " + data.uploaded.map((f) => f.name).join(", ");
  } catch (error) { showBanner(error.message); }
  $("#files").value = "";
});

refreshState().then(() => {
  const stream = new EventSource("api/chat/events");
  stream.addEventListener("agent", (message) => render(JSON.parse(message.data)));
});
