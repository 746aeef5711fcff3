export * from './float16';
export * from './onnx-model';
export * from './optimum-fixture';
export * from './weight-copies';
