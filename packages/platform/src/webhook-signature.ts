/**
 * Webhook signatures in the Standard Webhooks scheme: headers webhook-id, webhook-timestamp
 * (seconds) and webhook-signature = "v1," + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")).
 * Each tenant has its own secret ("whsec_" + base64 key), derived from the farm's master secret,
 * so the farm stores none and a tenant can only verify (never forge) another's deliveries.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function tenantWebhookSecret(masterSecret: string, tenant: string): string {
  return `whsec_${createHmac('sha256', masterSecret).update(`webhook:${tenant}`).digest('base64')}`;
}

function signingKey(secret: string): Buffer {
  return Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
}

export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', signingKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`;
}

/** Verifies a signature header (which may list several space-separated signatures). */
export function verifyWebhook(secret: string, id: string, timestampSeconds: number, body: string, header: string): boolean {
  const expected = Buffer.from(signWebhook(secret, id, timestampSeconds, body));
  return header.split(' ').some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
