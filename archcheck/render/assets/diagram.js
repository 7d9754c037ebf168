(function () {
  const root = document.currentScript.closest("section");
  const data = JSON.parse(root.querySelector(".dg-data").textContent);
  const views = root.querySelectorAll("template.dg-view");
  const canvas = root.querySelector(".dg-canvas"), panel = root.querySelector(".dg-panel");
  const crumbs = root.querySelector(".dg-crumbs"), status = root.querySelector(".dg-status");
  let current = -1, figure = "params";

  const find = (scope, depth) => data.views.findIndex(v => v.scope === scope && v.depth === depth);
  function deepest(scope) {
    let best = -1;
    data.views.forEach((v, i) => { if (v.scope === scope && (best < 0 || v.depth > data.views[best].depth)) best = i; });
    return best;
  }
  function level(key, scope) { let n = 0; for (let k = key; k !== scope && k != null; k = data.parents[k]) n++; return n; }
  const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const boxOf = key => canvas.querySelector(`[data-layer="${CSS.escape(key)}"],g.node[data-block="${CSS.escape(key)}"]`);

  function show(i, focus) {
    current = i;
    canvas.replaceChildren(views[i].content.cloneNode(true));
    root.dataset.view = i;
    canvas.querySelectorAll("g.node").forEach(g => { g.querySelector("text.fig").textContent = data.prefix[figure] + " " + g.dataset[figure]; });
    const v = data.views[i], chain = [];
    for (let k = v.scope; k != null; k = data.parents[k]) chain.unshift(k);
    crumbs.innerHTML = chain.map(k => deepest(k) >= 0 && k !== v.scope ? `<a data-scope="${esc(k)}">${esc(data.labels[k])}</a>`
                                                                     : `<b>${esc(data.labels[k])}</b>`).join('<span class="sep">\u203a</span>');
    root.querySelector(".dg-fold").disabled = find(v.scope, v.depth - 1) < 0;
    root.querySelector(".dg-unfold").disabled = find(v.scope, v.depth + 1) < 0;
    if (focus == null) {  // the top of the picture in the middle of the canvas, without scrolling the page
      const first = canvas.querySelector("g.node");
      if (first) {
        const box = first.getBoundingClientRect(), frame = canvas.getBoundingClientRect();
        canvas.scrollLeft += box.left + box.width / 2 - frame.left - canvas.clientWidth / 2;
        canvas.scrollTop = 0;
      }
    } else {
      for (let k = focus; k != null; k = data.parents[k]) {
        const g = boxOf(k) || canvas.querySelector(`g.cluster[data-block="${CSS.escape(k)}"]`);
        if (g) { g.classList.add("focus"); g.scrollIntoView({block: "center", inline: "center"}); break; }
      }
    }
  }
  function unfold(key) {
    const v = data.views[current], i = find(v.scope, v.depth + 1);
    if (i >= 0) show(i, key); else if (deepest(key) >= 0) show(deepest(key));
  }
  function fold(key) {
    const v = data.views[current], i = find(v.scope, level(key, v.scope) - 1);
    if (i >= 0) show(i, key);
  }
  function reveal(name) {
    if (!(name in data.where)) return false;
    show(data.where[name], name);
    describe(boxOf(name));
    return true;
  }
  function describe(g) {
    if (!g) return;
    const name = g.dataset.layer, rows = Object.keys(data.figures).map(k => `<tr><td>${esc(data.figures[k])}</td><td>${esc(g.dataset[k])}</td></tr>`);
    const mine = data.findings.filter(f => f.layer === name).map(f =>
      `<div class="finding sev-${esc(f.severity)}"><b>${esc(f.code)}</b> ${esc(f.rule)} (${esc(f.severity)}${f.line ? ", line " + f.line : ""})<br>${esc(f.message)}${f.fix ? "<br><i>fix:</i> " + esc(f.fix) : ""}</div>`);
    panel.innerHTML = `<h3>${esc(name)}</h3><table><tr><td>type</td><td>${esc(g.dataset.type)}</td></tr><tr><td>output</td><td>${esc(g.dataset.shape)}</td></tr>${rows.join("")}<tr><td>written at</td><td>${esc(g.dataset.loc)}</td></tr></table>${mine.join("") || "<p>No findings.</p>"}`;
  }

  canvas.addEventListener("click", e => {
    const node = e.target.closest("g.node"), title = e.target.closest("g.cluster"), stub = e.target.closest("g.stub");
    if (node && node.dataset.block) unfold(node.dataset.block);
    else if (node) { canvas.querySelectorAll(".focus").forEach(x => x.classList.remove("focus")); node.classList.add("focus"); describe(node); }
    else if (stub) reveal(stub.dataset.target);
    else if (title && e.target.closest(".ctitle")) fold(title.dataset.block);
  });
  crumbs.addEventListener("click", e => { const a = e.target.closest("a"); if (a) show(deepest(a.dataset.scope), data.views[current].scope); });
  root.querySelector(".dg-fold").addEventListener("click", () => { const v = data.views[current]; show(find(v.scope, v.depth - 1)); });
  root.querySelector(".dg-unfold").addEventListener("click", () => { const v = data.views[current]; show(find(v.scope, v.depth + 1)); });
  root.querySelector(".dg-figure").addEventListener("change", e => { figure = e.target.value; show(current); });
  root.querySelector(".dg-search").addEventListener("keydown", e => {
    if (e.key !== "Enter") return;
    const text = e.target.value.trim(), names = Object.keys(data.where);
    const name = names.includes(text) ? text : names.find(n => n.includes(text));
    status.textContent = name && reveal(name) ? "" : `no layer named ${text}`;
  });
  window.archcheckDiagram = {reveal, show, unfold, fold, data};
  show(data.start);
})();
