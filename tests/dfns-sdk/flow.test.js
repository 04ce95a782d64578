// The seed guide's flow through the real Dfns SDK (@dfns/sdk with
// @dfns/sdk-keysigner) against a real `warden serve`, unmodified: the SDK
// signs every change with the user-action flow and Warden adapts to it.
// Run by tests/dfns_sdk.rs, which starts the server and passes:
//   WARDEN_URL  the server's origin (the SDK's baseUrl)
//   KEYS_DIR    tests/fixtures/keys
// Exits non-zero, with what went wrong, on the first failed check.

'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { DfnsApiClient, DfnsError, PolicyPendingError } = require('@dfns/sdk');
const { AsymmetricKeySigner } = require('@dfns/sdk-keysigner');

const baseUrl = process.env.WARDEN_URL;
const keysDir = process.env.KEYS_DIR;
assert.ok(baseUrl && keysDir, 'WARDEN_URL and KEYS_DIR are required');

// The principals of tests/binary_support: token, credential, key file.
function client(token, credId, keyName, algorithm) {
  const privateKey = fs.readFileSync(path.join(keysDir, `${keyName}.key`), 'utf8');
  // orgId is left unset: Warden has no organizations.
  return new DfnsApiClient({
    baseUrl,
    authToken: token,
    signer: new AsymmetricKeySigner({ credId, privateKey, algorithm }),
  });
}
const alice = client('alice-admin-token', 'cr-alice', 'ed25519');
const approver1 = client('approver-1-token', 'cr-one', 'ed25519-b');
const approver2 = client('approver-2-token', 'cr-two', 'p256', 'SHA256');
const carol = client('carol-admin-token', 'cr-carol', 'secp256k1', 'SHA256');

const seedPolicy = {
  name: 'Large Transaction Approval',
  activityKind: 'Wallets:Sign',
  rule: { kind: 'TransactionAmountLimit', configuration: { limit: '100000', currency: 'USD' } },
  action: {
    kind: 'RequestApproval',
    approvalGroups: [{
      name: 'Treasury', quorum: 2,
      approvers: { userId: { in: ['us-1', 'us-2', 'us-3'] } },
      initiatorCanApprove: false, serviceAccountsCanApprove: false,
    }],
    autoRejectTimeout: 86400, // 24 hours, in seconds
  },
  filters: { walletTags: { hasAny: ['treasury'] } },
  status: 'Active',
};

// The signer's side is not a Dfns SDK call: Bob (a signer without a key)
// asks Warden with his bearer token.
async function submitTransfer(usd) {
  const response = await fetch(`${baseUrl}/v2/activities`, {
    method: 'POST',
    headers: { authorization: 'Bearer bob-signer-token', 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'Wallets:Sign',
      wallet: { id: 'wa-1', tags: ['treasury'] },
      transaction: {
        type: 'Transfer', network: 'Ethereum',
        recipient: '0x76d1b7f9b3F69C435eeF76a98A415332084A856F',
        assets: [{ symbol: 'ETH', decimals: 18, amount: '50000000000000000000', valueUsd: usd }],
      },
    }),
  });
  assert.equal(response.status, 200);
  return response.json();
}

