// The console's only script: the live view (a polled JPEG with its faces drawn over it)
// and the enrollment's progress. No build step; nothing inline (the CSP forbids it).
"use strict";

function liveView(canvas) {
  const context = canvas.getContext("2d");
  const guidance = document.getElementById("guidance");
  const decision = document.getElementById("decision");
  const gates = document.getElementById("gates");
  let after = 0;
  let stopped = false;

  function drawFace(face, colour) {
    const [x1, y1, x2, y2] = face.box;
    context.lineWidth = 3;
    context.strokeStyle = colour;
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    context.fillStyle = colour;
    for (const [x, y] of face.landmarks) {
      context.beginPath();
      context.arc(x, y, 2.5, 0, 2 * Math.PI);
      context.fill();
    }
  }

  function show(info) {
    guidance.textContent = (info.guidance.good ? "\u2714 " : "") + info.guidance.text;
    guidance.className = "guidance " + (info.guidance.good ? "good" : "bad");
    const held = info.held ? " \u2014 " + info.held : "";
    if (info.decision) {
      const distance = info.decision.distance === null ? "" : "distance " + info.decision.distance.toFixed(3);
      decision.textContent = info.decision.person
        ? info.decision.person + ": " + info.decision.reason + ", " + distance + held
        : "unknown face (nearest enrolled person at " + distance + ")" + held;
    } else {
      decision.textContent = info.sighting + held;
    }
    gates.replaceChildren();
    for (const gate of (info.quality ? info.quality.gates : [])) {
      const item = document.createElement("li");
      item.className = gate.ok ? "good" : "bad";
      item.textContent = (gate.ok ? "\u2714 " : "\u2718 ") + gate.reason;
      gates.appendChild(item);
    }
  }

  async function next() {
    if (stopped) return;
    try {
      const response = await fetch(canvas.dataset.src + "?after=" + after, {cache: "no-store"});
      if (response.headers.get("Content-Type") === "image/jpeg") {
        const info = JSON.parse(response.headers.get("X-Frame-Info"));
        const picture = await createImageBitmap(await response.blob());
        if (canvas.width !== picture.width) canvas.width = picture.width;
        if (canvas.height !== picture.height) canvas.height = picture.height;
        context.drawImage(picture, 0, 0);
        for (const other of info.others) drawFace(other, "#9aa5b1");
        if (info.face) drawFace(info.face, info.guidance.good ? "#2fb344" : "#f59f00");
        after = info.seq;
        show(info);
      } else {
        const answer = await response.json();
        guidance.textContent = answer.error || "no new frame";
        guidance.className = "guidance bad";
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } catch (error) {
      guidance.textContent = "lost the console: " + error.message;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    setTimeout(next, 100);
  }
  document.addEventListener("visibilitychange", () => {
    const hidden = document.visibilityState === "hidden";
    if (stopped && !hidden) { stopped = false; next(); } else { stopped = hidden; }
  });
  next();
}

// Replace the items of the list with this id by [class, text] pairs (text only: never HTML).
function fillList(id, entries) {
  const list = document.getElementById(id);
  list.replaceChildren();
  for (const [className, text] of entries) {
    const item = document.createElement("li");
    item.className = className;
    item.textContent = text;
    list.appendChild(item);
  }
}

function enrollProgress(section) {
  async function poll() {
    const response = await fetch(section.dataset.poll, {cache: "no-store"});
    const progress = await response.json();
    const state = document.getElementById("enroll-state");
    state.dataset.state = progress.state;
    state.textContent = progress.name + ": " + progress.state + ", " + progress.good + "/" + progress.count +
      " good frames";
    fillList("enroll-lines", progress.lines.map((line) => [line.kind, line.text]));
    // The pose asked for now, and each pose's good frames with a tick when done (words from the server).
    fillList("enroll-poses", progress.poses.map((pose) => [pose.state, pose.text]));
    const verdicts = document.getElementById("enroll-verdicts");
    verdicts.replaceChildren();
    for (const text of progress.verdicts) {
      const item = document.createElement("li");
      item.textContent = text;
      verdicts.appendChild(item);
    }
    let before = state;
    for (const [id, text, css] of [["enroll-prompt", progress.prompt, "prompt"],
                                   ["enroll-poses", null, null],
                                   ["enroll-result", progress.result, "result"],
                                   ["enroll-coverage", progress.coverage, "coverage"],
                                   ["enroll-error", progress.error, "notice error"]]) {
      let element = document.getElementById(id);
      if (css === null) { before = element; continue; }  // a list drawn above: only keeps the order
      if (text && !element) {
        element = document.createElement("p");
        element.id = id;
        element.className = css;
        before.after(element);
      }
      if (element) { element.textContent = text || ""; before = element; }
    }
    if (progress.state === "starting" || progress.state === "capturing") {
      setTimeout(poll, 400);
    } else {
      window.location.assign("/enroll");  // finished: a fresh page from the server, with the form back
    }
  }
  if (["starting", "capturing"].includes(document.getElementById("enroll-state").dataset.state)) poll();
}

document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.getElementById("live");
  if (canvas) liveView(canvas);
  const section = document.getElementById("enroll-progress");
  if (section) enrollProgress(section);
});
