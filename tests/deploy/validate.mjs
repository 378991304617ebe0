// Validates Kubernetes objects (a JSON array on stdin) against the Kubernetes
// schemas of the npm package kubernetes-models: each object's own model
// (found by apiVersion and kind) checks types, required fields and enums.
// Those schemas let unknown fields through, which the API server would drop
// with at most a warning (a misspelt `timeoutSecond` silently does nothing),
// so field names are checked too, strictly, against the models' declared
// properties. Prints one line per problem; exits 1 if there is any.
import { readFileSync } from "node:fs";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const declared = new Map(); // .d.ts file -> { props: Map(name -> type), imports: Map(type -> file) }

// Declaration files by path: the packages' "exports" do not list them.
function resolveFrom(file, spec) {
  const base = spec.startsWith(".") ? path.resolve(path.dirname(file), spec) : path.join(here, "node_modules", spec);
  return base.replace(/\.js$/, "") + ".d.ts";
}

// The properties a model declares ("name"?: Type;) and where the types it
// names are declared.
function declarations(file) {
  if (declared.has(file)) return declared.get(file);
  const text = readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/import \{ ([^}]+) \} from "([^"]+)"/g)) {
    for (const name of m[1].split(",").map((s) => s.trim())) imports.set(name, resolveFrom(file, m[2]));
  }
  const props = new Map();
  const body = text.match(/export interface I\w+(?: extends [\w, ]+)? \{([\s\S]*?)\n\}/);
  let depth = 0; // inside an inline object type (a map such as labels): not a field
  for (const line of body ? body[1].split("\n") : []) {
    const m = depth === 0 && line.match(/^\s+"([^"]+)"\??: (.+?);?$/);
    if (m) props.set(m[1], m[2].endsWith("{") ? "map" : m[2]);
    depth += (line.match(/\{/g) || []).length - (line.match(/\}/g) || []).length;
  }
  const entry = { props, imports };
  declared.set(file, entry);
  return entry;
}

function checkFields(value, file, where, problems) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  const { props, imports } = declarations(file);
  if (props.size === 0) return; // a free-form map or a type without declared fields
  for (const [key, child] of Object.entries(value)) {
    const type = props.get(key);
    if (type === undefined) {
      problems.push(`${where}.${key}: unknown field`);
      continue;
    }
    const element = type.match(/^Array<(I\w+)>$/);
    const named = element ? element[1] : type.match(/^I\w+$/) ? type : null;
    if (named === null || !imports.has(named)) continue;
    const items = element ? (Array.isArray(child) ? child : []) : [child];
    items.forEach((item, i) =>
      checkFields(item, imports.get(named), element ? `${where}.${key}[${i}]` : `${where}.${key}`, problems));
  }
}

async function validate(object) {
  const [group, version] = object.apiVersion.includes("/") ? object.apiVersion.split("/") : [null, object.apiVersion];
  const module = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  const name = `${object.kind} ${object.metadata?.name ?? "?"}`;
  let models;
  try {
    models = await import(module);
  } catch {
    return [`${name}: no schema for apiVersion ${object.apiVersion}`];
  }
  const Model = models[object.kind];
  if (Model === undefined) return [`${name}: no kind ${object.kind} in ${object.apiVersion}`];
  const problems = [];
  try {
    new Model(object).validate();
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
  }
  const file = path.join(here, "node_modules", module, `${object.kind}.d.ts`);
  checkFields(object, file, name, problems);
  return problems;
}

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const object of objects) {
  for (const problem of await validate(object)) {
    console.log(problem);
    failed++;
  }
}
console.log(`${objects.length} objects, ${failed} problems`);
process.exit(failed ? 1 : 0);
