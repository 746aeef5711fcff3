/** Minimal typings for s3rver (it ships none). */
declare module 's3rver' {
  interface S3rverOptions {
    silent?: boolean;
    directory: string;
    configureBuckets?: Array<{ name: string }>;
    resetOnClose?: boolean;
  }
  export default class S3rver {
    constructor(options: S3rverOptions);
    /** Creates the configured buckets (run() does it before listening). */
    configureBuckets(): Promise<void>;
    /** Serves on a new HTTP server listening with these arguments (a port, or a socket path). */
    listen(path: string): Promise<import('node:http').Server>;
  }
}
