// Validates custom resources against the CRD schemas compiled in @kubernetes-models packages.
// stdin: JSON list of manifests; stdout: JSON list of {index, errors}; exit 0.
import { readFileSync, existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";
const [modules] = process.argv.slice(2);
const docs = JSON.parse(readFileSync(0, "utf8"));
const GROUPS = { "monitoring.coreos.com": ["@kubernetes-models/prometheus-operator", "ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoring"] };
const out = [];
for (const [index, doc] of docs.entries()) {
  const [group, version] = String(doc.apiVersion || "").split("/");
  const known = GROUPS[group];
  if (!known || !version) { out.push({ index, missing: true, errors: [] }); continue; }
  const file = path.join(modules, known[0], "_schemas", known[1] + version[0].toUpperCase() + version.slice(1) + doc.kind + ".js");
  if (!existsSync(file)) { out.push({ index, missing: true, errors: [] }); continue; }
  const { validate } = await import(pathToFileURL(file).href);
  const ok = validate(doc);
  out.push({ index, schema: path.basename(file), errors: ok ? [] : validate.errors.map(e => `${e.instancePath || "/"}: ${e.message || e.keyword} ${JSON.stringify(e.params)}`) });
}
process.stdout.write(JSON.stringify(out));
