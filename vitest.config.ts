import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Interop tests spawn Python; keep files in parallel but bounded on 2-core machines.
    maxWorkers: 2,
  },
});
