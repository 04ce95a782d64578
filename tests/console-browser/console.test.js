// The approver console in a real browser: Debian's chromium driven by
// playwright-core (no browser download), against a real `warden serve`.
// Run by tests/console.rs, which installs both (scripts/chromium.sh),
// starts the server with the config below and passes:
//   WARDEN_URL   the server's origin       WARDEN_PID  its process id (for SIGHUP)
//   CONFIG       its config file           CHROMIUM    the browser executable
//   KEYS_DIR     tests/fixtures/keys       ARTIFACTS   where screenshots go
//   EXPIRY       seconds of the short-expiry policy (wallet tag `hot`)
// The config has: us-bob (Signer), us-2 (key cr-two = fixtures/p256),
// us-3, us-erin (in no group) and us-dan, these three without a key and
// each with a `# credentials of ID` line where a key is registered.
// Policies: treasury (quorum 2 of us-dan, us-2, us-3) and hot (quorum 1 of
// us-dan, expiring after EXPIRY s).
// Prints `console: result {json}` and `console: ok`; exits non-zero with
// what went wrong on the first failed check.

'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const base = process.env.WARDEN_URL;
const origin = new URL(base).origin;
const artifacts = process.env.ARTIFACTS;
const keysDir = process.env.KEYS_DIR;
for (const name of ['WARDEN_URL', 'WARDEN_PID', 'CONFIG', 'CHROMIUM', 'KEYS_DIR', 'ARTIFACTS', 'EXPIRY']) {
  assert.ok(process.env[name], `${name} is required`);
}
fs.mkdirSync(artifacts, { recursive: true });

const STEP_TIMEOUT = 20_000;
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

const requests = [];
const problems = [];
/** Every page opened, to show what each one said when a check fails. */
const pages = [];

function log(message) {
  process.stdout.write(`console: ${message}\n`);
}

/** A new browser context (its own storage, like another person's browser) with every request recorded. */
async function person(browser, viewport) {
  const context = await browser.newContext({ viewport, isMobile: viewport === PHONE, hasTouch: viewport === PHONE });
  context.on('request', (request) => requests.push(request.url()));
  const page = await context.newPage();
  pages.push(page);
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A refused request logs "Failed to load resource" (the 403 and 409 below are meant);
    // anything else, a CSP violation first of all, is a failure.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  return { context, page };
}

async function signIn(page, token) {
  await page.goto(`${base}/console`);
  await page.locator('#token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#screen-title', { hasText: 'Pending approvals' }).waitFor();
}

async function submit(wallet, tags, amount, valueUsd, externalId) {
  const response = await fetch(`${base}/v2/activities`, {
    method: 'POST',
    headers: { authorization: 'Bearer bob-signer-token', 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'Wallets:Sign', wallet: { id: wallet, tags }, externalId,
      transaction: { type: 'Transfer', network: 'Ethereum', recipient: '0x76d1b7f9b3F69C435eeF76a98A415332084A856F',
        assets: [{ symbol: 'ETH', decimals: 18, amount, valueUsd }] },
    }),
  });
  const activity = await response.json();
  assert.equal(response.status, 200, JSON.stringify(activity));
  assert.equal(activity.status, 'PendingApproval', JSON.stringify(activity));
  return activity;
}

/**
 * Does what the administrator does with the lines the page shows: writes
 * them into the config under the principal (at its `# credentials of ID`
 * line), sends SIGHUP, and waits until the server lists the credential.
 */
