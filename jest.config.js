/**
 * Jest: TypeScript through ts-jest (transpile only: `tsc -b` type-checks before the tests run);
 * workspace packages resolved to their sources.
 */
module.exports = {
  testEnvironment: '<rootDir>/test/support/native-typed-arrays-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      {
        diagnostics: false,
        tsconfig: { module: 'commonjs', target: 'es2022', esModuleInterop: true, isolatedModules: true, sourceMap: true },
      },
    ],
  },
  moduleNameMapper: {
    '^@farm/(contracts|platform|pipeline|client|model-tools)$': '<rootDir>/packages/$1/src',
    '^@farm/(api|worker|farm|cli|weights)$': '<rootDir>/apps/$1/src',
  },
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  // Every answer from a watched farm API is checked against its OpenAPI document.
  setupFilesAfterEnv: ['<rootDir>/test/support/contract-fetch.ts'],
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60000,
  // Model inference saturates both cores; files run one at a time.
  maxWorkers: 1,
};
