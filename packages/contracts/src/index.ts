export * from './job-request';
export * from './job-view';
export * from './job-failures';
export * from './queue';
export * from './model-capabilities';
export * from './job-cost';
export * from './api-answers';
export * from './session-protocol';