async function register(principal, token, lines) {
  const marker = `# credentials of ${principal}\n`;
  const config = fs.readFileSync(process.env.CONFIG, 'utf8');
  assert.ok(config.includes(marker), `the config has a place for ${principal}'s keys`);
  fs.writeFileSync(process.env.CONFIG, config.replace(marker, `${lines}${marker}`));
  process.kill(Number(process.env.WARDEN_PID), 'SIGHUP');
  const credId = /^id = "(.*)"$/m.exec(lines)[1];
  for (let i = 0; i < 200; i += 1) {
    const response = await fetch(`${base}/auth/action/init`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userActionPayload: '{}', userActionHttpMethod: 'POST', userActionHttpPath: '/v2/x' }),
    });
    const body = await response.json();
    if (response.status === 200 && body.allowCredentials.key.some((key) => key.id === credId)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${credId} was never registered`);
}

/** A change signed as us-alice with her Ed25519 fixture key, through the user-action flow (no SDK needed). */
async function signedAsAlice(method, urlPath, body) {
  const headers = { authorization: 'Bearer alice-admin-token', 'content-type': 'application/json' };
  const call = async (target, payload, extra = {}, verb = 'POST') => {
    const init = { method: verb, headers: { ...headers, ...extra }, body: payload };
    const response = await fetch(`${base}${target}`, init);
    return { status: response.status, body: await response.json() };
  };
  const bodyText = JSON.stringify(body);
  const init = await call('/auth/action/init', JSON.stringify({
    userActionPayload: bodyText, userActionHttpMethod: method, userActionHttpPath: urlPath, userActionServerKind: 'Api',
  }));
  assert.equal(init.status, 200, JSON.stringify(init.body));
  const clientData = Buffer.from(JSON.stringify({ type: 'key.get', challenge: init.body.challenge }));
  const key = crypto.createPrivateKey(fs.readFileSync(path.join(keysDir, 'ed25519.key'), 'utf8'));
  const signed = await call('/auth/action', JSON.stringify({
    challengeIdentifier: init.body.challengeIdentifier,
    firstFactor: { kind: 'Key', credentialAssertion: {
      credId: 'cr-alice', clientData: clientData.toString('base64url'),
      signature: crypto.sign(null, clientData, key).toString('base64url'),
    } },
  }));
  assert.equal(signed.status, 200, JSON.stringify(signed.body));
  return call(urlPath, bodyText, { 'x-dfns-useraction': signed.body.userAction }, method);
}

async function noHorizontalScroll(page, where) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= width, `${where}: the page is ${scroll}px wide in a ${width}px window`);
}

async function notice(page, text) {
  const element = page.locator('.notice', { hasText: text });
  await element.waitFor();
  return element.textContent();
}

/**
 * The page turns WebCrypto's r || s into DER itself: check it against
 * OpenSSL (which refuses a non-minimal DER) on signatures made here, until
 * both a high first bit and a leading zero byte have come up in r or s.
 */
async function derConversion(page) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const message = Buffer.from('{"type":"key.get","challenge":"x"}');
  const raws = [];
  let highBit = false;
  let leadingZero = false;
  while (raws.length < 5000 && !(highBit && leadingZero)) {
    const raw = crypto.sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    highBit ||= raw[0] >= 0x80 || raw[32] >= 0x80;
    leadingZero ||= raw[0] === 0 || raw[32] === 0;
    raws.push([...raw]);
  }
  assert.ok(highBit && leadingZero, 'both cases came up');
  const ders = await page.evaluate(async (all) => {
    const { derOfP1363 } = await import('/console/keys.js');
    return all.map((raw) => [...derOfP1363(new Uint8Array(raw))]);
  }, raws);
  for (const der of ders) {
    assert.ok(crypto.verify('sha256', message, { key: publicKey, dsaEncoding: 'der' }, Buffer.from(der)),
      `OpenSSL accepts the page's DER ${Buffer.from(der).toString('hex')}`);
  }
  log(`DER of ${ders.length} P-256 signatures: ok`);
}

async function main() {
  const args = process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args });
  try {
    await scenarios(browser);
  } catch (error) {
    for (const [index, page] of pages.entries()) {
      if (page.isClosed()) continue;
      const text = await page.locator('main').textContent().catch(() => '?');
      process.stderr.write(`--- page ${index} at ${page.url()}:\n${text}\n`);
      await page.screenshot({ path: path.join(artifacts, `failure-${index}.png`), fullPage: true }).catch(() => {});
    }
    throw error;
  } finally {
    await browser.close();
  }
}

