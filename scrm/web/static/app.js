/* SCRM agent workspace: CSRF for HTMX, live updates over SSE, keyboard shortcuts, canned
   replies, charts. No inline script anywhere (CSP: script-src 'self'). */
(function () {
  "use strict";

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  function toast(text, kind) {
    var box = document.getElementById("toast");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast-msg " + (kind || "");
    el.textContent = text;
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 5000);
  }

  // -- HTMX: CSRF header on every request; show errors (4xx/5xx) in the toast ---------------
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf();
  });
  document.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr;
    if (xhr.status >= 400 && xhr.status !== 401) {
      e.detail.shouldSwap = false;
      // DOMParser never runs scripts or loads images: the text is all we take.
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      toast((doc.body.textContent || "").trim() || ("HTTP " + xhr.status), "error");
    }
  });
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "pane") markSelected();
  });

  // -- selection in the conversation list ----------------------------------------------------
  function openId() {
    var p = document.getElementById("pane-inner");
    return p ? p.getAttribute("data-conversation") : null;
  }
  function markSelected() {
    var id = openId();
    document.querySelectorAll(".conv-row").forEach(function (r) {
      r.classList.toggle("sel", r.getAttribute("data-id") === id);
    });
  }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll(".conv-row")); }
  function move(delta) {
    var list = rows();
    if (!list.length) return;
    var id = openId();
    var idx = list.findIndex(function (r) { return r.getAttribute("data-id") === id; });
    var next = list[Math.max(0, Math.min(list.length - 1, idx + delta))];
    if (idx === -1) next = list[0];
    if (next) { next.click(); next.scrollIntoView({ block: "nearest" }); }
  }

  // -- live updates: the workspace's committed events over SSE -------------------------------
  var refreshTimer = null;
  function refreshList() {
    var list = document.getElementById("conv-list");
    if (!list || !window.htmx) return;
    if (refreshTimer) clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () {
      htmx.ajax("GET", list.getAttribute("data-src"), { target: "#conv-list", swap: "outerHTML" })
        .then(markSelected);
    }, 150);
  }
  function refreshThread(conversationId) {
    if (conversationId && conversationId === openId()) {
      var thread = document.getElementById("thread");
      if (thread && window.htmx) htmx.trigger(thread, "refresh");
    }
  }
  function connectLive() {
    if (!document.body.getAttribute("data-live") || !window.EventSource) return;
    var dot = document.getElementById("live-dot");
    var es = new EventSource("/ui/events");
    es.onopen = function () { if (dot) dot.classList.add("on"); };
    es.onerror = function () { if (dot) dot.classList.remove("on"); };
    ["message.received", "message.sent", "message.failed", "conversation.created",
     "conversation.updated", "conversation.assigned", "conversation.routed",
     "conversation.resolved", "conversation.reopened", "conversation.triaged",
     "outcome.recorded"].forEach(function (name) {
      es.addEventListener(name, function (ev) {
        var data = {};
        try { data = JSON.parse(ev.data); } catch (err) { data = {}; }
        refreshList();
        refreshThread(data.conversation_id);
      });
    });
    window.addEventListener("beforeunload", function () { es.close(); });
  }

  // -- keyboard shortcuts --------------------------------------------------------------------
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }
  function toggleHelp(show) {
    var h = document.getElementById("help");
    if (!h) return;
    h.hidden = show === undefined ? !h.hidden : !show;
  }
  function click(id) {
    var el = document.getElementById(id);
    if (!el) return;
    // A pane swapped in a moment ago is wired by htmx only after its settle delay; until then
    // its button would submit the form natively (a full-page POST). Wire it now (idempotent).
    if (window.htmx) htmx.process(el.closest("form") || el);
    el.click();
  }
  function focus(id) { var el = document.getElementById(id); if (el) { el.focus(); return true; } return false; }

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      toggleHelp(false);
      if (typing(document.activeElement)) document.activeElement.blur();
      return;
    }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && document.activeElement &&
        document.activeElement.id === "reply-text") {
      e.preventDefault();
      click("send-btn");
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(document.activeElement)) return;
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "r": if (focus("reply-text")) e.preventDefault(); break;
      case "e": click("btn-resolve"); break;
      case "a": if (focus("assign-select")) e.preventDefault(); break;
      case "/": if (focus("search")) e.preventDefault(); break;
      case "?": toggleHelp(); break;
      default: return;
    }
  });

  // -- clicks and changes (delegated, so swapped-in fragments work) ---------------------------
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t.closest && t.closest("[data-action=help]")) { toggleHelp(true); return; }
    if (t.id === "help") toggleHelp(false);
    var act = t.closest ? t.closest("[data-action]") : null;
    if (act) ruleBuilderClick(act, e);
  });
  // Forms that delete something ask first (data-confirm holds the question).
  document.addEventListener("submit", function (e) {
    var q = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (q && !window.confirm(q)) e.preventDefault();
  });

  // -- rule builder (Admin → Rules): add, remove and order rows; fit operators to the field ----
  var NO_VALUE = ["present", "absent", "empty", "is"];
  function syncCondRow(row) {
    var fieldSel = row.querySelector(".cond-field");
    var opSel = row.querySelector(".cond-op");
    if (!fieldSel || !opSel) return;
    var opt = fieldSel.selectedOptions[0];
    var kind = opt ? opt.getAttribute("data-kind") : "str";
    row.setAttribute("data-kind", kind);
    var attr = row.querySelector(".cond-attr");
    if (attr) attr.hidden = fieldSel.value !== "contact.attributes.";
    var first = null, keep = false;
    Array.prototype.forEach.call(opSel.options, function (o) {
      var ok = (o.getAttribute("data-kinds") || "").split(" ").indexOf(kind) !== -1;
      o.hidden = !ok;
      if (ok && !first) first = o;
      if (ok && o.selected) keep = true;
    });
    if (!keep && first) opSel.value = first.value;
    var value = row.querySelector(".cond-value");
    if (value) {
      value.hidden = NO_VALUE.indexOf(opSel.value) !== -1;
      value.setAttribute("list", "dl-" + fieldSel.value);
    }
    var flag = row.querySelector(".cond-flag");
    if (flag) flag.hidden = opSel.value !== "is";
  }
  function syncActRow(row, typeChanged) {
    var typeSel = row.querySelector(".act-type");
    if (!typeSel) return;
    row.querySelectorAll(".act-params").forEach(function (g) {
      g.hidden = g.getAttribute("data-type") !== typeSel.value;
    });
    // Parameters kept from the saved action belong to its old type.
    var kept = row.querySelector(".act-keep");
    if (typeChanged && kept) kept.value = "";
  }
  function ruleBuilderClick(el, e) {
    var name = el.getAttribute("data-action");
    var row = el.closest(".rule-row");
    if (name === "add-row") {
      var tpl = document.getElementById(el.getAttribute("data-template"));
      var target = document.getElementById(el.getAttribute("data-target"));
      if (!tpl || !target) return;
      e.preventDefault();
      var node = tpl.content.firstElementChild.cloneNode(true);
      target.appendChild(node);
      var focusable = node.querySelector("select, input");
      if (focusable) focusable.focus();
    } else if (name === "remove-row" && row) {
      e.preventDefault();
      row.remove();
    } else if (name === "row-up" && row && row.previousElementSibling) {
      e.preventDefault();
      row.parentNode.insertBefore(row, row.previousElementSibling);
    } else if (name === "row-down" && row && row.nextElementSibling) {
      e.preventDefault();
      row.parentNode.insertBefore(row.nextElementSibling, row);
    }
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.classList.contains("cond-field") || t.classList.contains("cond-op")) {
      syncCondRow(t.closest(".cond-row"));
      return;
    }
    if (t.classList.contains("act-type")) {
      syncActRow(t.closest(".act-row"), true);
      return;
    }
    if (t.id === "canned-select" && t.selectedOptions.length) {
      var text = t.selectedOptions[0].getAttribute("data-text");
      var box = document.getElementById("reply-text");
      if (box && text) { box.value = text; box.focus(); }
      t.value = "";
      return;
    }
    if (t.form && t.form.hasAttribute("data-autosubmit") && t.tagName === "SELECT") t.form.submit();
  });
  // The search box belongs to the filter form (form= attribute): Enter submits it.

  // -- dashboard charts ------------------------------------------------------------------------
  function drawCharts() {
    var node = document.getElementById("chart-data");
    if (!node || !window.echarts) return;
    var tables = JSON.parse(node.textContent);
    document.querySelectorAll(".chart").forEach(function (el) {
      var name = el.id.replace("chart-", "");
      var tb = tables[name];
      if (!tb) return;
      var chart = echarts.init(el, null, { renderer: "svg" });
      var option;
      if (el.getAttribute("data-kind") === "pie") {
        option = {
          tooltip: { trigger: "item" },
          series: [{ type: "pie", radius: ["35%", "70%"],
            data: tb.rows.map(function (r) { return { name: r[0], value: r[1] }; }) }]
        };
      } else {
        var series = tb.columns.slice(1).map(function (col, i) {
          return { name: col, type: "bar", stack: name === "queue" ? "q" : undefined,
            data: tb.rows.map(function (r) { return typeof r[i + 1] === "number" ? r[i + 1] : 0; }) };
        });
        if (name === "agents") series = series.slice(0, 1);
        option = {
          tooltip: { trigger: "axis" }, legend: { top: 0 },
          grid: { left: 40, right: 10, top: 30, bottom: 30 },
          xAxis: { type: "category", data: tb.rows.map(function (r) { return r[0]; }) },
          yAxis: { type: "value", minInterval: 1 }, series: series
        };
      }
      option.animation = false;
      chart.setOption(option);
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  // Lists that change with the clock alone (SLA at risk) also refresh every data-refresh seconds.
  function refreshByClock() {
    var list = document.getElementById("conv-list");
    var seconds = list ? parseInt(list.getAttribute("data-refresh") || "0", 10) : 0;
    if (seconds > 0) setInterval(refreshList, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    markSelected();
    connectLive();
    refreshByClock();
    drawCharts();
    var flash = document.getElementById("flash");
    if (flash) setTimeout(function () { flash.remove(); }, 4000);
  });
  document.addEventListener("htmx:load", function () {
    var flash = document.getElementById("flash");
    if (flash) setTimeout(function () { flash.remove(); }, 4000);
  });
})();
