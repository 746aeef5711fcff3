// Lints an OpenAPI document with Redocly's rules as redocly.yaml sets them; prints the problems as
// JSON. A script of its own because @redocly/openapi-core is an ES module (jest runs CommonJS).
//   node test/support/lint-openapi.mjs openapi.json
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { lintFromString, loadConfig } from '@redocly/openapi-core';

const config = await loadConfig({ configPath: fileURLToPath(new URL('../../redocly.yaml', import.meta.url)) });
const problems = await lintFromString({ source: readFileSync(process.argv[2], 'utf8'), absoluteRef: 'openapi.json', config });
console.log(JSON.stringify(problems.map((p) => ({ severity: p.severity, rule: p.ruleId, message: p.message, at: p.location?.[0]?.pointer }))));
