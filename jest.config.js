/** Jest: TypeScript through @swc/jest; workspace packages resolved to their sources. */
module.exports = {
  testEnvironment: '<rootDir>/test/support/native-typed-arrays-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  moduleNameMapper: {
    '^@farm/(contracts|platform|pipeline)$': '<rootDir>/packages/$1/src',
    '^@farm/(api|worker|farm)$': '<rootDir>/apps/$1/src',
  },
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60000,
  // Model inference saturates both cores; files run one at a time.
  maxWorkers: 1,
};
