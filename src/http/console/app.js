// The approver console: sign-in, navigation (hash routes), the live event
// stream and the decisions. Views (views.js) draw; this module decides
// what to fetch and when.

import { Api, ApiError, readEvents } from './api.js';
import { approval as drawApprovalView } from './approval.js';
import { byId, fill, h } from './dom.js';
import { assetsSummary } from './format.js';
import * as keys from './keys.js';
import * as views from './views.js';

/** Where the token is kept: sessionStorage, so this tab only, gone when it closes. */
const TOKEN = 'warden.token';
/** Reconnection backoff after the stream drops, doubling up to the last. */
const RETRY_MS = [500, 1000, 2000, 5000, 15000];
/** How often the pending list is listed again while live, in case an event never came. */
const RECONCILE_MS = 60_000;

const state = {
  api: null,
  pending: new Map(),
  pendingMore: false,
  live: false,
  policyNames: new Map(),
  policyNamesLoaded: Promise.resolve(),
  stream: null,
  // The browser's network came and went: `drop` ends the current stream at once (a dead
  // connection may otherwise linger until the keep-alive watchdog), `wake` ends the wait
  // before the next attempt.
  drop: () => {},
  wake: () => {},
  screen: null,
  shown: null, // the approval on screen, if any
  changedPolicy: null, // the policy as it is now, when the approval on screen would update or archive it
  messages: new Map(), // screen -> message to show once
  busy: false,
  ed25519: null,
  navigation: 0, // counts navigations: a slow answer for a screen left since is dropped
};

const main = byId('main');

