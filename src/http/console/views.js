// What each screen shows. Views only build elements from data and call the
// handlers they are given; app.js owns state, the API and navigation.

import { fill, h } from './dom.js';
import { assetsSummary, dateTime, duration, timeLeft } from './format.js';

/** A heading that takes focus when its screen opens (keyboard and screen readers land on it). */
export function title(text) {
  return h('h1', { tabindex: '-1', id: 'screen-title' }, text);
}

export function badge(status) {
  return h('span', { class: `badge badge-${String(status).toLowerCase()}` }, status);
}

export function field(label, ...value) {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

function code(text) {
  return h('code', {}, text);
}

/** A `time-left` element that app.js refreshes every second. */
export function expiry(approval) {
  if (!approval.expirationDate) return h('span', { class: 'muted' }, 'never expires');
  if (approval.status !== 'Pending') return h('span', {}, `expiry ${dateTime(approval.expirationDate)}`);
  const element = h('span', { class: 'time-left', 'data-expires': approval.expirationDate,
    title: `expires ${dateTime(approval.expirationDate)}` });
  refreshTimer(element);
  return element;
}

/** Refreshes every `time-left` under `root`. */
export function refreshTimers(root) {
  for (const element of root.querySelectorAll('.time-left')) refreshTimer(element);
}

function refreshTimer(element) {
  const left = timeLeft(element.dataset.expires);
  element.textContent = left ? `Expires in ${left.replace(/ left$/, '')}` : 'Expired (waiting for the server)';
  element.classList.toggle('urgent', !left || new Date(element.dataset.expires).getTime() - Date.now() < 60_000);
}

export function notice(message) {
  if (!message) return null;
  return h('p', { class: `notice notice-${message.kind}`, id: 'notice', tabindex: '-1',
    role: message.kind === 'error' ? 'alert' : 'status' }, message.text);
}

/** The sign-in screen. */
export function signIn(main, { onSubmit, message, insecure }) {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true,
    spellcheck: 'false' });
  const form = h('form', { class: 'panel', onsubmit: (event) => {
    event.preventDefault();
    onSubmit(input.value.trim());
  } },
  h('label', { for: 'token' }, 'Bearer token'),
  input,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  fill(main, title('Sign in'),
    h('p', {}, 'Paste the bearer token your administrator gave you. It is kept in this browser tab only '
      + '(closing the tab forgets it) and sent to this server only.'),
    insecure ? h('p', { class: 'notice notice-error', role: 'alert' }, 'This page is not in a secure context '
      + '(HTTPS or localhost): the browser will not sign with your key here. Serve Warden with [tls].') : null,
    notice(message),
    form);
}

function groupProgress(group) {
  return `${group.name}: ${group.approvedBy.length} of ${group.quorum}`;
}

/** The live list of pending approvals. */
export function pending(main, { approvals, more, policyNames, live, message }) {
  // Soonest to expire first; those that never expire last.
  const expires = (approval) => approval.expirationDate || '\uffff';
  const sorted = [...approvals].sort((a, b) => expires(a).localeCompare(expires(b))
    || a.dateCreated.localeCompare(b.dateCreated));
  const items = sorted.map((approval) => {
    const activity = approval.activity;
    const { moved, usd } = assetsSummary(activity.transaction);
    const triggered = approval.policyEvaluations.filter((evaluation) => evaluation.triggered);
    const what = activity.changeRequest
      ? `Policy change: ${activity.changeRequest.operationKind} ${activity.changeRequest.entityId}`
      : moved;
    return h('li', {},
      h('a', { class: 'card', href: `#/approvals/${encodeURIComponent(approval.id)}`, 'data-approval-id': approval.id,
        'data-focus-key': `approval:${approval.id}` },
      h('span', { class: 'card-head' }, h('strong', {}, what), usd ? h('span', { class: 'usd' }, usd) : null),
      h('span', { class: 'card-line' }, activity.wallet ? `Wallet ${activity.wallet.id}` : activity.kind,
        activity.wallet?.tags?.length ? ` · ${activity.wallet.tags.join(', ')}` : '',
        ` · by ${approval.initiatorId}`),
      activity.transaction?.recipient
        ? h('span', { class: 'card-line mono' }, `To ${activity.transaction.recipient}`) : null,
      h('span', { class: 'card-line' }, triggered.map((e) => policyNames.get(e.policyId) || e.policyId).join(', ')),
      h('span', { class: 'card-line' }, approval.approvalGroups.map(groupProgress).join(' · ')),
      h('span', { class: 'card-line' }, expiry(approval))));
  });
  fill(main, title(`Pending approvals (${approvals.length})`),
    h('p', { class: 'muted' }, live ? 'New approvals appear here as they are created; decided and expired ones leave.'
      : 'Reconnecting to the server: the list may be out of date.'),
    notice(message),
    items.length ? h('ul', { class: 'cards', id: 'pending-list' }, items)
      : h('p', { class: 'empty', id: 'pending-empty' }, 'Nothing waits for a decision.'),
    more ? h('p', { class: 'muted' }, 'Only the oldest 10 000 pending approvals are shown.') : null);
}

