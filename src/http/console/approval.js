// One approval on screen: the activity, why it needs approval, each
// group's progress, the decisions so far, and the form to decide.

import { fill, h } from './dom.js';
import { assetsSummary, dateTime, decimal, wholeUnits } from './format.js';
import { badge, expiry, field, notice, title } from './views.js';

/** Draws `approval` in `main`; `onDecide(value, reason)` is called by Approve and Deny. */
export function approval(main, { approval: item, current, policyNames, key, message, busy, onDecide }) {
  const nameOf = (policyId) => policyNames.get(policyId) || policyId;
  fill(main,
    h('p', {}, h('a', { href: '#/pending' }, '← Pending approvals')),
    title(`Approval ${item.id}`),
    h('p', { class: 'status-line' }, badge(item.status), ' ', expiry(item),
      item.dateResolved ? ` · resolved ${dateTime(item.dateResolved)}` : ''),
    notice(message),
    activitySection(item, current),
    reasonsSection(item, nameOf),
    groupsSection(item, nameOf),
    decisionsSection(item),
    item.status === 'Pending' ? decideSection(key, busy, onDecide) : null);
}

function section(id, heading, ...content) {
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, heading), ...content);
}

function muted(text) {
  return h('span', { class: 'muted' }, text);
}

function activitySection(item, current) {
  const activity = item.activity;
  const transaction = activity.transaction;
  const wallet = activity.wallet;
  const change = activity.changeRequest;
  const tags = wallet?.tags?.length
    ? h('span', { class: 'tags' }, wallet.tags.map((tag) => h('span', { class: 'tag' }, tag))) : '';
  const kind = [activity.kind, transaction ? ` · ${transaction.type}` : '',
    transaction?.network ? ` on ${transaction.network}` : ''].join('');
  return section('activity-title', 'Activity',
    h('dl', { class: 'facts' },
      field('Activity', h('a', { href: `#/activities?id=${encodeURIComponent(activity.id)}` }, activity.id)),
      field('Kind', kind),
      field('Initiator', item.initiatorId),
      wallet ? field('Wallet', wallet.id, tags) : null,
      transaction ? transactionFacts(transaction) : null,
      activity.externalId ? field('External id', activity.externalId) : null,
      field('Created', dateTime(item.dateCreated))),
    change ? changeSection(change, item.status === 'Pending' ? current : null) : null);
}

/**
 * A policy change: for an update or an archive still pending, what changes
 * against the policy as it is now, field by field; then the whole proposal.
 */
function changeSection(change, current) {
  const heading = h('h3', {}, `Policy change: ${change.operationKind} ${change.entityId}`);
  if (change.operationKind === 'Delete') {
    return h('div', {}, heading, h('p', { id: 'change-diff' }, `Archives the policy ${current?.name || change.entityId}`
      + ' (it stops triggering).'));
  }
  const differences = current ? changedFields(current, change.body || {}) : null;
  return h('div', {}, heading,
    differences ? h('div', { id: 'change-diff' },
      h('h4', {}, 'What changes'),
      differences.length ? h('ul', { class: 'plain' }, differences.map(([name, before, after]) => h('li', {},
        h('strong', {}, name),
        h('div', { class: 'diff' },
          h('div', {}, h('span', { class: 'muted' }, 'now'), h('pre', { class: 'before' }, before)),
          h('div', {}, h('span', { class: 'muted' }, 'proposed'), h('pre', { class: 'after' }, after))))))
        : h('p', {}, 'Nothing: the proposal is the policy as it is.')) : null,
    h('h4', {}, 'The proposed policy'),
    h('pre', { class: 'json', id: 'change-body' }, JSON.stringify(change.body, null, 2)));
}

/** [field, now, proposed] for each field of a policy that the proposal changes (JSON text). */
function changedFields(current, proposed) {
  const own = new Set(['id', 'dateCreated', 'dateUpdated', 'pendingChangeRequest']);
  const names = [...new Set([...Object.keys(current), ...Object.keys(proposed)])].filter((name) => !own.has(name));
  const text = (value) => (value === undefined ? '(none)' : JSON.stringify(value, null, 2));
  return names.map((name) => [name, text(current[name]), text(proposed[name])]).filter(([, a, b]) => a !== b);
}