// A Dfns webhook receiver: checks X-DFNS-WEBHOOK-SIGNATURE over the raw
// body with the webhook's secret, and that timestampSent is recent.
function startReceiver() {
  const received = [];
  let secret = null;
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      const raw = Buffer.concat(chunks);
      const expected = 'sha256=' + crypto.createHmac('sha256', secret).update(raw).digest('hex');
      const given = String(request.headers['x-dfns-webhook-signature'] || '');
      const event = JSON.parse(raw.toString('utf8'));
      const fresh = Math.abs(Date.now() / 1000 - event.timestampSent) < 300;
      const valid = given.length === expected.length
        && crypto.timingSafeEqual(Buffer.from(given), Buffer.from(expected));
      received.push({ event, valid, fresh });
      response.writeHead(valid && fresh ? 200 : 401).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}/dfns-hook`,
    received,
    setSecret: (s) => { secret = s; },
    close: () => server.close(),
  })));
}

async function eventually(what, check) {
  for (let i = 0; i < 400; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main() {
  // Policies: create (signed), list, update, and an error the SDK reads.
  const policy = await alice.policies.createPolicy({ body: seedPolicy });
  assert.match(policy.id, /^pl-/);
  assert.equal(policy.name, 'Large Transaction Approval');
  const listed = await alice.policies.listPolicies({ query: { status: 'Active' } });
  assert.deepEqual(listed.items.map((p) => p.id), [policy.id]);
  const updated = await alice.policies.updatePolicy({
    policyId: policy.id, body: { ...seedPolicy, name: 'Large Transaction Approval (treasury)' },
  });
  assert.equal(updated.name, 'Large Transaction Approval (treasury)');
  const fetched = await alice.policies.getPolicy({ policyId: policy.id });
  assert.equal(fetched.name, updated.name);
  await assert.rejects(alice.policies.getPolicy({ policyId: 'pl-missing' }), (error) => {
    assert.ok(error instanceof DfnsError);
    assert.equal(error.httpStatus, 404);
    assert.match(error.message, /pl-missing/, 'DfnsError reads `message`');
    return true;
  });

  // Webhooks, with a receiver that checks signatures as Dfns receivers do.
  const receiver = await startReceiver();
  const webhook = await alice.webhooks.createWebhook({
    body: { url: receiver.url, events: ['*'], description: 'Dfns-style receiver' },
  });
  assert.match(webhook.id, /^wh-/);
  assert.ok(webhook.secret, 'the secret is shown on create');
  receiver.setSecret(webhook.secret);
  const webhooks = await alice.webhooks.listWebhooks({});
  assert.ok(webhooks.items.some((w) => w.id === webhook.id && w.description === 'Dfns-style receiver'));

  // An activity held for approval; two approvers (Ed25519, P-256) approve.
  const held = await submitTransfer('150000.00');
  assert.equal(held.status, 'PendingApproval');
  const pending = await approver1.policies.listApprovals({ query: { status: 'Pending' } });
  assert.deepEqual(pending.items.map((a) => a.id), [held.approvalId]);
  const approval = await approver1.policies.getApproval({ approvalId: held.approvalId });
  assert.equal(approval.activity.id, held.id);
  assert.equal(approval.dateResolved, undefined, 'unset fields are absent, not null');
  const first = await approver1.policies.createApprovalDecision({
    approvalId: held.approvalId, body: { value: 'Approved', reason: 'known counterparty' },
  });
  assert.equal(first.status, 'Pending');
  const second = await approver2.policies.createApprovalDecision({
    approvalId: held.approvalId, body: { value: 'Approved', reason: 'checked with the desk' },
  });
  assert.equal(second.status, 'Approved');
  assert.deepEqual(second.decisions.map((d) => d.credentialId), ['cr-one', 'cr-two']);

  // A Rejected decision denies another.
  const other = await submitTransfer('250000.00');
  const denied = await approver1.policies.createApprovalDecision({
    approvalId: other.approvalId, body: { value: 'Rejected', reason: 'unknown recipient' },
  });
  assert.equal(denied.status, 'Denied');

  // A decision is signed: a second one by the same person is refused (409).
  await assert.rejects(
    approver1.policies.createApprovalDecision({ approvalId: other.approvalId, body: { value: 'Approved' } }),
    (error) => error instanceof DfnsError && error.httpStatus === 409,
  );

  // Archive (DELETE /v2/policies/{id}, the SDK's archivePolicy).
  const archived = await alice.policies.archivePolicy({ policyId: policy.id });
  assert.equal(archived.status, 'Archived');

  // Governance: with a Policies:Modify policy, a change is held for
  // approval: the SDK raises PolicyPendingError with the change request.
  const governanceBody = {
    name: 'Policy changes need Carol',
    activityKind: 'Policies:Modify',
    rule: { kind: 'AlwaysTrigger', configuration: {} },
    action: {
      kind: 'RequestApproval',
      approvalGroups: [{ name: 'Admins', quorum: 1, approvers: { userId: { in: ['us-carol'] } } }],
    },
  };
  const governance = await alice.policies.createPolicy({ body: governanceBody });
  let changeRequest = null;
  await assert.rejects(
    alice.policies.updatePolicy({
      policyId: governance.id, body: { ...governanceBody, name: 'Policy changes need Carol (renamed)' },
    }),
    (error) => {
      assert.ok(error instanceof PolicyPendingError, `expected PolicyPendingError, got ${error}`);
      changeRequest = error.context;
      return true;
    },
  );
  assert.match(changeRequest.id, /^cr-/);
  assert.equal(changeRequest.status, 'Pending');
  const governed = await carol.policies.getApproval({ approvalId: changeRequest.approvalId });
  assert.equal(governed.activity.changeRequest.id, changeRequest.id, 'the approval shows the change');
  const applied = await carol.policies.createApprovalDecision({
    approvalId: changeRequest.approvalId, body: { value: 'Approved', reason: 'reviewed' },
  });
  assert.equal(applied.status, 'Approved');
  assert.equal(applied.activity.changeRequest.status, 'Applied');
  const renamed = await alice.policies.getPolicy({ policyId: governance.id });
  assert.equal(renamed.name, 'Policy changes need Carol (renamed)');

  // The deliveries arrived, signed as a Dfns receiver checks them.
  const pendingEvent = await eventually('a delivered policy.approval.pending', () =>
    receiver.received.find((r) => r.event.kind === 'policy.approval.pending'));
  assert.ok(pendingEvent.valid, 'X-DFNS-WEBHOOK-SIGNATURE verifies with the secret');
  assert.ok(pendingEvent.fresh, 'timestampSent is now');
  assert.equal(pendingEvent.event.deliveryAttempt, 1);
  assert.ok(receiver.received.every((r) => r.valid && r.fresh));
  const ping = await alice.webhooks.pingWebhook({ webhookId: webhook.id });
  assert.equal(ping.status, '200');
  const events = await alice.webhooks.listWebhookEvents({ webhookId: webhook.id, query: {} });
  assert.ok(events.items.length >= 1 && events.items.every((e) => e.data !== undefined));
  receiver.close();
  console.log('dfns sdk flow: ok');
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  if (error && error.context) console.error(JSON.stringify(error.context, null, 2));
  process.exit(1);
});
