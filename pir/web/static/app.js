// pir page: file preview and drop, text-weight read-out, crop rectangles, relevance feedback, zoom. No framework.
(function () {
  "use strict";
  const $ = (s, el) => (el || document).querySelector(s);
  const $$ = (s, el) => Array.from((el || document).querySelectorAll(s));

  // Files: drop onto the zone or pick; show small previews.
  const input = $("#images"), drop = $("#drop"), picked = $("#picked");
  function preview() {
    if (!input || !picked) return;
    picked.textContent = "";
    Array.from(input.files).forEach((f) => {
      const img = document.createElement("img");
      img.src = URL.createObjectURL(f); img.alt = f.name; img.title = f.name;
      picked.appendChild(img);
    });
  }
  if (input) input.addEventListener("change", preview);
  if (drop && input) {
    ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
    ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (e) => { e.preventDefault(); input.files = e.dataTransfer.files; preview(); });
  }

  const tw = $("#text_weight"), twOut = $("#tw-out");
  if (tw && twOut) tw.addEventListener("input", () => { twOut.textContent = tw.value; });

  // Crop: "crop" arms a drawing; drag a rectangle on it; the search reloads with crop=INDEX:x0,y0,x1,y1.
  $$(".crop-btn").forEach((btn) => btn.addEventListener("click", () => {
    const fig = btn.closest(".qdraw"), box = $(".cropbox", fig), idx = btn.dataset.index;
    box.classList.add("cropping");
    let start = null, rect = $(".croprect", box);
    if (!rect) { rect = document.createElement("div"); rect.className = "croprect"; box.appendChild(rect); }
    const pos = (e) => { const r = box.getBoundingClientRect();
      return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))]; };
    const draw = (a, b) => { rect.style.left = Math.min(a[0], b[0]) * 100 + "%"; rect.style.top = Math.min(a[1], b[1]) * 100 + "%";
      rect.style.width = Math.abs(a[0] - b[0]) * 100 + "%"; rect.style.height = Math.abs(a[1] - b[1]) * 100 + "%"; };
    box.onmousedown = (e) => { e.preventDefault(); start = pos(e); draw(start, start); };
    box.onmousemove = (e) => { if (start) draw(start, pos(e)); };
    box.onmouseup = (e) => {
      if (!start) return;
      const end = pos(e), f = (v) => v.toFixed(4);
      const x0 = Math.min(start[0], end[0]), x1 = Math.max(start[0], end[0]), y0 = Math.min(start[1], end[1]), y1 = Math.max(start[1], end[1]);
      start = null;
      if (x1 - x0 < 0.02 || y1 - y0 < 0.02) return;
      const url = new URL(window.location.href), p = url.searchParams;
      const keep = p.getAll("crop").filter((c) => !c.startsWith(idx + ":"));
      p.delete("crop"); keep.forEach((c) => p.append("crop", c));
      p.append("crop", `${idx}:${f(x0)},${f(y0)},${f(x1)},${f(y1)}`);
      p.delete("pos"); p.delete("neg");
      window.location.href = url.pathname + "?" + p.toString();
    };
  }));

  // Relevance feedback: toggle marks; "search again" reloads with the new pos=/neg= ids added to the earlier rounds
  // (marked figures leave the results, as in Qdrant's recommend query, so earlier marks live only in the URL).
  $$(".hit .mark").forEach((b) => b.addEventListener("click", () => {
    const hit = b.closest(".hit"), m = b.dataset.mark, other = m === "pos" ? "neg" : "pos";
    hit.classList.remove(other); hit.classList.toggle(m);
  }));
  const fb = $("#feedback-btn");
  if (fb) fb.addEventListener("click", () => {
    const base = $("#feedback").dataset.url, url = new URL(base, window.location.href), p = url.searchParams;
    const add = (key, id) => { if (!p.getAll("pos").includes(id) && !p.getAll("neg").includes(id)) p.append(key, id); };
    $$(".hit.pos").forEach((h) => add("pos", h.dataset.id));
    $$(".hit.neg").forEach((h) => add("neg", h.dataset.id));
    window.location.href = url.pathname + "?" + p.toString();
  });

  const printBtn = $("#print-btn");
  if (printBtn) printBtn.addEventListener("click", () => window.print());

  const zoom = $("#zoom"), big = $("#big");
  if (zoom && big) zoom.addEventListener("input", () => { big.style.width = zoom.value + "%"; });
})();
