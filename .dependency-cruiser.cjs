/**
 * The layers of ARCHITECTURE.md ("What may import what"), enforced: `npm run lint:deps` (in CI)
 * fails on any import these rules forbid. Type-only imports count too.
 */
const SERVICE = '^services/([^/]+)/[^/]+[.]service[.]ts$';
const HANDLERS = '^services/([^/]+)/[^/]+[.]handlers[.]ts$';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles make the layers meaningless.',
      from: { path: '^(src|services)/' },
      to: { circular: true },
    },
    {
      name: 'use-cases-stay-pure',
      severity: 'error',
      comment:
        'Use cases (services/*/*.service.ts) see storage and transport only through src/ports.ts: no Sequelize, pg, grpc, src/db, src/grpc, src/gen or another service.',
      from: { path: SERVICE },
      to: {
        path: [
          '^node_modules/(sequelize|pg|@grpc)/',
          '^src/(db|grpc|gen)/',
          '^src/(app|main|cli|server|client)[.]ts$',
          '^services/',
        ],
        pathNot: ['^services/$1/'],
      },
    },
    {
      name: 'use-cases-not-across-services',
      severity: 'error',
      comment: 'One service never reaches into another.',
      from: { path: '^services/([^/]+)/' },
      to: { path: '^services/', pathNot: '^services/$1/' },
    },
    {
      name: 'handlers-are-thin',
      severity: 'error',
      comment:
        'Handlers map messages to use cases: their own service, src/gen, and the gRPC adapter types, mappers and policy.',
      from: { path: HANDLERS },
      to: {
        path: '^(src|services)/',
        pathNot: [
          '^services/$1/',
          '^src/gen/',
          '^src/grpc/(adapter|mappers|policy|context)[.]ts$',
          '^src/(caller|ports)[.]ts$',
        ],
      },
    },
    {
      name: 'only-src-db-knows-the-database',
      severity: 'error',
      comment:
        'Sequelize and pg are imported by src/db only (tests and the benchmark may use pg to inspect or seed).',
      from: { path: '^(src|services)/', pathNot: '^src/db/' },
      to: { path: '^node_modules/(sequelize|pg|pg-[a-z-]+)/' },
    },
    {
      name: 'domain-core-depends-on-nothing',
      severity: 'error',
      comment: 'The domain types and rules stand alone (src/text: the Unicode rules and data they use).',
      from: { path: ['^src/(ports|errors|caller|validation|throttle)[.]ts$', '^src/text/'] },
      to: {
        path: '^(src|services|node_modules)/',
        pathNot: ['^src/(ports|errors|caller|validation|throttle)[.]ts$', '^src/text/[^/]+[.]ts$'],
      },
    },
    {
      name: 'migrations-stand-alone',
      severity: 'error',
      comment:
        'A migration reaches the database only through its context (src/db/migrations/migration.ts): no stores, Sequelize or domain code, so changing those never changes what a released migration does.',
      from: { path: '^src/db/migrations/' },
      to: { path: '^(src|services|node_modules)/', pathNot: '^src/db/migrations/' },
    },
    {
      name: 'only-the-runner-loads-migrations',
      severity: 'error',
      comment:
        'src/db/migrate.ts runs the migrations (in one transaction, under the schema lock); tests may list them.',
      from: { pathNot: ['^test/', '^src/db/migrate[.]ts$', '^src/db/migrations/'] },
      to: { path: '^src/db/migrations/' },
    },
    {
      name: 'umzug-only-in-the-runner',
      severity: 'error',
      from: { pathNot: '^src/db/migrate[.]ts$' },
      to: { path: '^node_modules/umzug/' },
    },
    {
      name: 'security-and-grpc-do-not-touch-storage',
      severity: 'error',
      comment: 'src/security and src/grpc use storage through src/ports.ts interfaces only.',
      from: { path: '^src/(security|grpc)/' },
      to: { path: '^src/db/' },
    },
    {
      name: 'ops-is-wired-by-the-root',
      severity: 'error',
      comment:
        'src/ops (metrics, the operations port) is created by app.ts or the cluster primary (main.ts) only.',
      from: { path: '^(src|services)/', pathNot: ['^src/ops/', '^src/(app|main)[.]ts$'] },
      to: { path: '^src/ops/' },
    },
    {
      name: 'only-src-ops-knows-prometheus',
      severity: 'error',
      comment: 'The watched parts tell observer interfaces; only src/ops imports prom-client.',
      from: { path: '^(src|services)/', pathNot: '^src/ops/' },
      to: { path: '^node_modules/prom-client/' },
    },
    {
      name: 'generated-code-imports-only-its-runtime',
      severity: 'error',
      comment:
        'src/gen is produced by buf + ts-proto and imports only @bufbuild/protobuf, @grpc/grpc-js and itself.',
      from: { path: '^src/gen/' },
      to: { pathNot: ['^src/gen/', '^node_modules/(@bufbuild/protobuf|@grpc/grpc-js)/'] },
    },
    {
      name: 'client-stands-alone',
      severity: 'error',
      comment: 'src/client.ts is used by other services: src/gen and grpc-js only.',
      from: { path: '^src/client[.]ts$' },
      to: { pathNot: ['^src/gen/', '^node_modules/@grpc/grpc-js/'] },
    },
    {
      name: 'entry-points-are-not-imported',
      severity: 'error',
      comment:
        'main.ts and cli.ts are process entry points; app.ts (the composition root) only for main and the tests.',
      from: { pathNot: '^test/' },
      to: { path: '^src/(main|cli)[.]ts$' },
    },
    {
      name: 'composition-root-only-for-main',
      severity: 'error',
      from: { pathNot: ['^test/', '^src/main[.]ts$'] },
      to: { path: '^src/app[.]ts$' },
    },
    {
      name: 'bench-drives-from-outside',
      severity: 'error',
      comment:
        'The benchmark uses the public client, the generated code and the embedded database helper, nothing inside the server.',
      from: { path: '^bench/' },
      to: {
        path: '^(src|services)/',
        pathNot: ['^src/client[.]ts$', '^src/gen/', '^src/db/embedded[.]ts$', '^src/logger[.]ts$'],
      },
    },
    {
      name: 'not-to-dev-dep',
      severity: 'error',
      comment:
        'Code that runs in production must not need a devDependency (the .dev.mjs bootstrap runs from sources only).',
      from: { path: '^(src|services)/', pathNot: '[.]dev[.]mjs$' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
  },
};
