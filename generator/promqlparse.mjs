// Parses PromQL with the Prometheus project's own grammar (npm @prometheus-io/lezer-promql, installed by
// scripts/bootstrap into .tools/node). argv[2]: that node_modules folder.
// stdin: lines, each a JSON list of expression strings; stdout: one line per input line, a JSON list with one
// {tree, errors} per expression. A tree node is [name, from, to, ...children] with offsets (in code points) into
// the expression as sent; errors: [{from, to}] of each span the grammar could not parse. One process serves a whole
// render or lint: the caller keeps it open and writes a line whenever it has expressions to parse.
import { createInterface } from "node:readline";
import { createRequire } from "node:module";
import path from "node:path";
const [modules] = process.argv.slice(2);
const require = createRequire(path.resolve(modules, "noop.js"));
const { parser } = require("@prometheus-io/lezer-promql");

// offsets are reported in code points (Python's string indexes), not UTF-16 units
function codePoints(text) {
  if (!/[\uD800-\uDFFF]/.test(text)) return (i) => i;
  const map = new Array(text.length + 1);
  let cp = 0;
  for (let i = 0; i <= text.length; i++) {
    map[i] = cp;
    const c = text.charCodeAt(i);
    if (!(c >= 0xd800 && c <= 0xdbff)) cp++;
  }
  return (i) => map[i];
}

function parse(text) {
  const tree = parser.parse(text);
  const at = codePoints(text);
  const errors = [];
  const stack = [];
  let root = null;
  tree.iterate({
    enter(node) {
      const error = node.type.isError;
      const item = [error ? "⚠" : node.name, at(node.from), at(node.to)];
      if (error) errors.push({ from: at(node.from), to: at(node.to) });
      if (stack.length) stack[stack.length - 1].push(item); else root = item;
      stack.push(item);
    },
    leave() { stack.pop(); },
  });
  return { tree: root, errors };
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  process.stdout.write(JSON.stringify(JSON.parse(line).map(parse)) + "\n");
}
