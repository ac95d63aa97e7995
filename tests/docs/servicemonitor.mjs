// Validate a ServiceMonitor (JSON on disk) against the schema @kubernetes-models/prometheus-operator ships.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [modules, file] = process.argv.slice(2);
const entry = pathToFileURL(`${modules}/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js`);
const { ServiceMonitor } = await import(entry.href);
const doc = JSON.parse(readFileSync(file, "utf8"));
try {
  new ServiceMonitor(doc).validate();
  console.log("valid");
} catch (e) {
  console.log(String(e.message || e));
  process.exit(1);
}
