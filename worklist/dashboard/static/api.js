// The worklist API as the dashboard uses it: a bearer token kept for this tab only.

const TOKEN_KEY = "worklist.dashboard.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
  }
}

function apiUrl(path, params) {
  // Relative to the page, so the dashboard works behind a path prefix too.
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(params || {})) {
    for (const item of [].concat(value)) {
      if (item !== undefined && item !== null && item !== "") {
        url.searchParams.append(name, item);
      }
    }
  }
  return url;
}

function decodeClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

export function currentSession() {
  // The stored token while it is still valid, with who it belongs to; else null.
  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (!stored) {
    return null;
  }
  const claims = decodeClaims(stored);
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
  return { token: stored, username: claims.sub || "", role: claims.role || "" };
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

async function detailOf(response) {
  try {
    const body = await response.json();
    return body.detail;
  } catch {
    return undefined;
  }
}

export async function signIn(username, password) {
  const body = new URLSearchParams({ username, password });
  const response = await fetch(apiUrl("api/v1/auth/token"), {
    method: "POST",
    body,
    headers: { Accept: "application/json" },
  });
  if (!response.ok) {
    throw new ApiError(response.status, await detailOf(response));
  }
  const issued = await response.json();
  sessionStorage.setItem(TOKEN_KEY, issued.access_token);
  return currentSession();
}

export async function getJson(path, params) {
  const session = currentSession();
  if (!session) {
    throw new ApiError(401, "Not signed in");
  }
  const response = await fetch(apiUrl(path, params), {
    headers: { Accept: "application/json", Authorization: `Bearer ${session.token}` },
  });
  if (!response.ok) {
    throw new ApiError(response.status, await detailOf(response));
  }
  return response.json();
}

export function studyHref(studyUid) {
  return apiUrl(`api/v1/studies/${encodeURIComponent(studyUid)}`).pathname;
}
