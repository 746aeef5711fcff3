export * from './env-config';
export * from './object-store';
export * from './redis-connection';
export * from './job-queue';
export * from './metrics';
export * from './worker-registry';
export * from './job-cancellation';
