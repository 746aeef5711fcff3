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
    /** Its object store (a folder per bucket), which its HTTP handlers read and write. */
    readonly store: {
      /** Where a resource of an object lives: 'object', 'object.md5' or 'metadata.json'. */
      getResourcePath(bucket: string, key: string, resource: string): string;
    };
  }
}

declare module 's3rver/lib/models/object' {
  /** An object as s3rver's store takes it: the request's headers give its metadata (content type, x-amz-meta-*). */
  export default class S3Object {
    constructor(bucket: string, key: string, content: Buffer, metadata: Record<string, unknown>);
    readonly bucket: string;
    readonly key: string;
    readonly content: Buffer;
    /** The headers it keeps (the allowed ones, x-amz-meta-*, and last-modified, etag, content-length); content type defaulted. */
    readonly metadata: Record<string, unknown>;
  }
}
