export { FarmWorker, FarmWorkerOptions, DEFAULT_MODEL_DIR } from './farm-worker';
export { RateMeter } from './rate-meter';
