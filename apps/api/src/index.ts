export { createApp, ApiDeps } from './app';
export { SessionSockets } from './session-sockets';
export { JobEventHub, type HubEvent } from './job-event-hub';
export { TenantAdmission } from './tenant-admission';
export { IdempotencyKeys } from './idempotency';
