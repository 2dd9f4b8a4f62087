import { defineConfig } from 'vitest/config'

// The e2e files of the second e2e project: the two that inject faults into their stack's emulator
// (provision, fleets), and files that start stacks of their own, chosen so that the two projects
// take about as long (timed one file at a time: about 6 minutes each on the 2-core CI machine).
const E2E_FAULTS_AND_OWN_STACKS = [
  'test/e2e/provision.test.ts',
  'test/e2e/fleets.test.ts',
  'test/e2e/cli.test.ts',
  'test/e2e/x509-kms.test.ts',
  'test/e2e/c-client-hostile.test.ts',
]

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/e2e/**', 'test/deploy/**'],
        },
      },
      {
        test: {
          name: 'deploy',
          include: ['test/deploy/**/*.test.ts'],
          // osls package writes the zip to the project's own .serverless/ before copying it out:
          // two packagings at once swap their artefacts, so the files run one at a time.
          fileParallelism: false,
          testTimeout: 30_000,
          hookTimeout: 240_000,
        },
      },
      // The end-to-end files in two projects, each with its own local stack (global-setup.ts), so
      // that .ci/run can run them side by side, each in its own vitest process. Within a project
      // the files run one at a time: they share its emulator, and some inject faults into it.
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          exclude: E2E_FAULTS_AND_OWN_STACKS,
          globalSetup: ['test/e2e/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 30_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'e2e-faults',
          include: E2E_FAULTS_AND_OWN_STACKS,
          globalSetup: ['test/e2e/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 30_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
