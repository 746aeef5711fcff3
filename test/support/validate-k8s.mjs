// Validates every object of the given Kubernetes YAML files against its API schema with
// kubernetes-models (and KEDA's with @kubernetes-models/keda); prints the problems as JSON.
// A script of its own because those packages are ES modules (jest runs CommonJS).
//   node test/support/validate-k8s.mjs infra/k8s/*.yaml
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

/** The module of an object's model: core `v1` and named groups in kubernetes-models, KEDA apart. */
function modelModule(apiVersion, kind) {
  if (apiVersion.startsWith('keda.sh/')) return `@kubernetes-models/keda/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

const problems = [];
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const object = doc.toJS();
    if (!object) continue;
    const where = { file, kind: object.kind, name: object.metadata?.name };
    try {
      const { [object.kind]: Model } = await import(modelModule(object.apiVersion, object.kind));
      new Model(object).validate();
    } catch (err) {
      problems.push({ ...where, problem: err.message });
    }
  }
}
console.log(JSON.stringify(problems));
