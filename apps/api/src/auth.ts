/**
 * Who is calling: `Authorization: Bearer <key>` resolved to a tenant for the /v1 routes, and the
 * operator key for /admin. Every job belongs to the tenant that submitted it.
 */
import type { RequestHandler, Response } from 'express';
import { ApiKeyStore, keysMatch } from '@farm/platform';
import { HttpError } from './http-errors';

export type AuthMode = 'required' | 'disabled';

/** The tenant every request belongs to when authentication is disabled. */
export const PUBLIC_TENANT = 'public';

function bearer(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match ? match[1] : null;
}

function unauthorized(res: Response, message: string): HttpError {
  res.setHeader('WWW-Authenticate', 'Bearer realm="farm"');
  return new HttpError(401, 'unauthorized', message);
}

export function tenantAuth(mode: AuthMode, keys: ApiKeyStore): RequestHandler {
  return async (req, res, next) => {
    if (mode === 'disabled') {
      res.locals.tenant = PUBLIC_TENANT;
      return next();
    }
    const key = bearer(req.headers.authorization);
    if (!key) return next(unauthorized(res, 'send an API key as "Authorization: Bearer <key>"'));
    try {
      // A key seen in the last few seconds goes on at once, without waiting a turn for a promise.
      const owner = keys.remembered(key) ?? (await keys.lookup(key));
      if (!owner) return next(unauthorized(res, 'unknown API key'));
      res.locals.tenant = owner.tenant;
      next();
    } catch (err) {
      next(err);
    }
  };
}

export function adminAuth(adminKey: string | undefined): RequestHandler {
  return (req, res, next) => {
    if (!adminKey) return next(new HttpError(404, 'not_found', 'operator routes are off (set ADMIN_API_KEY)'));
    const key = bearer(req.headers.authorization);
    if (!key || !keysMatch(key, adminKey)) return next(unauthorized(res, 'operator routes need the admin key'));
    next();
  };
}

/** The tenant resolved for this request. */
export function tenantOf(res: Response): string {
  return res.locals.tenant as string;
}
