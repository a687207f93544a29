// Alert rules on the site: the firing list, the rules table with its
// actions, and the rule form. Everything user-written (rule names, messages)
// is interpolated by htl as text, never as HTML.
import { html } from "htl";
import { apiUrl } from "./api.js";

const TOKEN_KEY = "logpipe.apiToken";

/** The API token kept for this browser tab (only needed when the API asks). */
export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

/** Remembers the API token for this tab. */
export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Sends a rule change; resolves with the JSON body or throws the API's error. */
export async function sendRule(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(apiUrl(path), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error ?? `HTTP ${res.status}`);
  return json;
}

const SEVERITY_CLASS = {
  critical: "sev-critical",
  warning: "sev-warning",
  info: "sev-info",
};

/** "error_rate > 15 % over 5 min" */
export function condition(rule, metrics = []) {
  const unit = metrics.find((m) => m.id === rule.metric)?.unit ?? "";
  const win = rule.metric === "minutes_since_last_batch"
    ? ""
    : ` over ${secs(rule.window_secs)}`;
  return `${rule.metric} ${rule.comparison} ${rule.threshold}${
    unit === "%" ? " %" : unit ? ` ${unit}` : ""
  }${win}`;
}

function secs(s) {
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

function num(v) {
  if (v == null) return "–";
  const a = Math.abs(v);
  return v.toLocaleString("en-US", {
    maximumFractionDigits: a >= 100 ? 0 : a >= 10 ? 1 : 2,
  });
}

function filterText(f) {
  const parts = Object.entries(f ?? {}).map(([k, v]) =>
    `${k}=${[].concat(v).join(",")}`
  );
  return parts.length ? parts.join(" ") : "all";
}

/** Cards of the alerts firing now (or a calm "nothing firing" line). */
export function firingList(alerts, metrics = []) {
  if (!alerts?.length) {
    return html`<p class="muted alerts-none" data-testid="no-firing">No alert is firing.</p>`;
  }
  return html`<div class="alerts-firing">${
    alerts.map((a) =>
      html`
        <div class="card alert-firing ${SEVERITY_CLASS[a.severity] ??
          ""}" data-rule=${a.id}>
          <h2>${a.name}</h2>
          <div><strong>${a.severity}</strong> · ${condition(a, metrics)}</div>
          <div>value <strong class="alert-value">${num(
            a.last_value,
          )}</strong> · firing since ${new Date(a.fired_at)
            .toLocaleTimeString()}</div>
        </div>
      `
    )
  }</div>`;
}

/** The rules table with enable/disable, edit and delete actions. */
export function rulesTable(rules, metrics, { onEdit, onChanged, onError }) {
  const act = (fn) => async (event) => {
    event.preventDefault();
    try {
      await fn();
      onChanged?.();
    } catch (error) {
      onError?.(error.message);
    }
  };
  // deno-fmt-ignore: htl needs each row template to start with <tr> (fmt would put a newline first, and the row would fall out of the table)
  return html`
    <table class="alert-rules">
      <thead>
        <tr>
          <th>state</th>
          <th>rule</th>
          <th>condition</th>
          <th>filter</th>
          <th>value</th>
          <th>severity</th>
          <th>channels</th>
          <th>enabled</th>
          <th></th>
        </tr>
      </thead>
      <tbody>${rules.map((r) =>
        html`<tr data-rule=${r.id} class=${r.state}>
            <td><span class="pill state-${r.state}">${r.enabled
              ? r.state
              : "off"}</span></td>
            <td
              title=${r.description}>${r.name}<div class="muted">${r.id} · ${r
                .source}</div></td>
            <td>${condition(r, metrics)}</td>
            <td>${filterText(r.filter)}</td>
            <td>${num(r.last_value)}${r.last_error
              ? html`<div class="muted">${r.last_error}</div>`
              : ""}</td>
            <td>${r.severity}</td>
            <td>${(r.channels ?? []).join(", ") || "record only"}</td>
            <td>${button("toggle", r.enabled ? "Disable" : "Enable", act(() =>
              sendRule("PATCH", `/api/alerts/rules/${r.id}`, {
                enabled: !r.enabled,
              })
            ))}</td>
            <td>${button("edit", "Edit", (e) => {
              e.preventDefault();
              onEdit?.(r);
            })}
                    ${button("delete", "Delete", act(
                      async () => {
                        if (confirm(`Delete rule "${r.name}"?`)) {
                          await sendRule("DELETE", `/api/alerts/rules/${r.id}`);
                        }
                      },
                    ))}</td>
          </tr>`
      )}</tbody>
    </table>
  `;
}

