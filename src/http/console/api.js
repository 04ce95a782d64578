// The API as the console uses it: reads with the bearer token, the signed
// user-action flow for changes, and the live event stream. Only this
// origin is ever called (the page's Content-Security-Policy says so too).

/** An answer that was not 2xx: its status and the problem document's detail. */
export class ApiError extends Error {
  constructor(status, detail, path) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail || '';
    this.path = path;
  }
}

/** Largest number of pages one list reads (1000 items each): the page stays bounded. */
const MAX_PAGES = 10;

export class Api {
  constructor(token) {
    this.token = token;
  }

  headers(extra = {}) {
    return { authorization: `Bearer ${this.token}`, ...extra };
  }

  /** GET `path`; the JSON answer, or throws an ApiError. */
  async get(path, signal) {
    const response = await fetch(path, { headers: this.headers(), cache: 'no-store', signal });
    return answer(response, path);
  }

  /** POST `bodyText` (already JSON text) to `path`; the JSON answer, or throws. */
  async post(path, bodyText, extraHeaders = {}) {
    const response = await fetch(path, {
      method: 'POST',
      headers: this.headers({ 'content-type': 'application/json', ...extraHeaders }),
      body: bodyText,
      cache: 'no-store',
    });
    return answer(response, path);
  }

  /** Every item of a list route (at most MAX_PAGES pages); `more` tells whether some were left. */
  async listAll(path) {
    const items = [];
    let token = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const separator = path.includes('?') ? '&' : '?';
      const url = token ? `${path}${separator}limit=1000&paginationToken=${encodeURIComponent(token)}`
        : `${path}${separator}limit=1000`;
      const answerPage = await this.get(url);
      items.push(...answerPage.items);
      token = answerPage.nextPageToken;
      if (!token) return { items, more: false };
    }
    return { items, more: true };
  }

  /**
   * Sends a change signed with `signer` ({credId, sign(bytes) -> signature bytes})
   * through the user-action flow of Dfns' SDK: a challenge bound to this exact
   * method, path and body, the signed clientData for a token, then the change
   * with `X-DFNS-USERACTION`. Throws an ApiError whose `step` says which call failed.
   */
  async signedPost(path, bodyText, signer) {
    const challenge = await step('init', () => this.post('/auth/action/init', JSON.stringify({
      userActionPayload: bodyText,
      userActionHttpMethod: 'POST',
      userActionHttpPath: path,
      userActionServerKind: 'Api',
    })));
    const allowed = (challenge.allowCredentials?.key || []).map((credential) => credential.id);
    if (!allowed.includes(signer.credId)) {
      const error = new ApiError(401, `the key in this browser is registered as \`${signer.credId}\`, `
        + `but the server knows only ${allowed.map((id) => `\`${id}\``).join(', ') || 'no key'} for you`, path);
      error.step = 'unregistered';
      throw error;
    }
    const clientData = new TextEncoder().encode(JSON.stringify({ type: 'key.get', challenge: challenge.challenge }));
    const signature = await signer.sign(clientData);
    const token = await step('sign', () => this.post('/auth/action', JSON.stringify({
      challengeIdentifier: challenge.challengeIdentifier,
      firstFactor: {
        kind: 'Key',
        credentialAssertion: {
          credId: signer.credId, clientData: base64url(clientData), signature: base64url(signature),
        },
      },
    })));
    return step('change', () => this.post(path, bodyText, { 'x-dfns-useraction': token.userAction }));
  }
}

async function step(name, call) {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiError) error.step = name;
    throw error;
  }
}

async function answer(response, path) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, body?.detail || body?.message || text.slice(0, 200), path);
  }
  return body;
}

/** base64url without padding, as the user-action flow wants it. */
export function base64url(bytes) {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Longest SSE frame the console accepts; the server's are far smaller. */
const MAX_FRAME = 4 * 1024 * 1024;
/** Without a byte for this long (the server says `: keep-alive` every 15 s), the stream is taken as dead. */
const SILENCE_MS = 45_000;

/**
 * Reads `GET /v2/events` with fetch (EventSource cannot send an
 * Authorization header) until `signal` aborts or the stream ends.
 * Calls `onOpen()` once the server accepted, `onEvent(kind, data)` per
 * event and `onLost()` when the server says this client lost events.
 * Resolves when the stream ends; throws an ApiError on a refusal.
 */
export async function readEvents(api, { signal, onOpen, onEvent, onLost }) {
  const watchdog = new AbortController();
  const abort = () => watchdog.abort();
  signal.addEventListener('abort', abort, { once: true });
  let silence = setTimeout(abort, SILENCE_MS);
  try {
    const response = await fetch('/v2/events', {
      headers: api.headers({ accept: 'text/event-stream' }), cache: 'no-store', signal: watchdog.signal,
    });
    if (!response.ok) await answer(response, '/v2/events');
    onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      clearTimeout(silence);
      silence = setTimeout(abort, SILENCE_MS);
      buffered += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const frame = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        dispatch(frame, onEvent, onLost);
      }
      if (buffered.length > MAX_FRAME) throw new Error('an event larger than the console accepts');
    }
  } finally {
    clearTimeout(silence);
    signal.removeEventListener('abort', abort);
  }
}

function dispatch(frame, onEvent, onLost) {
  let kind = 'message';
  const data = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) {
      if (line.includes('events lost')) onLost();
    } else if (line.startsWith('event:')) {
      kind = line.slice(6).trim();
    } else if (line.startsWith('data:')) {
      data.push(line.slice(5).replace(/^ /, ''));
    }
  }
  if (data.length === 0) return;
  try {
    onEvent(kind, JSON.parse(data.join('\n')));
  } catch (error) {
    console.warn('an event the console could not read', error);
  }
}
