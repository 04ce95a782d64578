// The approver's signing key, kept in this browser: generated here as a
// non-extractable WebCrypto key (the private half can sign but can never be
// read back, not even by this page) or imported once from a PKCS#8 PEM file
// and then kept non-extractable too. It is stored in IndexedDB for this
// origin; its public half is shown as SPKI PEM to register in the server's
// config under [[principals.credentials]].

const DB_NAME = 'warden-console';
const STORE = 'keys';
const CURRENT = 'current';

/** The algorithms the console signs with, as WebCrypto names them. */
const ALGORITHMS = {
  'P-256': { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  Ed25519: { generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
};

function database() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transaction(mode, work) {
  const db = await database();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** The stored key ({credId, algorithm, privateKey, publicKeyPem, created}), or null. */
export async function currentKey() {
  return (await transaction('readonly', (store) => store.get(CURRENT))) || null;
}

export async function forgetKey() {
  await transaction('readwrite', (store) => store.delete(CURRENT));
}

async function store(record) {
  await transaction('readwrite', (db) => db.put(record, CURRENT));
  return record;
}

/** Whether this browser's WebCrypto signs with Ed25519 (Chromium 137 and later do). */
export async function supportsEd25519() {
  try {
    await crypto.subtle.generateKey(ALGORITHMS.Ed25519.generate, false, ['sign', 'verify']);
    return true;
  } catch {
    return false;
  }
}

/** Generates and stores a non-extractable key of `algorithm` ('P-256' or 'Ed25519'). */
export async function generateKey(algorithm, credId) {
  const spec = ALGORITHMS[algorithm];
  if (!spec) throw new Error(`unknown algorithm ${algorithm}`);
  const pair = await crypto.subtle.generateKey(spec.generate, false, ['sign', 'verify']);
  const publicKeyPem = pem('PUBLIC KEY', new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey)));
  return store({ credId, algorithm, privateKey: pair.privateKey, publicKeyPem, created: new Date().toISOString() });
}

/**
 * Imports a PKCS#8 PEM private key (P-256 or Ed25519) and stores it
 * non-extractable. Its public key is derived through a short-lived
 * extractable copy that is dropped at once.
 */
export async function importKey(text, credId) {
  const der = pemBody(text, 'PRIVATE KEY');
  for (const algorithm of Object.keys(ALGORITHMS)) {
    const spec = ALGORITHMS[algorithm];
    let transient;
    try {
      transient = await crypto.subtle.importKey('pkcs8', der, spec.generate, true, ['sign']);
    } catch {
      continue;
    }
    const jwk = await crypto.subtle.exportKey('jwk', transient);
    delete jwk.d;
    jwk.key_ops = ['verify'];
    const publicKey = await crypto.subtle.importKey('jwk', jwk, spec.generate, true, ['verify']);
    const publicKeyPem = pem('PUBLIC KEY', new Uint8Array(await crypto.subtle.exportKey('spki', publicKey)));
    const privateKey = await crypto.subtle.importKey('pkcs8', der, spec.generate, false, ['sign']);
    return store({ credId, algorithm, privateKey, publicKeyPem, created: new Date().toISOString() });
  }
  throw new Error('not a P-256 or Ed25519 private key in PKCS#8 form '
    + '(convert with `openssl pkcs8 -topk8 -nocrypt -in KEY`)');
}

/** A signer for the user-action flow: P-256 signatures go out DER-encoded, as api.md asks. */
export function signerOf(record) {
  return {
    credId: record.credId,
    async sign(bytes) {
      const raw = new Uint8Array(await crypto.subtle.sign(ALGORITHMS[record.algorithm].sign, record.privateKey, bytes));
      return record.algorithm === 'P-256' ? derOfP1363(raw) : raw;
    },
  };
}

/**
 * WebCrypto's ECDSA signature is r || s (IEEE P1363, 32 bytes each for
 * P-256); api.md's is DER: SEQUENCE { INTEGER r, INTEGER s }, each integer
 * minimal and positive.
 */
export function derOfP1363(raw) {
  const half = raw.length / 2;
  const integer = (bytes) => {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start += 1;
    const minimal = bytes.slice(start);
    const body = minimal[0] & 0x80 ? [0, ...minimal] : [...minimal];
    return [0x02, body.length, ...body];
  };
  const sequence = [...integer(raw.slice(0, half)), ...integer(raw.slice(half))];
  return new Uint8Array([0x30, sequence.length, ...sequence]);
}

function pem(label, der) {
  let binary = '';
  for (const byte of der) binary += String.fromCharCode(byte);
  const lines = btoa(binary).match(/.{1,64}/g).join('\n');
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

function pemBody(text, label) {
  const match = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(text);
  if (!match) {
    if (/BEGIN (EC|ENCRYPTED) PRIVATE KEY/.test(text)) {
      throw new Error('this is not an unencrypted PKCS#8 key; convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY`');
    }
    throw new Error(`no "-----BEGIN ${label}-----" block found`);
  }
  const binary = atob(match[1].replace(/\s+/g, ''));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
