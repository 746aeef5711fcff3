export * from './copy-check';
