/**
 * Where a webhook may go: http(s) only, no credentials in the URL, and — unless private targets
 * are explicitly allowed — only globally routed unicast addresses (SSRF). Addresses are parsed and
 * classified by ipaddr.js, completed with the IANA special-purpose blocks it does not name; an
 * IPv4-mapped IPv6 address is judged by the IPv4 address it reaches, and every other IPv6 form that
 * embeds or translates IPv4 (IPv4-compatible, NAT64, 6to4, Teredo…) is refused. The URL is checked
 * on submit (for a clear 400) and, decisively, at connect time: the delivery agent refuses a
 * connection to any such address, on the very address the socket would connect to, so DNS that
 * answers differently the second time (rebinding) gains nothing.
 */
import { lookup as dnsLookup } from 'node:dns';
import { isIP } from 'node:net';
import type { LookupAddress, LookupOptions } from 'node:dns';
import ipaddr from 'ipaddr.js';
import { Agent, buildConnector } from 'undici';

/** IANA special-purpose blocks that ipaddr.js (2.x) reports as plain unicast. */
const SPECIAL_V4 = ['192.31.196.0/24', '192.52.193.0/24', '192.175.48.0/24', '198.18.0.0/15'].map((c) => ipaddr.parseCIDR(c));
const SPECIAL_V6 = ['2001::/23', '2620:4f:8000::/48', '3fff::/20'].map((c) => ipaddr.parseCIDR(c));
/** IPv6 global unicast: everything outside it (IPv4-compatible ::/96, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 100::/64 …) is special. */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');

/** True for any address a webhook must not reach unless private targets are allowed. */
export function isInternalAddress(address: string): boolean {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address.replace(/^\[|\]$/g, ''));
  } catch {
    return true; // not an address: nothing to allow
  }
  if (parsed instanceof ipaddr.IPv6 && parsed.isIPv4MappedAddress()) parsed = parsed.toIPv4Address();
  if (parsed.range() !== 'unicast') return true;
  if (parsed instanceof ipaddr.IPv4) return SPECIAL_V4.some((block) => parsed.match(block));
  return !parsed.match(GLOBAL_UNICAST_V6) || SPECIAL_V6.some((block) => parsed.match(block));
}

/** `dns.lookup`'s shape, as `net.connect` calls it (with `all: true` under autoSelectFamily). */
export type LookupFunction = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

export class WebhookTargetRefused extends Error {
  override readonly name = 'WebhookTargetRefused';
}

function refusal(host: string, address: string): WebhookTargetRefused {
  return new WebhookTargetRefused(`${host} resolves to a private or loopback address, or another special-use one (${address})`);
}

/** `lookup`, failing when any address it answers is internal: the check runs on what the socket will use. */
export function guardedLookup(lookup: LookupFunction = dnsLookup as LookupFunction): LookupFunction {
  return (hostname, options, callback) =>
    lookup(hostname, { ...options, all: true }, (err, answers) => {
      if (err) return callback(err, '');
      const addresses = answers as LookupAddress[];
      const internal = addresses.find((a) => isInternalAddress(a.address));
      if (internal) return callback(refusal(hostname, internal.address), '');
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
}

/**
 * The HTTP agent webhooks are delivered with: unless private targets are allowed, every
 * connection is checked where it is made — names through `guardedLookup`, literal addresses
 * (which never reach a lookup) directly.
 */
export function webhookAgent(allowPrivate: boolean, lookup?: LookupFunction): Agent {
  if (allowPrivate) return new Agent();
  const connect = buildConnector({ lookup: guardedLookup(lookup) });
  return new Agent({
    connect: (options, callback) => {
      const host = options.hostname.replace(/^\[|\]$/g, '');
      if (isIP(host) && isInternalAddress(host)) return callback(refusal(host, host), null);
      connect(options, callback);
    },
  });
}

/** Null when the URL may receive webhooks, else the reason it may not (checked on submit). */
export async function webhookTargetProblem(url: string, allowPrivate: boolean, lookup: LookupFunction = dnsLookup as LookupFunction): Promise<string | null> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'only http and https URLs can receive webhooks';
  if (parsed.username || parsed.password) return 'credentials in the URL are not allowed';
  if (allowPrivate) return null;
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return isInternalAddress(host) ? `${host} is a private or loopback address, or another special-use one` : null;
  return new Promise((resolve) =>
    guardedLookup(lookup)(host, { all: true }, (err) => {
      if (err instanceof WebhookTargetRefused) resolve(err.message);
      else resolve(err ? `cannot resolve ${host}` : null);
    }),
  );
}
