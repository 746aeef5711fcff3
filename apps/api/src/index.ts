export { createApp, ApiDeps } from './app';
export { JobEventHub } from './job-event-hub';
