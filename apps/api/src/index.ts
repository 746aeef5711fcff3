export { createApp, ApiDeps } from './app';