function pager(next, onMore) {
  return next ? h('p', {}, h('button', { type: 'button', id: 'more', onclick: onMore }, 'Load more')) : null;
}

function describeRule(rule) {
  const configuration = rule.configuration || {};
  const text = (value) => (typeof value === 'object' ? JSON.stringify(value) : value);
  const parts = Object.entries(configuration).map(([name, value]) => `${name} ${text(value)}`);
  return `${rule.kind}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

function describeApprovers(group) {
  const listed = group.approvers?.userId?.in;
  return listed ? listed.join(', ') : 'any user';
}

/** The policies, read-only. */
export function policies(main, { items, next, status, message, onFilter, onMore }) {
  const select = h('select', { id: 'policy-status', name: 'status' },
    ['Active', 'Archived', 'All'].map((value) => h('option', { value, selected: value === status }, value)));
  fill(main, title('Policies'),
    h('form', { class: 'filters', onsubmit: (event) => {
      event.preventDefault();
      onFilter(select.value);
    } }, h('label', { for: 'policy-status' }, 'Status'), select, h('button', { type: 'submit' }, 'Show')),
    notice(message),
    items.length ? h('ul', { class: 'cards', id: 'policy-list' }, items.map((policy) => h('li', { class: 'card' },
      h('span', { class: 'card-head' }, h('strong', {}, policy.name), badge(policy.status)),
      h('dl', { class: 'facts' },
        field('Id', policy.id),
        field('Activity kind', policy.activityKind),
        field('Rule', describeRule(policy.rule)),
        field('Action', policy.action.kind, policy.action.autoRejectTimeout
          ? ` · expires after ${duration(policy.action.autoRejectTimeout)}` : ''),
        ...(policy.action.approvalGroups || []).flatMap((group) => field(`Group ${group.name}`,
          `quorum ${group.quorum} of ${describeApprovers(group)}`)),
        policy.filters && Object.keys(policy.filters).length
          ? field('Filters', h('code', {}, JSON.stringify(policy.filters))) : null,
        policy.priority !== undefined ? field('Priority', String(policy.priority)) : null,
        field('Updated', dateTime(policy.dateUpdated))))))
      : h('p', { class: 'empty' }, 'No policy.'),
    pager(next, onMore));
}

const ACTIVITY_STATUSES = ['Allowed', 'Blocked', 'PendingApproval', 'Approved', 'Denied', 'Expired'];

function trailSummary(count, next, filters) {
  const conditions = [
    filters.walletId ? `wallet ${filters.walletId}` : null,
    filters.status ? `status ${filters.status}` : null,
  ].filter(Boolean);
  const shown = `${count}${next ? '+' : ''} ${count === 1 && !next ? 'activity' : 'activities'}, oldest first`;
  return conditions.length ? `${shown}, with ${conditions.join(' and ')}` : shown;
}

/** The activity trail, read-only, with its filters. */
export function activities(main, { items, next, filters, message, onFilter, onMore }) {
  const wallet = h('input', { id: 'filter-wallet', name: 'walletId', value: filters.walletId || '',
    autocomplete: 'off' });
  const status = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'any'),
    ACTIVITY_STATUSES.map((value) => h('option', { value, selected: value === filters.status }, value)));
  fill(main, title('Activity trail'),
    h('form', { class: 'filters', onsubmit: (event) => {
      event.preventDefault();
      onFilter({ walletId: wallet.value.trim(), status: status.value });
    } },
    h('label', { for: 'filter-wallet' }, 'Wallet id'), wallet,
    h('label', { for: 'filter-status' }, 'Status'), status,
    h('button', { type: 'submit' }, 'Filter')),
    h('p', { class: 'muted', id: 'trail-summary', role: 'status' }, trailSummary(items.length, next, filters)),
    notice(message),
    items.length ? h('ul', { class: 'cards', id: 'activity-list' }, items.map((activity) => {
      const request = activity.activity;
      const { moved, usd } = assetsSummary(request.transaction);
      const triggered = activity.policyEvaluations.filter((evaluation) => evaluation.triggered);
      return h('li', { class: 'card', 'data-activity-id': activity.id },
        h('span', { class: 'card-head' }, h('strong', {}, request.transaction ? moved : request.kind),
          badge(activity.status)),
        h('span', { class: 'card-line' }, `${activity.id} · ${dateTime(activity.dateCreated)}`),
        h('span', { class: 'card-line' }, request.wallet ? `Wallet ${request.wallet.id}` : request.kind,
          request.initiator ? ` · by ${request.initiator.id}` : '', usd ? ` · ${usd}` : ''),
        request.transaction?.recipient
          ? h('span', { class: 'card-line mono' }, `To ${request.transaction.recipient}`) : null,
        triggered.map((evaluation) => h('span', { class: 'card-line muted' },
          `${evaluation.name || evaluation.policyId}: ${evaluation.reason}`)),
        activity.approvalId ? h('span', { class: 'card-line' },
          h('a', { href: `#/approvals/${encodeURIComponent(activity.approvalId)}` },
            `Approval ${activity.approvalId}`)) : null);
    })) : h('p', { class: 'empty' }, 'No activity matches.'),
    pager(next, onMore));
}