async function scenarios(browser) {
  // Sign in: an unknown token is refused in words; the token lives in this tab only.
  const dan = await person(browser, DESKTOP);
  await dan.page.goto(`${base}/console`);
  assert.equal(new URL(dan.page.url()).pathname, '/console/', '/console redirects to /console/');
  await dan.page.locator('#token').fill('not-a-token');
  await dan.page.getByRole('button', { name: 'Sign in' }).click();
  await notice(dan.page, 'does not know that token');
  await signIn(dan.page, 'dan-token');
  await dan.page.locator('#pending-empty').waitFor();
  assert.equal(await dan.page.evaluate(() => sessionStorage.getItem('warden.token')), 'dan-token');
  const otherTab = await dan.context.newPage();
  await otherTab.goto(`${base}/console/`);
  await otherTab.locator('#token').waitFor();
  await otherTab.close();
  log('sign-in: ok');

  // Dan makes a P-256 key in the browser, non-extractable, and registers its public key (config + SIGHUP).
  await dan.page.goto(`${base}/console/#/keys`);
  await dan.page.locator('#cred-id').fill('cr-dan-browser');
  await dan.page.locator('#algorithm').selectOption('P-256');
  await dan.page.locator('#generate').click();
  const pem = (await dan.page.locator('#public-key-pem').textContent()).trim();
  assert.match(pem, /^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+\n-----END PUBLIC KEY-----$/);
  const stored = await dan.page.evaluate(async () => {
    const record = await (await import('/console/keys.js')).currentKey();
    return { extractable: record.privateKey.extractable, algorithm: record.privateKey.algorithm.namedCurve };
  });
  assert.deepEqual(stored, { extractable: false, algorithm: 'P-256' });
  await register('us-dan', 'dan-token', await dan.page.locator('#credential-snippet').textContent());
  log('key generated and registered: ok');
  await derConversion(dan.page);

  // Live: activities submitted over HTTP appear without a reload.
  await dan.page.goto(`${base}/console/#/pending`);
  await dan.page.locator('#pending-empty').waitFor();
  await dan.page.evaluate(() => { window.notReloaded = true; });
  const big = await submit('wa-treasury', ['treasury'], '51500000000000000000', '154500.00', 'console-big');
  const card = dan.page.locator(`[data-approval-id="${big.approvalId}"]`);
  await card.waitFor();
  const cardText = await card.textContent();
  assert.ok(cardText.includes('51.5 ETH') && cardText.includes('154,500.00 USD'), cardText);
  assert.ok(cardText.includes('Treasury: 0 of 2'), cardText);
  const announced = await dan.page.locator('#announce').textContent();
  assert.equal(announced, 'New approval pending: 51.5 ETH, by us-bob.', 'screen readers are told');
  const second = await submit('wa-treasury', ['treasury'], '40000000000000000000', '120000', 'console-second');
  await dan.page.locator(`[data-approval-id="${second.approvalId}"]`).waitFor();
  assert.equal(await dan.page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
  assert.equal(await dan.page.locator('#pending-count').textContent(), '2');
  await dan.page.screenshot({ path: path.join(artifacts, 'console-pending.png') });
  log('live pending list: ok');

  // Keyboard: Tab to the approval, Enter opens it with focus on its heading.
  await dan.page.locator('#screen-title').focus();
  let reached = false;
  for (let i = 0; i < 40 && !reached; i += 1) {
    await dan.page.keyboard.press('Tab');
    reached = await dan.page.evaluate((id) => document.activeElement?.dataset?.approvalId === id, big.approvalId);
  }
  assert.ok(reached, 'the approval is reachable with Tab');
  const outline = await dan.page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'focus is visible');
  await dan.page.keyboard.press('Enter');
  await dan.page.locator('#screen-title', { hasText: `Approval ${big.approvalId}` }).waitFor();
  assert.equal(await dan.page.evaluate(() => document.activeElement.id), 'screen-title');
  const detail = await dan.page.locator('main').textContent();
  for (const expected of ['wa-treasury', 'treasury', '0x76d1b7f9b3F69C435eeF76a98A415332084A856F', '51.5 ETH',
    '154,500.00 USD', 'Treasury approval', 'value 154500.00 USD exceeds limit 100000 USD', '0 of 2 approvals',
    'May still approve: us-dan, us-2, us-3', 'Expires in', 'No decision yet']) {
    assert.ok(detail.includes(expected), `the detail shows "${expected}": ${detail}`);
  }
  log('detail: ok');

  // An approver in no group sees the 403 in words (Erin has no key: her decision goes with her token alone).
  const erin = await person(browser, DESKTOP);
  await signIn(erin.page, 'erin-token');
  await erin.page.goto(`${base}/console/#/approvals/${big.approvalId}`);
  await erin.page.locator('#approve').click();
  await notice(erin.page, 'not eligible to decide this approval');
  log('ineligible 403 in words: ok');

  // Importing: something that is no PKCS#8 key is refused in words; an Ed25519 key
  // imports, and the page derives its public key (as the fixture's).
  await erin.page.goto(`${base}/console/#/keys`);
  await erin.page.locator('#cred-id').fill('cr-erin');
  await erin.page.locator('#import-pem').fill('-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----');
  await erin.page.locator('#import').click();
  await notice(erin.page, 'openssl pkcs8 -topk8 -nocrypt');
  await erin.page.locator('#import-pem').fill(fs.readFileSync(path.join(keysDir, 'ed25519.key'), 'utf8'));
  await erin.page.locator('#import').click();
  await notice(erin.page, 'The key was imported');
  assert.equal((await erin.page.locator('#public-key-pem').textContent()).trim(),
    fs.readFileSync(path.join(keysDir, 'ed25519.pub'), 'utf8').trim());
  assert.ok((await erin.page.locator('main').textContent()).includes('AlgorithmEd25519'));
  log('key import (Ed25519) and a refused import in words: ok');

  // Dan approves with the keyboard, signed in the browser.
  await dan.page.locator('#reason').focus();
  await dan.page.keyboard.type('counterparty checked');
  await dan.page.keyboard.press('Tab');
  assert.equal(await dan.page.evaluate(() => document.activeElement.id), 'approve');
  await dan.page.keyboard.press('Enter');
  await notice(dan.page, 'Your approval was recorded, signed with cr-dan-browser. '
    + 'The approval is still Pending: Treasury needs 1 more.');
  assert.equal(await dan.page.evaluate(() => document.activeElement.id), 'notice',
    'the keyboard goes on from the outcome');
  const afterDan = await dan.page.locator('main').textContent();
  for (const expected of ['1 of 2 approvals', 'Approved by: us-dan', 'May still approve: us-2, us-3',
    'counterparty checked', 'signed with key cr-dan-browser']) {
    assert.ok(afterDan.includes(expected), `after Dan's approval the detail shows "${expected}": ${afterDan}`);
  }
  await dan.page.screenshot({ path: path.join(artifacts, 'console-approval.png'), fullPage: true });
  // A second decision by the same person: 409 in words.
  await dan.page.locator('#approve').click();
  await notice(dan.page, 'already decided');
  log('signed approval and 409 in words: ok');

  // The second approver, on a phone. A key made in the browser under the id
  // `cr-two`, which the server knows with another public key: the signature is refused, in words.
  const two = await person(browser, PHONE);
  await signIn(two.page, 'approver-2-token');
  await noHorizontalScroll(two.page, 'pending list');
  await two.page.goto(`${base}/console/#/keys`);
  await two.page.locator('#cred-id').fill('cr-two');
  await two.page.locator('#generate').click();
  await two.page.locator('#public-key-pem').waitFor();
  await two.page.goto(`${base}/console/#/approvals/${big.approvalId}`);
  await two.page.locator('#approve').click();
  await notice(two.page, 'Signature refused');
  log('a wrong key: signature refused in words: ok');

  // Then the right one: the fixture's P-256 private key, imported.
  await two.page.goto(`${base}/console/#/keys`);
  await two.page.locator('#public-key-pem').waitFor();
  await two.page.locator('#cred-id').fill('cr-two');
  await two.page.locator('#import-pem').fill(fs.readFileSync(path.join(keysDir, 'p256.key'), 'utf8'));
  await two.page.locator('#import').click();
  await notice(two.page, 'The key was imported');
  const imported = (await two.page.locator('#public-key-pem').textContent()).trim();
  assert.equal(imported, fs.readFileSync(path.join(keysDir, 'p256.pub'), 'utf8').trim(), 'the derived public key');
  await noHorizontalScroll(two.page, 'keys');
  // With it, the second approver denies the other approval with a reason.
  await two.page.goto(`${base}/console/#/approvals/${second.approvalId}`);
  await two.page.locator('#deny').waitFor();
  await noHorizontalScroll(two.page, 'approval detail');
  await two.page.screenshot({ path: path.join(artifacts, 'console-phone-approval.png'), fullPage: true });
  await two.page.locator('#reason').fill('recipient not on our list');
  await two.page.locator('#deny').click();
  await notice(two.page, 'The approval is now Denied');
  const denied = await two.page.locator('#decisions').textContent();
  for (const expected of ['us-2', 'Denied', 'recipient not on our list', 'signed with key cr-two']) {
    assert.ok(denied.includes(expected), `the decision shows "${expected}": ${denied}`);
  }
  log('denial with a reason: ok');

  // A third approver makes an Ed25519 key in the browser (P-256 where the
  // browser has no Ed25519, which the page must then say), registers it and
  // approves: the quorum is reached.
  const three = await person(browser, DESKTOP);
  await signIn(three.page, 'approver-3-token');
  await three.page.goto(`${base}/console/#/keys`);
  const ed25519 = await three.page.locator('#algorithm option[value="Ed25519"]').isEnabled();
  if (!ed25519) await three.page.getByText('This browser signs with P-256 only.').waitFor();
  await three.page.locator('#cred-id').fill('cr-three-browser');
  await three.page.locator('#algorithm').selectOption(ed25519 ? 'Ed25519' : 'P-256');
  await three.page.locator('#generate').click();
  await three.page.locator('#public-key-pem').waitFor();
  const threeKey = await three.page.evaluate(async () => {
    const record = await (await import('/console/keys.js')).currentKey();
    return { extractable: record.privateKey.extractable, name: record.privateKey.algorithm.name };
  });
  assert.deepEqual(threeKey, { extractable: false, name: ed25519 ? 'Ed25519' : 'ECDSA' });
  await register('us-3', 'approver-3-token', await three.page.locator('#credential-snippet').textContent());
  await three.page.goto(`${base}/console/#/approvals/${big.approvalId}`);
  await three.page.locator('#reason').fill('second pair of eyes');
  await three.page.locator('#approve').click();
  await notice(three.page, 'The approval is now Approved');
  // Dan, still on it, sees it resolve live.
  await notice(dan.page, 'This approval is now Approved');
  await dan.page.locator('.status-line .badge', { hasText: 'Approved' }).waitFor();
  const approvedText = await dan.page.locator('#decisions').textContent();
  assert.ok(approvedText.includes('signed with key cr-three-browser'), approvedText);
  await dan.page.getByRole('link', { name: big.id }).click();
  await dan.page.locator(`[data-activity-id="${big.id}"] .badge`, { hasText: 'Approved' }).waitFor();
  await dan.page.goto(`${base}/console/#/pending`);
  await dan.page.locator('#pending-empty').waitFor();
  log(`${ed25519 ? 'Ed25519' : 'P-256'} key from the browser, quorum reached, approval and activity Approved: ok`);

  // Expiry: shown while pending, and the item leaves the list when it expires.
  const hot = await submit('wa-hot', ['hot'], '2000000000000000000', '6000', 'console-hot');
  const hotCard = dan.page.locator(`[data-approval-id="${hot.approvalId}"]`);
  await hotCard.waitFor();
  assert.match(await hotCard.textContent(), /Expires in \d+ s/);
  await hotCard.waitFor({ state: 'detached', timeout: (Number(process.env.EXPIRY) + 30) * 1000 });
  await dan.page.locator('#pending-empty').waitFor();
  log('expiry: ok');

  // The stream drops (the browser goes offline): the page says so, and once back it lists
  // again, so an approval created meanwhile, whose event it never got, appears.
  await dan.page.goto(`${base}/console/#/pending`);
  await dan.page.locator('#pending-empty').waitFor();
  await dan.context.setOffline(true);
  await dan.page.locator('#live', { hasText: 'Reconnecting' }).waitFor();
  const missed = await submit('wa-treasury', ['treasury'], '35000000000000000000', '105000', 'console-missed');
  await dan.context.setOffline(false);
  await dan.page.locator('#live', { hasText: 'Live' }).waitFor();
  await dan.page.locator(`[data-approval-id="${missed.approvalId}"]`).waitFor();
  log('reconnection lists again: ok');

  // A governed policy change waits for Dan: he sees what would change, approves, and it is applied.
  const deskLimit = {
    name: 'Desk limit', activityKind: 'Wallets:Sign',
    rule: { kind: 'TransactionAmountLimit', configuration: { limit: '250000', currency: 'USD' } },
    action: { kind: 'Block' }, filters: { walletTags: { hasAny: ['desk'] } }, status: 'Active',
  };
  const held = await signedAsAlice('POST', '/v2/policies', deskLimit);
  assert.equal(held.status, 202, JSON.stringify(held.body));
  const changeCard = dan.page.locator(`[data-approval-id="${held.body.approvalId}"]`);
  await changeCard.waitFor();
  assert.ok((await changeCard.textContent()).includes(`Policy change: Create ${held.body.entityId}`));
  await changeCard.click();
  await dan.page.locator('#change-body').waitFor();
  const proposed = JSON.parse(await dan.page.locator('#change-body').textContent());
  assert.equal(proposed.name, 'Desk limit');
  assert.deepEqual(proposed.rule, deskLimit.rule);
  await dan.page.locator('#reason').fill('limit agreed with the desk');
  await dan.page.locator('#approve').click();
  await notice(dan.page, 'The approval is now Approved');
  log('a policy change approved in the console: ok');

  // An update shows what it changes against the policy as it is; Dan denies it.
  const raised = { ...deskLimit, rule: { ...deskLimit.rule, configuration: { limit: '900000', currency: 'USD' } } };
  const update = await signedAsAlice('PUT', `/v2/policies/${held.body.entityId}`, raised);
  assert.equal(update.status, 202, JSON.stringify(update.body));
  await dan.page.goto(`${base}/console/#/pending`);
  await dan.page.locator(`[data-approval-id="${update.body.approvalId}"]`).click();
  const diff = dan.page.locator('#change-diff');
  await diff.waitFor();
  const diffText = await diff.textContent();
  assert.ok(diffText.includes('rule') && diffText.includes('"250000"') && diffText.includes('"900000"'), diffText);
  assert.ok(!diffText.includes('name'), `only what changes is listed: ${diffText}`);
  await dan.page.screenshot({ path: path.join(artifacts, 'console-policy-change.png'), fullPage: true });
  await dan.page.locator('#reason').fill('keep 250000');
  await dan.page.locator('#deny').click();
  await notice(dan.page, 'The approval is now Denied');
  log('a policy update shown as what changes, denied: ok');

  // The activity trail with its filters, and the policies, read-only.
  await dan.page.goto(`${base}/console/#/activities`);
  await dan.page.locator('#filter-wallet').fill('wa-hot');
  await dan.page.locator('#filter-status').selectOption('Expired');
  await dan.page.getByRole('button', { name: 'Filter' }).click();
  await dan.page.locator('#trail-summary', { hasText: 'with wallet wa-hot and status Expired' }).waitFor();
  await dan.page.locator(`[data-activity-id="${hot.id}"] .badge`, { hasText: 'Expired' }).waitFor();
  assert.equal(await dan.page.locator('[data-activity-id]').count(), 1, 'only the hot wallet\'s expired activity');
  await dan.page.locator('#filter-wallet').fill('wa-treasury');
  await dan.page.locator('#filter-status').selectOption('Denied');
  await dan.page.getByRole('button', { name: 'Filter' }).click();
  await dan.page.locator('#trail-summary', { hasText: 'with wallet wa-treasury and status Denied' }).waitFor();
  await dan.page.locator(`[data-activity-id="${second.id}"]`).waitFor();
  assert.equal(await dan.page.locator('[data-activity-id]').count(), 1);
  await two.page.goto(`${base}/console/#/activities`);
  await two.page.locator(`[data-activity-id="${hot.id}"]`).waitFor();
  await noHorizontalScroll(two.page, 'activity trail');
  await dan.page.goto(`${base}/console/#/policies`);
  const policies = await dan.page.locator('#policy-list').textContent();
  for (const name of ['Treasury approval', 'Hot wallet approval', 'Policy changes', 'Desk limit']) {
    assert.ok(policies.includes(name), `the policies list shows "${name}": ${policies}`);
  }
  assert.ok(policies.includes('quorum 2 of us-dan, us-2, us-3'), policies);
  await two.page.goto(`${base}/console/#/policies`);
  await two.page.locator('#policy-list').waitFor();
  await noHorizontalScroll(two.page, 'policies');
  log('activity trail and policies: ok');

  // Nothing but this origin was ever asked for, and the browser reported no problem (a CSP violation would be one).
  assert.ok(requests.length > 20, `requests were recorded (${requests.length})`);
  const foreign = requests.filter((url) => new URL(url).origin !== origin);
  assert.deepEqual(foreign, [], 'requests to another origin');
  assert.deepEqual(problems, [], 'problems the browser reported');
  log(`${requests.length} requests, all to ${origin}: ok`);

  const made = { approved: big, denied: second, expired: hot, change: held.body, refused: update.body };
  log(`result ${JSON.stringify(made)}`);
}

main().then(() => log('ok'), (error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
