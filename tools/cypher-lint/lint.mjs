#!/usr/bin/env node
// Lint Cypher statements offline with Neo4j's own grammar and semantic analysis
// (@neo4j-cypher/language-support, pinned in package.json).
//
// stdin: JSON, either a list of statements or {"statements": [...], "schema": {...}, "versions": [...]}.
//   statement: {"name": str, "query": str, "params": [names] | {name: value} | null}
//     params given  -> they are declared, so an undeclared $param is reported (catches typos);
//     params null   -> "Parameter $x is not defined." diagnostics are dropped (isNotParamError).
//   schema: optional DbSchema extras (labels, relationshipTypes, propertyKeys); with them, unknown
//     labels / types / keys come back as warnings (severity 2).
//   versions: Cypher versions to check, default ["CYPHER 5"] (the language of Neo4j 5.26 LTS).
// stdout: JSON list of diagnostics {name, version, severity, message, line, character, offset}
//   (severity 1 = error, 2 = warning). Exit 0 when linting ran (whatever it found), 2 on bad input.
import { readFileSync } from 'node:fs';
import { lintCypherQuery, isNotParamError } from '@neo4j-cypher/language-support';

function fail(msg) {
  process.stderr.write(`cypher-lint: ${msg}\n`);
  process.exit(2);
}

let input;
try {
  input = JSON.parse(readFileSync(0, 'utf8'));
} catch (e) {
  fail(`stdin is not JSON: ${e.message}`);
}
const statements = Array.isArray(input) ? input : input.statements;
if (!Array.isArray(statements)) fail('expected a list of {name, query, params} or {statements: [...]}');
const schema = (!Array.isArray(input) && input.schema) || {};
const versions = (!Array.isArray(input) && input.versions) || ['CYPHER 5'];

const out = [];
for (const [i, st] of statements.entries()) {
  const name = st.name ?? `#${i}`;
  if (typeof st.query !== 'string') fail(`statement ${JSON.stringify(name)} has no query string`);
  let parameters;
  if (Array.isArray(st.params)) parameters = Object.fromEntries(st.params.map((p) => [p, null]));
  else if (st.params && typeof st.params === 'object') parameters = st.params;
  for (const version of versions) {
    const dbSchema = { ...schema, defaultLanguage: version, ...(parameters ? { parameters } : {}) };
    let diagnostics;
    try {
      diagnostics = lintCypherQuery(st.query, dbSchema).diagnostics;
    } catch (e) {
      out.push({ name, version, severity: 1, message: `linter crashed: ${e.message}`, line: 0, character: 0, offset: 0 });
      continue;
    }
    if (!parameters) diagnostics = diagnostics.filter(isNotParamError);
    for (const d of diagnostics) {
      out.push({
        name,
        version,
        severity: d.severity,
        message: d.message,
        line: d.range.start.line + 1,
        character: d.range.start.character + 1,
        offset: d.offsets?.start ?? null,
      });
    }
  }
}
process.stdout.write(JSON.stringify(out));