/** The approver's key: what is stored, how to register it, and how to make or import one. */
export function keys(main, { key, ed25519, message, busy, onGenerate, onImport, onForget }) {
  const suggested = key?.credId || `cr-browser-${Math.random().toString(36).slice(2, 8)}`;
  const credential = h('input', { id: 'cred-id', name: 'credId', value: suggested, autocomplete: 'off',
    spellcheck: 'false' });
  const algorithm = h('select', { id: 'algorithm', name: 'algorithm' },
    h('option', { value: 'P-256' }, 'ECDSA P-256'),
    h('option', { value: 'Ed25519', disabled: !ed25519 },
      ed25519 ? 'Ed25519' : 'Ed25519 (not supported by this browser)'));
  const pem = h('textarea', { id: 'import-pem', name: 'pem', rows: '5', spellcheck: 'false',
    placeholder: '-----BEGIN PRIVATE KEY-----' });
  const file = h('input', { id: 'import-file', type: 'file', accept: '.pem,.key,.txt', onchange: async () => {
    const chosen = file.files?.[0];
    if (chosen && chosen.size < 64 * 1024) pem.value = await chosen.text();
  } });
  const snippet = key
    ? `[[principals.credentials]]\nid = "${key.credId}"\npublic_key = """${key.publicKeyPem}"""\n` : '';
  fill(main, title('Your key'),
    h('p', {}, 'Decisions are signed in this browser with your own key, through the same user-action flow as the '
      + 'Dfns SDK, so the audit trail proves who decided. The private key stays in this browser and cannot be '
      + 'read back.'),
    notice(message),
    key ? h('section', { class: 'panel', 'aria-labelledby': 'current-title' },
      h('h2', { id: 'current-title' }, 'The key in this browser'),
      h('dl', { class: 'facts' },
        field('Credential id', code(key.credId)),
        field('Algorithm', key.algorithm),
        field('Created', dateTime(key.created))),
      h('h3', {}, 'Register it'),
      h('p', {}, 'Give this to your administrator: it goes under your [[principals]] entry in the server\'s config '
        + 'file, then the server reloads it (SIGHUP, no restart).'),
      h('pre', { class: 'pem', id: 'credential-snippet' }, snippet),
      h('p', {}, 'The public key alone (SPKI PEM):'),
      h('pre', { class: 'pem', id: 'public-key-pem' }, key.publicKeyPem),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => navigator.clipboard?.writeText(snippet) },
          'Copy the config lines'),
        h('button', { type: 'button', class: 'deny', onclick: onForget, disabled: busy }, 'Forget this key')))
      : h('p', { class: 'notice notice-info', role: 'status' }, 'There is no key in this browser yet.'),
    h('section', { class: 'panel', 'aria-labelledby': 'new-title' },
      h('h2', { id: 'new-title' }, key ? 'Replace it' : 'Make or import a key'),
      h('label', { for: 'cred-id' }, 'Credential id (how the server will know this key)'), credential,
      h('h3', {}, 'Generate a key in this browser'),
      h('label', { for: 'algorithm' }, 'Algorithm'), algorithm,
      ed25519 ? null : h('p', { class: 'muted' }, 'This browser signs with P-256 only.'),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', id: 'generate', disabled: busy,
        onclick: () => onGenerate(algorithm.value, credential.value.trim()) }, 'Generate a key')),
      h('h3', {}, 'Or import a private key'),
      h('label', { for: 'import-pem' }, 'PKCS#8 PEM (P-256 or Ed25519); it is kept non-extractable once imported'), pem,
      h('label', { for: 'import-file' }, 'or read it from a file'), file,
      h('div', { class: 'actions' }, h('button', { type: 'button', id: 'import', disabled: busy,
        onclick: () => onImport(pem.value, credential.value.trim()) }, 'Import the key'))));
}
