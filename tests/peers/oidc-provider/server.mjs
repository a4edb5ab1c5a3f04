// An OpenID Connect provider for the console's single sign-on tests: panva's oidc-provider
// (certified), on loopback, with its development login form (any account name the test
// configured, any password) and a consent page.
//
//   node server.mjs --port 0 --exit-with-stdin
//   -> prints "listening 127.0.0.1:PORT"; the issuer is http://127.0.0.1:PORT
//   POST /$configure {"clients": [...], "accounts": {"alice": {"groups": ["ins-operators"]}}}
//   -> a fresh provider with these clients and accounts (the engine's redirect URI is only
//      known once the engine listens, after the provider: so the clients come last).
//
// An account's claims are the `sub` (its name) and those given; the scope `groups` carries
// the claim `groups`, `profile` carries `name` and `preferred_username`.
import http from 'node:http';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
});

function configured(issuer, clients, accounts) {
  const provider = new Provider(issuer, {
    clients,
    findAccount: (_ctx, id) =>
      Object.hasOwn(accounts, id)
        ? { accountId: id, claims: () => ({ sub: id, preferred_username: id, ...accounts[id] }) }
        : undefined,
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'groups'],
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: ['a test provider on loopback only'] },
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<h1>oidc-provider error</h1><p id="error">${out.error}</p>`;
    },
  });
  provider.on('server_error', (_ctx, error) => console.error(error));
  return provider;
}

let handler = (_request, response) => {
  response.writeHead(503).end('not configured: POST /$configure first');
};

const server = http.createServer((request, response) => {
  if (request.method === 'POST' && request.url === '/$configure') {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      try {
        const { clients, accounts } = JSON.parse(body);
        handler = configured(issuer(), clients, accounts).callback();
        response.writeHead(204).end();
      } catch (error) {
        response.writeHead(400).end(String(error));
      }
    });
    return;
  }
  handler(request, response);
});

function issuer() {
  const { address, port } = server.address();
  return `http://${address}:${port}`;
}

server.listen(Number(values.port), '127.0.0.1', () => {
  const { address, port } = server.address();
  process.stdout.write(`listening ${address}:${port}\n`);
});

if (values['exit-with-stdin']) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
