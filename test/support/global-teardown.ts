export default async function globalTeardown(): Promise<void> {
  await globalThis.__FARM_S3__?.close();
}