function route() {
  const [path, query] = (location.hash.replace(/^#/, '') || '/pending').split('?');
  const params = new URLSearchParams(query || '');
  return { path, params };
}

function navigate(hash) {
  if (location.hash === hash) show();
  else location.hash = hash;
}

/** Draws the screen of the current hash; `focus` moves focus to its heading (a navigation, not a refresh). */
async function show(focus = true) {
  if (!state.api) {
    drawSignIn();
    if (focus) byId('screen-title')?.focus();
    return;
  }
  const { path, params } = route();
  const navigation = ++state.navigation;
  const stale = () => navigation !== state.navigation;
  const message = state.messages.get(path) || null;
  state.messages.delete(path);
  state.shown = null;
  markNavigation(path);
  try {
    if (path === '/pending') {
      state.screen = 'pending';
      drawPending(message);
    } else if (path.startsWith('/approvals/')) {
      state.screen = 'approval';
      const id = decodeURIComponent(path.slice('/approvals/'.length));
      fill(main, h('p', { role: 'status' }, `Loading ${id}…`));
      const approval = await state.api.get(`/v2/policy-approvals/${encodeURIComponent(id)}`);
      const changed = await changedPolicy(approval);
      await state.policyNamesLoaded;
      if (stale()) return;
      state.shown = approval;
      state.changedPolicy = changed;
      await drawApproval(message);
    } else if (path === '/policies') {
      state.screen = 'policies';
      fill(main, h('p', { role: 'status' }, 'Loading the policies…'));
      await drawPolicies(params.get('status') || 'Active', message, stale);
    } else if (path === '/activities') {
      state.screen = 'activities';
      fill(main, h('p', { role: 'status' }, 'Loading the activity trail…'));
      await drawActivities(params, message, stale);
    } else if (path === '/keys') {
      state.screen = 'keys';
      await drawKeys(message, stale);
    } else {
      navigate('#/pending');
      return;
    }
  } catch (error) {
    if (stale()) return;
    if (!handleSignedOut(error)) fill(main, h('h1', { tabindex: '-1', id: 'screen-title' }, 'Could not load this'),
      h('p', { class: 'notice notice-error', role: 'alert' }, explainRead(error)),
      h('p', {}, h('a', { href: '#/pending' }, 'Back to the pending approvals')));
  }
  if (focus && !stale()) byId('screen-title')?.focus();
}

function markNavigation(path) {
  for (const link of document.querySelectorAll('#nav a')) {
    const target = link.getAttribute('href').slice(1);
    const current = path === target || (target === '/pending' && path.startsWith('/approvals/'));
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** Redraws without moving the keyboard focus away from where it was. */
function redraw(draw) {
  const key = document.activeElement?.dataset?.focusKey;
  draw();
  if (key) main.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

function drawSignIn(message) {
  byId('nav').hidden = true;
  byId('session').hidden = true;
  views.signIn(main, { message, insecure: !window.isSecureContext, onSubmit: signIn });
}

function drawPending(message) {
  views.pending(main, { approvals: [...state.pending.values()], more: state.pendingMore,
    policyNames: state.policyNames, live: state.live, message });
}

/** The policy that a pending policy change would update or archive, as it is now (null if none, or unreadable). */
async function changedPolicy(approval) {
  const change = approval.activity.changeRequest;
  if (!change || change.operationKind === 'Create' || approval.status !== 'Pending') return null;
  return state.api.get(`/v2/policies/${encodeURIComponent(change.entityId)}`).catch(() => null);
}

async function drawApproval(message) {
  const shown = state.shown;
  const key = await keys.currentKey().catch(() => null);
  if (state.screen !== 'approval' || state.shown !== shown) return;
  drawApprovalView(main, { approval: shown, current: state.changedPolicy, policyNames: state.policyNames, key,
    message, busy: state.busy, onDecide: decide });
}

async function drawPolicies(status, message, stale) {
  const query = status === 'All' ? '' : `?status=${encodeURIComponent(status)}`;
  const page = await state.api.get(`/v2/policies${query}`);
  if (stale()) return;
  const items = page.items;
  let next = page.nextPageToken;
  const draw = (note) => views.policies(main, { items, next, status, message: note, onMore: more,
    onFilter: (chosen) => navigate(`#/policies?status=${encodeURIComponent(chosen)}`) });
  async function more() {
    const separator = query ? '&' : '?';
    const token = `paginationToken=${encodeURIComponent(next)}`;
    const following = await state.api.get(`/v2/policies${query}${separator}${token}`);
    items.push(...following.items);
    next = following.nextPageToken;
    draw(null);
    byId('more')?.focus();
  }
  draw(message);
}

async function drawActivities(params, message, stale) {
  const filters = { walletId: params.get('walletId') || '', status: params.get('status') || '' };
  const onFilter = (chosen) => {
    const query = new URLSearchParams(Object.entries(chosen).filter(([, value]) => value)).toString();
    navigate(`#/activities${query ? `?${query}` : ''}`);
  };
  const only = params.get('id');
  if (only) {
    const activity = await state.api.get(`/v2/activities/${encodeURIComponent(only)}`);
    if (stale()) return;
    views.activities(main, { items: [activity], next: null, filters, message, onFilter, onMore: null });
    return;
  }
  const query = new URLSearchParams(Object.entries(filters).filter(([, value]) => value)).toString();
  const page = await state.api.get(`/v2/activities${query ? `?${query}` : ''}`);
  if (stale()) return;
  const items = page.items;
  let next = page.nextPageToken;
  const draw = (note) => views.activities(main, { items, next, filters, message: note, onFilter, onMore: more });
  async function more() {
    const token = `paginationToken=${encodeURIComponent(next)}`;
    const following = await state.api.get(`/v2/activities?${query ? `${query}&` : ''}${token}`);
    items.push(...following.items);
    next = following.nextPageToken;
    draw(null);
    byId('more')?.focus();
  }
  draw(message);
}

async function drawKeys(message, stale = () => false) {
  if (state.ed25519 === null) state.ed25519 = await keys.supportsEd25519();
  const key = await keys.currentKey().catch(() => null);
  if (stale()) return;
  views.keys(main, { key, ed25519: state.ed25519, message, busy: state.busy,
    onGenerate: (algorithm, credId) => keyAction(() => keys.generateKey(algorithm, credId), credId,
      `A new ${algorithm} key was made in this browser. Register it (below) before you decide.`),
    onImport: (pem, credId) => keyAction(() => keys.importKey(pem, credId), credId,
      'The key was imported and is kept non-extractable.'),
    onForget: () => keyAction(async () => keys.forgetKey(), 'x', 'The key was removed from this browser.') });
}

const CREDENTIAL_ID = /^[A-Za-z0-9._:-]{1,256}$/;

async function keyAction(work, credId, done) {
  if (!window.isSecureContext || !crypto.subtle) {
    state.messages.set('/keys', { kind: 'error', text: 'This page is not in a secure context (HTTPS or localhost): '
      + 'the browser offers no WebCrypto here.' });
    return show(false);
  }
  if (!CREDENTIAL_ID.test(credId)) {
    state.messages.set('/keys', { kind: 'error',
      text: 'The credential id must be 1 to 256 letters, digits or . _ : -' });
    return show(false);
  }
  state.busy = true;
  try {
    await work();
    state.messages.set('/keys', { kind: 'info', text: done });
  } catch (error) {
    state.messages.set('/keys', { kind: 'error', text: `That did not work: ${error.message}` });
  } finally {
    state.busy = false;
  }
  await show(false);
  byId('screen-title')?.focus();
}

/** Approve or deny the approval on screen, signed with the browser's key when there is one. */
async function decide(value, reason) {
  const approval = state.shown;
  if (!approval || state.busy) return;
  const key = await keys.currentKey().catch(() => null);
  const path = `/v2/policy-approvals/${encodeURIComponent(approval.id)}/decisions`;
  const body = JSON.stringify({ value, reason });
  state.busy = true;
  for (const button of main.querySelectorAll('#approve, #deny')) button.disabled = true;
  announce(key ? 'Signing and sending your decision…' : 'Sending your decision…');
  let message;
  try {
    const updated = key ? await state.api.signedPost(path, body, keys.signerOf(key)) : await state.api.post(path, body);
    if (state.shown?.id === updated.id) state.shown = updated;
    if (updated.status !== 'Pending') state.pending.delete(updated.id);
    else state.pending.set(updated.id, updated);
    const verb = value === 'Approved' ? 'approval' : 'denial';
    message = { kind: 'info', text: `Your ${verb} was recorded${key ? `, signed with ${key.credId}` : ''}. `
      + outcome(updated) };
  } catch (error) {
    if (handleSignedOut(error)) return;
    message = { kind: 'error', text: explainDecision(error, key) };
  } finally {
    state.busy = false;
  }
  if (state.screen === 'approval' && state.shown?.id === approval.id) {
    // The buttons were redrawn: the keyboard continues from the outcome's notice.
    await drawApproval(message);
    byId('notice')?.focus();
  }
}

/** Where an approval stands after a decision, in words. */
function outcome(approval) {
  if (approval.status !== 'Pending') return `The approval is now ${approval.status}.`;
  const missing = approval.approvalGroups.filter((group) => group.approvedBy.length < group.quorum)
    .map((group) => `${group.name} needs ${group.quorum - group.approvedBy.length} more`);
  return `The approval is still Pending${missing.length ? `: ${missing.join(', ')}` : ''}.`;
}

/** A decision's failure in words. */
function explainDecision(error, key) {
  if (!(error instanceof ApiError)) {
    return `The decision could not be sent: ${error.message}. Check the connection and try again.`;
  }
  const server = error.detail ? ` (The server said: ${error.detail}.)` : '';
  if (error.step === 'unregistered' || (error.step === 'init' && error.status === 403)) {
    return `Your key is not registered on this server yet, so it cannot sign.${server} `
      + 'Register it (see “Your key”) and have the server reload its config.';
  }
  if (error.step === 'sign' && error.status === 401) {
    return `Signature refused: the server did not accept the signature of the key in this browser `
      + `(${key?.credId}); it is not the key registered under that id, or the challenge expired.${server}`;
  }
  switch (error.status) {
    case 401:
      if (/x-dfns-useraction/i.test(error.detail) && !key) {
        return 'Signature required: this server wants your decisions signed with your key. '
          + `Set one up in “Your key”.${server}`;
      }
      if (/x-dfns-useraction/i.test(error.detail)) {
        return `Signature refused: the signed action was not accepted.${server}`;
      }
      return `Your token was refused: sign in again.${server}`;
    case 403:
      return 'You are not eligible to decide this approval: you are in none of its approval groups, or you started '
        + `this activity (an initiator may only deny it).${server}`;
    case 404:
      return `This approval does not exist.${server}`;
    case 409:
      return `This approval was already decided: you decided it before, or it is no longer pending.${server}`;
    case 429:
      return `Too many signatures in progress: wait a few minutes and try again.${server}`;
    case 400:
      return `The server refused the decision as invalid.${server}`;
    default:
      return `The server could not record the decision (HTTP ${error.status}).${server}`;
  }
}

function explainRead(error) {
  if (error instanceof ApiError) {
    if (error.status === 404) return `It does not exist. (${error.detail})`;
    return `The server answered HTTP ${error.status}: ${error.detail}`;
  }
  return `The server could not be reached: ${error.message}`;
}

/** A 401 on a read means the token is no longer accepted: back to sign-in. */
function handleSignedOut(error) {
  if (error instanceof ApiError && error.status === 401 && !error.step) {
    signOut({ kind: 'error', text: 'Your token is no longer accepted by the server. Sign in again.' });
    return true;
  }
  return false;
}

async function signIn(token) {
  if (!token) return;
  const api = new Api(token);
  try {
    await api.get('/v2/policy-approvals?status=Pending&limit=1');
  } catch (error) {
    const text = error instanceof ApiError && error.status === 401
      ? 'This server does not know that token.' : `Could not sign in: ${explainRead(error)}`;
    drawSignIn({ kind: 'error', text });
    byId('token')?.focus();
    return;
  }
  sessionStorage.setItem(TOKEN, token);
  start(api);
}

function start(api) {
  state.api = api;
  byId('nav').hidden = false;
  byId('session').hidden = false;
  state.policyNamesLoaded = loadPolicyNames();
  connect();
  show();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN);
  state.stream?.abort();
  state.stream = null;
  state.api = null;
  state.pending.clear();
  state.live = false;
  setLive(false);
  if (location.hash && location.hash !== '#/pending') history.replaceState(null, '', '#/pending');
  drawSignIn(message);
  byId('screen-title')?.focus();
}

async function loadPolicyNames() {
  try {
    const { items } = await state.api.listAll('/v2/policies');
    state.policyNames = new Map(items.map((policy) => [policy.id, policy.name]));
    if (state.screen === 'pending') redraw(() => drawPending());
  } catch (error) {
    handleSignedOut(error);
  }
}

function setLive(live) {
  state.live = live;
  const indicator = byId('live');
  indicator.textContent = live ? 'Live' : 'Reconnecting…';
  indicator.classList.toggle('offline', !live);
}

function updateCount() {
  byId('pending-count').textContent = String(state.pending.size);
}

/**
 * Keeps the pending list live: follows `GET /v2/events`, and re-lists the
 * pending approvals whenever the stream (re)opens or the server says this
 * client lost events, since events missed meanwhile never come back; and
 * every RECONCILE_MS as well (a standby's stream carries no events).
 */
async function connect() {
  const controller = new AbortController();
  state.stream = controller;
  let attempt = 0;
  while (!controller.signal.aborted) {
    // What the events said while a listing was under way: the listing may predate them.
    let meanwhile = null;
    let listing = null;
    const relist = () => {
      const seen = { added: new Map(), resolved: new Set() };
      meanwhile = seen;
      listing = state.api.listAll('/v2/policy-approvals?status=Pending').then(({ items, more }) => {
        if (controller.signal.aborted || meanwhile !== seen) return;
        const listed = items.filter((item) => !seen.resolved.has(item.id)).map((item) => [item.id, item]);
        const added = [...seen.added].filter(([id]) => !seen.resolved.has(id));
        state.pending = new Map([...listed, ...added]);
        state.pendingMore = more;
        meanwhile = null;
        pendingChanged();
      }).catch((error) => handleSignedOut(error));
    };
    let reconcile = null;
    const attemptController = new AbortController();
    const stop = () => attemptController.abort();
    controller.signal.addEventListener('abort', stop, { once: true });
    state.drop = stop;
    try {
      await readEvents(state.api, {
        signal: attemptController.signal,
        onOpen: () => {
          attempt = 0;
          setLive(true);
          relist();
          reconcile = setInterval(relist, RECONCILE_MS);
        },
        onLost: relist,
        onEvent: (kind, event) => {
          const approval = event.data?.approval;
          if (meanwhile && approval && kind === 'policy.approval.pending') meanwhile.added.set(approval.id, approval);
          if (meanwhile && approval && kind === 'policy.approval.resolved') meanwhile.resolved.add(approval.id);
          onEvent(kind, event);
        },
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      if (handleSignedOut(error)) return;
    } finally {
      clearInterval(reconcile);
      controller.signal.removeEventListener('abort', stop);
    }
    await listing;
    if (controller.signal.aborted) return;
    setLive(false);
    if (state.screen === 'pending') redraw(() => drawPending());
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]);
      state.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    attempt += 1;
  }
}

function pendingChanged() {
  updateCount();
  if (state.screen === 'pending') redraw(() => drawPending());
}

/** Tells screen-reader users what changed without moving their focus. */
function announce(text) {
  byId('announce').textContent = text;
}

function onEvent(kind, event) {
  const approval = event.data?.approval;
  if (kind === 'policy.approval.pending' && approval?.status === 'Pending') {
    state.pending.set(approval.id, approval);
    pendingChanged();
    const { moved } = assetsSummary(approval.activity.transaction);
    announce(`New approval pending: ${approval.activity.changeRequest ? 'a policy change' : moved}, `
      + `by ${approval.initiatorId}.`);
  } else if (kind === 'policy.approval.resolved' && approval) {
    const known = state.pending.delete(approval.id);
    pendingChanged();
    if (known) announce(`Approval ${approval.id} is now ${approval.status}.`);
    // Redrawn only when this is news: the approver's own decision already drew its outcome.
    if (state.screen === 'approval' && state.shown?.id === approval.id && state.shown.status !== approval.status) {
      state.shown = approval;
      drawApproval({ kind: 'info', text: `This approval is now ${approval.status}.` });
    }
  } else if (kind === 'activity.evaluated' && state.screen === 'pending') {
    // Nothing to do: an activity that needs approval also sends policy.approval.pending.
  }
}

function tick() {
  views.refreshTimers(main);
}

function boot() {
  byId('sign-out').addEventListener('click', () => signOut({ kind: 'info', text: 'Signed out.' }));
  window.addEventListener('hashchange', () => show());
  window.addEventListener('offline', () => state.drop());
  window.addEventListener('online', () => state.wake());
  setInterval(tick, 1000);
  const token = sessionStorage.getItem(TOKEN);
  if (token) start(new Api(token));
  else show();
}

boot();
