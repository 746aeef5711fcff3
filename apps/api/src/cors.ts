/**
 * CORS for browser clients (the `cors` package): the origins CORS_ORIGINS allows may call every
 * route with an API key, read the headers a client needs (Location, Retry-After, RateLimit-*,
 * Preference-Applied), and send the ones the API reads (Authorization, Idempotency-Key, Prefer).
 */
import cors from 'cors';
import type { RequestHandler } from 'express';

export const CORS_EXPOSED_HEADERS = ['Location', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy', 'Preference-Applied'];
export const CORS_ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key', 'Prefer'];

export function corsFor(origins: string[] | '*'): RequestHandler {
  return cors({
    origin: origins === '*' ? '*' : origins,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    maxAge: 600,
  });
}