function transactionFacts(transaction) {
  const { usd } = assetsSummary(transaction);
  return [
    field('Recipient', transaction.recipient ? h('span', { class: 'mono' }, transaction.recipient)
      : muted('none (a message or a black-box signature)')),
    field('Assets', assetsList(transaction.assets || [])),
    field('Total USD', usd || muted('not given by the signer (the server may price it from its [prices])')),
  ];
}

function assetsList(assets) {
  if (!assets.length) return muted('none');
  return h('ul', { class: 'plain' }, assets.map((asset) => h('li', {},
    h('strong', {}, `${wholeUnits(asset.amount, asset.decimals)} ${asset.symbol}`),
    asset.valueUsd !== undefined ? ` · ${decimal(asset.valueUsd)} USD` : muted(' · no USD value given'),
    muted(` (${asset.amount} smallest units, ${asset.decimals} decimals)`))));
}

function reasonsSection(item, nameOf) {
  const triggered = item.policyEvaluations.filter((evaluation) => evaluation.triggered);
  return section('why-title', 'Why it needs approval',
    triggered.length
      ? h('ul', { class: 'plain', id: 'reasons' }, triggered.map((evaluation) => h('li', {},
        h('strong', {}, nameOf(evaluation.policyId)), ': ', evaluation.reason)))
      : h('p', { class: 'muted' }, 'no policy reason recorded'));
}

/** Who may still approve in `group`: its approvers who have not decided, the initiator only if allowed. */
function mayStill(group, item) {
  const decided = new Set(item.decisions.map((decision) => decision.userId));
  const listed = group.approvers?.userId?.in;
  if (!listed) return `any user who has not decided${group.initiatorCanApprove ? '' : ', except the initiator'}`;
  const names = listed.filter((id) => !decided.has(id) && (group.initiatorCanApprove || id !== item.initiatorId));
  return names.length ? names.join(', ') : 'nobody';
}

function groupsSection(item, nameOf) {
  return section('groups-title', 'Approval groups',
    h('ul', { class: 'plain groups' }, item.approvalGroups.map((group) => {
      const approved = group.approvedBy.length;
      return h('li', { class: 'group' },
        h('h3', {}, group.name, muted(` · ${nameOf(group.policyId)}`)),
        h('progress', { max: String(group.quorum), value: String(Math.min(approved, group.quorum)),
          'aria-label': `${group.name}: ${approved} of ${group.quorum} approvals` }),
        h('p', { class: 'quorum' }, `${approved} of ${group.quorum} approvals`),
        h('p', {}, 'Approved by: ', approved ? group.approvedBy.join(', ') : muted('nobody yet')),
        item.status === 'Pending' ? h('p', {}, 'May still approve: ', mayStill(group, item)) : null);
    })));
}

function decisionsSection(item) {
  if (!item.decisions.length) {
    return section('decisions-title', 'Decisions', h('p', { class: 'muted' }, 'No decision yet.'));
  }
  return section('decisions-title', 'Decisions',
    h('ol', { class: 'plain decisions', id: 'decisions' }, item.decisions.map((decision) => h('li', {},
      h('strong', {}, decision.userId), ' ', badge(decision.value), ` · ${dateTime(decision.date)}`,
      decision.reason ? h('q', {}, decision.reason) : null,
      h('span', { class: 'muted credential' }, decision.credentialId
        ? ` signed with key ${decision.credentialId}` : ' not signed (bearer token only)')))));
}

function decideSection(key, busy, onDecide) {
  const reason = h('textarea', { id: 'reason', name: 'reason', rows: '3', maxlength: '4096' });
  const button = (id, label, value) => h('button', { type: 'button', class: id, id, disabled: busy,
    onclick: () => onDecide(value, reason.value) }, label);
  const signing = key
    ? `Signed in this browser with your ${key.algorithm} key ${key.credId}.`
    : h('span', {}, 'No key in this browser: the decision is sent with your token alone. ',
      h('a', { href: '#/keys' }, 'Set up a key'), ' if this server wants decisions signed.');
  return h('section', { 'aria-labelledby': 'decide-title', class: 'panel' },
    h('h2', { id: 'decide-title' }, 'Your decision'),
    h('label', { for: 'reason' }, 'Reason (shown to everyone, kept in the audit trail)'),
    reason,
    h('div', { class: 'actions' }, button('approve', 'Approve', 'Approved'), button('deny', 'Deny', 'Denied')),
    h('p', { class: 'muted' }, signing));
}
