// The inbox's live update: new alerts from the page's event stream are added to the top of
// the list and announced in the polite live region; erased alerts are taken out. Built with
// textContent only (never innerHTML), so nothing in an alert can become markup. Without
// JavaScript the inbox still works; it only needs a reload to show new alerts.
"use strict";
(function () {
  var list = document.getElementById("inbox");
  var status = document.getElementById("live-status");
  var empty = document.getElementById("inbox-empty");
  if (!list || !window.EventSource) { return; }
  var titles = JSON.parse(list.getAttribute("data-rule-titles") || "{}");

  function text(tag, content, className) {
    var node = document.createElement(tag);
    node.textContent = content;
    if (className) { node.className = className; }
    return node;
  }

  function when(iso) {
    var at = new Date(iso);
    if (isNaN(at.getTime())) { return iso; }
    var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return at.getUTCDate() + " " + months[at.getUTCMonth()] + " " + at.getUTCFullYear() + ", " +
      pad(at.getUTCHours()) + ":" + pad(at.getUTCMinutes()) + " UTC";
  }

  function present(id) {
    return Array.prototype.some.call(list.children, function (item) {
      return item.getAttribute("data-alert-id") === id;
    });
  }

  function itemFor(alert) {
    var severity = String(alert.severity || "").toLowerCase();
    var item = document.createElement("li");
    item.className = "alert is-new severity-" + severity;
    item.setAttribute("data-alert-id", alert.alert_id);
    var heading = document.createElement("h2");
    var link = text("a", titles[alert.rule] || alert.rule);
    link.href = "/practitioner/alerts/" + encodeURIComponent(alert.alert_id);
    heading.appendChild(link);
    item.appendChild(heading);
    var meta = document.createElement("p");
    meta.className = "meta";
    meta.appendChild(text("span", "Severity: " + severity, "severity"));
    meta.appendChild(document.createTextNode(" · "));
    var rule = text("span", "Rule: ", "rule");
    rule.appendChild(text("code", alert.rule));
    meta.appendChild(rule);
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(text("span", "Status: " + (alert.status || "open"), "status"));
    meta.appendChild(document.createTextNode(" · "));
    var raised = text("span", "Raised ", "raised");
    var time = text("time", when(alert.raised_at));
    time.setAttribute("datetime", alert.raised_at);
    raised.appendChild(time);
    meta.appendChild(raised);
    item.appendChild(meta);
    var refs = alert.source_refs || [];
    if (refs.length) {
      var mine = text("p", "Your records: ", "refs");
      refs.forEach(function (ref, n) {
        if (n) { mine.appendChild(document.createTextNode(", ")); }
        mine.appendChild(text("code", ref));
      });
      item.appendChild(mine);
    }
    var shown = (alert.events || []).length;
    var events = shown + " event" + (shown === 1 ? "" : "s") + " shown";
    if (alert.events_withheld) {
      events += ", " + alert.events_withheld + " withheld (not shared with your organisation)";
    }
    item.appendChild(text("p", events, "events"));
    return item;
  }

  var stream = new EventSource(list.getAttribute("data-stream"));
  stream.addEventListener("alert", function (message) {
    var alert = JSON.parse(message.data);
    if (!alert.alert_id || present(alert.alert_id)) { return; }
    list.insertBefore(itemFor(alert), list.firstChild);
    if (empty) { empty.hidden = true; }
    status.textContent = "New alert: " + (titles[alert.rule] || alert.rule) + " (severity " +
      String(alert.severity).toLowerCase() + ")";
  });
  stream.addEventListener("erased", function (message) {
    var gone = JSON.parse(message.data).alert_id;
    Array.prototype.slice.call(list.children).forEach(function (item) {
      if (item.getAttribute("data-alert-id") === gone) { list.removeChild(item); }
    });
    status.textContent = "An alert was withdrawn with its lawful basis.";
  });
})();
