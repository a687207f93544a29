// Talking to the logpipe API (same origin as the site; see pipeline/api).

/** The API URL for `path` with `params` (arrays joined by commas, empties dropped). */
export function apiUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value == null || value === "") continue;
    if (Array.isArray(value)) {
      if (value.length) url.searchParams.set(key, value.join(","));
    } else url.searchParams.set(key, String(value));
  }
  return url;
}

/** GETs JSON; throws with the API's own error message on a non-2xx answer. */
export async function getJson(path, params, { signal } = {}) {
  const res = await fetch(apiUrl(path, params), {
    headers: { accept: "application/json" },
    signal,
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

/**
 * An async generator that yields the endpoint's JSON every `ms` milliseconds
 * (the first value at once). A failed request yields `{error}` and polling
 * goes on, so a restarted API recovers without a page reload.
 */
export async function* poll(path, params, ms = 3000) {
  for (;;) {
    let value;
    try {
      value = await getJson(path, params);
    } catch (error) {
      value = {
        error: error?.message ?? String(error),
        asOf: new Date().toISOString(),
      };
    }
    yield value;
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}