/**
 * A button whose click handler is attached with addEventListener: an
 * `onclick=${fn}` in an htl template becomes an inline handler, which the
 * site's Content-Security-Policy (script hashes, no 'unsafe-inline') blocks.
 */
function button(cls, label, onClick) {
  const b = html`<button type="button" class=${cls}>${label}</button>`;
  b.addEventListener("click", onClick);
  return b;
}

const FIELDS = [
  "id",
  "name",
  "description",
  "metric",
  "window_secs",
  "comparison",
  "threshold",
  "recover_threshold",
  "min_events",
  "for_secs",
  "severity",
  "renotify_secs",
  "cooldown_secs",
];

/**
 * The create/edit form. `rule` = the rule being edited (undefined = new).
 * Calls onSaved(rule) after the API accepted it; shows the API's 400 reason.
 */
export function ruleForm(metrics, rule, { onSaved }) {
  const editing = !!rule;
  const r = rule ?? {
    metric: metrics[0]?.id ?? "error_rate",
    comparison: ">",
    window_secs: 300,
    severity: "warning",
    channels: ["slack"],
    min_events: 0,
    for_secs: 0,
    renotify_secs: 3600,
    cooldown_secs: 300,
    filter: {},
  };
  const status = html`<div class="form-status" role="status"></div>`;
  const input = (name, type = "text", extra = {}) =>
    html`<label>${name.replaceAll("_", " ")}
    <input name=${name} type=${type} value=${r[name] ?? ""} step=${
      type === "number" ? "any" : null
    } ${extra}></label>`;
  const select = (name, values) =>
    html`<label>${name}
    <select name=${name}>${
      values.map((v) =>
        html`<option value=${v} selected=${r[name] === v}>${v}</option>`
      )
    }</select></label>`;
  const form = html`<form class="rule-form card" data-mode=${
    editing ? "edit" : "create"
  }>
    <h2>${editing ? `Edit rule ${r.id}` : "New rule"}</h2>
    <div class="grid grid-cols-4">
      ${
    editing
      ? html`<input type="hidden" name="id" value=${r.id}>`
      : input("id", "text", { placeholder: "from the name" })
  }
      ${input("name")}
      ${select("metric", metrics.map((m) => m.id))}
      ${select("comparison", [">", ">=", "<", "<="])}
      ${input("threshold", "number")}
      ${input("recover_threshold", "number", { placeholder: "= threshold" })}
      ${input("window_secs", "number")}
      ${input("min_events", "number")}
      ${input("for_secs", "number")}
      ${select("severity", ["info", "warning", "critical"])}
      ${input("renotify_secs", "number")}
      ${input("cooldown_secs", "number")}
      <label>filter (JSON)<input name="filter" value=${
    JSON.stringify(r.filter ?? {})
  }></label>
      <label>channels<span>
        <label class="inline"><input type="checkbox" name="ch-slack" checked=${
    (r.channels ?? []).includes("slack")
  }> Slack</label>
        <label class="inline"><input type="checkbox" name="ch-email" checked=${
    (r.channels ?? []).includes("email")
  }> e-mail</label></span></label>
      <label class="inline"><input type="checkbox" name="enabled" checked=${
    r.enabled !== false
  }> enabled</label>
    </div>
    ${input("description")}
    <button type="submit">${editing ? "Save" : "Create"}</button> ${status}
  </form>`;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const fd = new FormData(form);
    const body = {};
    for (const f of FIELDS) {
      const v = fd.get(f);
      if (v === null || v === "") continue;
      // Numbers go as numbers; anything else as typed, so the API names the field.
      body[f] = [
          "window_secs",
          "threshold",
          "recover_threshold",
          "min_events",
          "for_secs",
          "renotify_secs",
          "cooldown_secs",
        ].includes(f) && v.trim() !== "" && !Number.isNaN(Number(v))
        ? Number(v)
        : v;
    }
    try {
      body.filter = JSON.parse(fd.get("filter") || "{}");
    } catch {
      status.textContent = 'field "filter": not valid JSON';
      return;
    }
    body.channels = ["slack", "email"].filter((c) => fd.get(`ch-${c}`));
    body.enabled = fd.get("enabled") !== null;
    try {
      const res = editing
        ? await sendRule("PUT", `/api/alerts/rules/${r.id}`, body)
        : await sendRule("POST", "/api/alerts/rules", body);
      status.textContent = `saved (version ${res.rule.version})`;
      status.className = "form-status ok";
      onSaved?.(res.rule);
    } catch (error) {
      status.textContent = error.message;
      status.className = "form-status error";
    }
  };
  return form;
}
