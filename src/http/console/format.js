// Amounts, USD values and times as an approver reads them. Token amounts
// are integer strings in the smallest unit (up to 2^256 - 1): BigInt keeps
// them exact; nothing here goes through floating point.

/** `amount` (smallest units) in whole units: ("1500000000000000000", 18) -> "1.5". */
export function wholeUnits(amount, decimals) {
  let value;
  try {
    value = BigInt(amount);
  } catch {
    return String(amount);
  }
  const scale = 10n ** BigInt(decimals || 0);
  const whole = value / scale;
  const fraction = (value % scale).toString().padStart(Number(decimals || 0), '0').replace(/0+$/, '');
  return fraction ? `${group(whole.toString())}.${fraction}` : group(whole.toString());
}

/** A decimal string with its thousands grouped: "150000.5" -> "150,000.5". */
export function decimal(text) {
  const [whole, fraction] = String(text).split('.');
  return fraction !== undefined ? `${group(whole)}.${fraction}` : group(whole);
}

function group(digits) {
  const negative = digits.startsWith('-');
  const plain = negative ? digits.slice(1) : digits;
  const grouped = plain.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return negative ? `-${grouped}` : grouped;
}

/** The exact sum of decimal strings, or null when one is not a decimal. */
export function sumDecimals(values) {
  const parsed = [];
  for (const value of values) {
    const match = /^(\d+)(?:\.(\d+))?$/.exec(String(value).trim());
    if (!match) return null;
    parsed.push([match[1], match[2] || '']);
  }
  const places = Math.max(0, ...parsed.map(([, fraction]) => fraction.length));
  let total = 0n;
  for (const [whole, fraction] of parsed) total += BigInt(whole + fraction.padEnd(places, '0'));
  const digits = total.toString().padStart(places + 1, '0');
  return places ? `${digits.slice(0, -places)}.${digits.slice(-places)}` : digits;
}

/** What an activity moves, in words: "1.5 ETH + 100 USDC", and its USD value when every asset carries one. */
export function assetsSummary(transaction) {
  const assets = transaction?.assets || [];
  const moved = assets.map((asset) => `${wholeUnits(asset.amount, asset.decimals)} ${asset.symbol}`).join(' + ');
  const priced = assets.length > 0 && assets.every((asset) => asset.valueUsd !== undefined);
  const usd = priced ? sumDecimals(assets.map((asset) => asset.valueUsd)) : null;
  return { moved: moved || 'no asset', usd: usd === null ? null : `${decimal(usd)} USD` };
}

/** A date as UTC, to the second: "2026-11-30 08:24:20 UTC". */
export function dateTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** Time until `iso` in words ("4 min 12 s left"), or null once it has passed. */
export function timeLeft(iso, now = Date.now()) {
  const ms = new Date(iso).getTime() - now;
  if (!(ms > 0)) return null;
  const seconds = Math.ceil(ms / 1000);
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  if (days > 0) return hours ? `${days} d ${hours} h left` : `${days} d left`;
  if (hours > 0) return `${hours} h ${minutes} min left`;
  if (minutes > 0) return `${minutes} min ${rest} s left`;
  return `${rest} s left`;
}

/** A duration in seconds in words: 86400 -> "24 h". */
export function duration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
