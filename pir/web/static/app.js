// pir page: file preview and drop, text-weight read-out, crop rectangles, relevance feedback with a marks tray,
// compare view, folding query on small screens, zoom. No framework.
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

  // Crop: "crop" arms a drawing (shown large); drag a rectangle (mouse, pen or touch); Esc cancels; the search reloads
  // with crop=INDEX:x0,y0,x1,y1 (marks and filters kept).
  $$(".crop-btn").forEach((btn) => btn.addEventListener("click", () => {
    const fig = btn.closest(".qdraw"), box = $(".cropbox", fig), idx = btn.dataset.index;
    fig.classList.add("cropping-fig"); box.classList.add("cropping");
    let hint = $(".crop-hint", fig);
    if (!hint) { hint = document.createElement("p"); hint.className = "crop-hint note"; hint.textContent = "Drag a rectangle on the drawing (keys: arrows move it, Shift+arrows size it, Enter crops); Esc cancels."; fig.appendChild(hint); }
    let start = null, rect = $(".croprect", box);
    const old = rect ? rect.getAttribute("style") : null;
    if (!rect) { rect = document.createElement("div"); rect.className = "croprect"; box.appendChild(rect); }
    const pos = (e) => { const r = box.getBoundingClientRect();
      return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))]; };
    const draw = (a, b) => { rect.style.left = Math.min(a[0], b[0]) * 100 + "%"; rect.style.top = Math.min(a[1], b[1]) * 100 + "%";
      rect.style.width = Math.abs(a[0] - b[0]) * 100 + "%"; rect.style.height = Math.abs(a[1] - b[1]) * 100 + "%"; };
    const cancel = () => { start = null; box.classList.remove("cropping"); fig.classList.remove("cropping-fig"); hint.remove();
      box.onpointerdown = box.onpointermove = box.onpointerup = null;
      if (old === null) rect.remove(); else rect.setAttribute("style", old); document.removeEventListener("keydown", esc); };
    const apply = (x0, y0, x1, y1) => {
      if (x1 - x0 < 0.02 || y1 - y0 < 0.02) return;
      const url = new URL(layoutUrl(), window.location.href), p = url.searchParams, f = (v) => v.toFixed(4);
      const keep = p.getAll("crop").filter((c) => !c.startsWith(idx + ":"));
      p.delete("crop"); keep.forEach((c) => p.append("crop", c));
      p.append("crop", `${idx}:${f(x0)},${f(y0)},${f(x1)},${f(y1)}`);
      window.location.href = url.pathname + "?" + p.toString();
    };
    // Keyboard: the rectangle starts as the whole drawing; arrows move it, Shift+arrows move its right / bottom edge
    // (5% a press), Enter crops to it.
    let kb = [0, 0, 1, 1];
    const clamp = (v) => Math.round(Math.min(1, Math.max(0, v)) * 100) / 100;
    const key = (e) => {
      if (e.key === "Escape") { cancel(); return; }
      if (e.target.closest && e.target.closest("input, select, textarea")) return;  // typing elsewhere
      if (e.key === "Enter") { e.preventDefault(); apply(...kb); return; }
      const d = { ArrowLeft: [-0.05, 0], ArrowRight: [0.05, 0], ArrowUp: [0, -0.05], ArrowDown: [0, 0.05] }[e.key];
      if (!d) return;
      e.preventDefault();
      let [x0, y0, x1, y1] = kb;
      if (e.shiftKey) { x1 = Math.max(x0 + 0.05, clamp(x1 + d[0])); y1 = Math.max(y0 + 0.05, clamp(y1 + d[1])); }
      else {
        const dx = Math.min(Math.max(d[0], -x0), 1 - x1), dy = Math.min(Math.max(d[1], -y0), 1 - y1);
        x0 = clamp(x0 + dx); x1 = clamp(x1 + dx); y0 = clamp(y0 + dy); y1 = clamp(y1 + dy);
      }
      kb = [x0, y0, x1, y1]; draw([x0, y0], [x1, y1]);
    };
    const esc = key;  // cancel() removes it
    document.addEventListener("keydown", esc);
    box.tabIndex = 0; box.setAttribute("aria-label", "crop: drag, or arrows and Shift+arrows then Enter"); box.focus();
    box.style.touchAction = "none";
    box.onpointerdown = (e) => { e.preventDefault(); box.setPointerCapture(e.pointerId); start = pos(e); draw(start, start); };
    box.onpointermove = (e) => { if (start) draw(start, pos(e)); };
    box.onpointerup = (e) => {
      if (!start) return;
      const end = pos(e);
      const x0 = Math.min(start[0], end[0]), x1 = Math.max(start[0], end[0]), y0 = Math.min(start[1], end[1]), y1 = Math.max(start[1], end[1]);
      start = null;
      apply(x0, y0, x1, y1);
    };
  }));

  // The search's own URL (after a POST with a bad file the address bar shows /search: put the state back in it).
  function layoutUrl() { const l = $("#layout"); return l ? l.dataset.url : window.location.href; }
  if ($("#layout") && window.location.pathname === "/search") history.replaceState(null, "", layoutUrl());

  // Relevance feedback: +/- toggle a hit's mark (aria-pressed); "search again" rebuilds pos=/neg= from the marks so far
  // (the tray's, which stay in the URL) and the hits' current marks. Marked-relevant hits stay in the results.
  $$(".hit .mark").forEach((b) => b.addEventListener("click", () => {
    const hit = b.closest(".hit"), m = b.dataset.mark, other = m === "pos" ? "neg" : "pos";
    hit.classList.remove(other); hit.classList.toggle(m);
    $$(".mark", hit).forEach((x) => x.setAttribute("aria-pressed", hit.classList.contains(x.dataset.mark) ? "true" : "false"));
  }));
  const fb = $("#feedback-btn");
  if (fb) fb.addEventListener("click", () => {
    const url = new URL($("#feedback").dataset.url, window.location.href), p = url.searchParams;
    let pos = p.getAll("pos"), neg = p.getAll("neg");
    $$(".hit").forEach((h) => {
      const id = h.dataset.id; pos = pos.filter((x) => x !== id); neg = neg.filter((x) => x !== id);
      if (h.classList.contains("pos")) pos.push(id); else if (h.classList.contains("neg")) neg.push(id);
    });
    p.delete("pos"); p.delete("neg"); pos.forEach((x) => p.append("pos", x)); neg.forEach((x) => p.append("neg", x));
    window.location.href = url.pathname + "?" + p.toString();
  });

  // A zoomed drawing pans by dragging it (mouse, pen or touch) as well as by scrolling.
  function dragPan(box) {
    box.onpointerdown = (e) => {
      if (e.button !== 0 || (box.scrollWidth <= box.clientWidth && box.scrollHeight <= box.clientHeight)) return;
      e.preventDefault();
      const sx = e.clientX, sy = e.clientY, left = box.scrollLeft, top = box.scrollTop;
      box.setPointerCapture(e.pointerId); box.classList.add("panning");
      box.onpointermove = (m) => { box.scrollLeft = left - (m.clientX - sx); box.scrollTop = top - (m.clientY - sy); };
      box.onpointerup = box.onpointercancel = () => { box.onpointermove = null; box.classList.remove("panning"); };
    };
  }

  // Compare: pick hits; see them beside the query drawings at the same size, with one zoom and synced panning.
  const cmpBtn = $("#compare-btn"), cv = $("#compare-view"), cvRow = $("#cv-row"), cvZoom = $("#cv-zoom");
  const picks = () => $$(".compare-pick:checked");
  $$(".compare-pick").forEach((c) => c.addEventListener("change", () => {
    $("#n-compare").textContent = picks().length; cmpBtn.disabled = picks().length === 0;
  }));
  if (cmpBtn && cv) {
    cmpBtn.addEventListener("click", () => {
      $$(".cv-item.hit-item", cvRow).forEach((x) => x.remove());
      picks().forEach((c) => {
        const hit = c.closest(".hit"), fig = document.createElement("figure"), box = document.createElement("div");
        const img = document.createElement("img"), cap = document.createElement("figcaption");
        fig.className = "cv-item hit-item"; box.className = "cv-box";
        img.src = "/api/figures/" + hit.dataset.id + "/thumb?size=1024"; img.alt = hit.dataset.patent + " " + hit.dataset.figure;
        cap.textContent = hit.dataset.patent + " " + hit.dataset.figure;
        box.appendChild(img); fig.appendChild(box); fig.appendChild(cap); cvRow.appendChild(fig);
      });
      cv.hidden = false; cvZoom.value = 100; zoomAll(); bindPan(); cv.scrollIntoView();
    });
    $("#cv-close").addEventListener("click", () => { cv.hidden = true; });
    const zoomAll = () => $$(".cv-box img", cvRow).forEach((i) => { i.style.width = cvZoom.value + "%"; });
    cvZoom.addEventListener("input", zoomAll);
    let syncing = false;
    const bindPan = () => $$(".cv-box", cvRow).forEach((b) => { dragPan(b); b.onscroll = () => {
      if (syncing) return; syncing = true;
      $$(".cv-box", cvRow).forEach((o) => { if (o !== b) { o.scrollLeft = b.scrollLeft; o.scrollTop = b.scrollTop; } });
      requestAnimationFrame(() => { syncing = false; });
    }; });
  }

  // Small screens: after a search the hits come first and the query folds away (a button opens it again).
  const toggle = $("#toggle-form"), qbody = $("#qbody");
  const fold = (hide) => { qbody.hidden = hide; toggle.textContent = hide ? "show the query" : "hide the query"; toggle.setAttribute("aria-expanded", hide ? "false" : "true"); };
  if (toggle && qbody) {
    toggle.addEventListener("click", () => fold(!qbody.hidden));
    if ($(".layout.has-results") && window.matchMedia("(max-width: 800px)").matches) fold(true);
  }

  // Clusters: untick one to hide its hits (a family of look-alikes skipped at once).
  $$(".cluster-show").forEach((c) => c.addEventListener("change", () => {
    $$(`#grid .hit[data-cluster="${c.value}"]`).forEach((h) => { h.hidden = !c.checked; });
  }));

  // The error page's "back": the previous page with its query, not an empty form.
  const back = $("#back-link");
  if (back && window.history.length > 1) back.addEventListener("click", (e) => { e.preventDefault(); window.history.back(); });

  const printBtn = $("#print-btn");
  if (printBtn) printBtn.addEventListener("click", () => window.print());

  const zoom = $("#zoom"), big = $("#big");
  if (zoom && big) { zoom.addEventListener("input", () => { big.style.width = zoom.value + "%"; }); dragPan(big.parentElement); }
  const pick = $("#cls-pick");
  if (pick) pick.addEventListener("change", () => { if (pick.value) $("#search-form").requestSubmit(); });
})();
