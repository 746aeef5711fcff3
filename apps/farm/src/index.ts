export * from './embedded-s3';
export * from './local-redis';
