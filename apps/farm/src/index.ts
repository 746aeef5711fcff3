export * from './embedded-s3';
export * from './local-redis';
export { makeSocketFolder, removeDeadSocketFolders } from './socket-folders';
