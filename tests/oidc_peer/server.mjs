// A real, independent OAuth 2.0 / OpenID Connect authorization server for the tests:
// panva's oidc-provider (npm), on loopback, with one confidential client. Nothing of
// the product is in here; tests/integrations/test_oidc_peer.py starts it and sets the
// product up against it as data, through the admin.
//
//   node server.mjs '<json config>'          (or the config in OIDC_PEER_CONFIG)
//
// Config (JSON):
//   client_id, client_secret, redirect_uris       the one confidential client
//   token_endpoint_auth_method                    client_secret_basic | client_secret_post
//   rotate_refresh_token       true: a refresh answers a new refresh token and consumes
//                              the old one (reusing it revokes the whole grant)
//   comma_scopes               true: behave like Slack or GitHub: `scope` is
//                              comma-separated in requests and in token responses
//   refresh_omits_refresh_token  true: refresh responses carry no refresh_token
//   access_token_ttl           seconds (default 3600)
//   port                       default 0 (any free port; OIDC_PEER_PORT also works)
//
// Prints "listening <issuer>" on stdout once it accepts requests. GET /__stats answers
// what it counted: token requests by grant type (and errors by grant type and error
// code), client authentication methods used, revocations, userinfo requests, grants
// revoked. DELETE /__stats answers the same and starts counting again from zero.

import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

const conf = JSON.parse(process.env.OIDC_PEER_CONFIG || process.argv[2] || '{}');
const port = Number(process.env.OIDC_PEER_PORT || conf.port || 0);
const CAPABILITY_SCOPES = ['notes.read', 'notes.write'];
const CLIENT_AUTH_METHOD = conf.token_endpoint_auth_method || 'client_secret_basic';

function zeroStats() {
  return {
    token: {}, // grant_type -> requests
    token_errors: {}, // "grant_type:error" -> error responses
    client_auth: {}, // "token:client_secret_basic" -> authenticated requests
    revocation: 0, // successful revocation requests
    revocation_errors: 0,
    userinfo: 0,
    grants_revoked: 0,
  };
}

let stats = zeroStats();

function bump(obj, key) {
  obj[key] = (obj[key] || 0) + 1;
}

function spaced(scope) {
  return typeof scope === 'string' ? scope.split(',').join(' ') : scope;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return querystring.parse(Buffer.concat(chunks).toString());
}

function configuration() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    clients: [
      {
        client_id: conf.client_id,
        client_secret: conf.client_secret,
        redirect_uris: conf.redirect_uris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: CLIENT_AUTH_METHOD,
      },
    ],
    // Undeclared scopes are dropped silently: every scope the tests ask for is here.
    scopes: ['openid', 'email', 'offline_access', ...CAPABILITY_SCOPES],
    claims: { openid: ['sub'], email: ['email'] },
    pkce: { required: () => true }, // S256 is the only method oidc-provider 9 knows
    clockTolerance: 0, // the default (15 s) keeps expired tokens valid
    cookies: { keys: ['oidc-peer-test-cookie-key'] },
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' }] },
    features: {
      devInteractions: { enabled: true }, // its own login and consent pages; any login
      revocation: { enabled: true },
      userinfo: { enabled: true },
      introspection: { enabled: false },
    },
    issueRefreshToken: async (ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    rotateRefreshToken: Boolean(conf.rotate_refresh_token),
    ttl: {
      AccessToken: Number(conf.access_token_ttl || 3600),
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
      Interaction: 600,
      Session: 3600,
    },
    findAccount: async (ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, email: `${sub}@peer.example` }),
    }),
  };
}

// Before the provider:
// - comma-separated `scope` (Slack, GitHub) rewritten to spaces in the authorization
//   and token requests, when so configured;
// - the client authentication of token and revocation requests counted, and held to
//   the registered method: oidc-provider itself takes client_secret_basic and
//   client_secret_post interchangeably, many providers take only one.
// After it: counting, commas in the token responses' `scope`, and no refresh_token in
// refresh responses, as configured.
async function peerBehaviour(ctx, next) {
  if (conf.comma_scopes && ctx.path === '/auth' && ctx.method === 'GET' && ctx.query.scope) {
    ctx.query = { ...ctx.query, scope: spaced(ctx.query.scope) };
  }
  const endpoint = { '/token': 'token', '/token/revocation': 'revocation' }[ctx.path];
  if (
    (endpoint || (conf.comma_scopes && ctx.path === '/auth')) &&
    ctx.method === 'POST' &&
    ctx.is('application/x-www-form-urlencoded')
  ) {
    const form = await readForm(ctx.req);
    if (conf.comma_scopes && form.scope) form.scope = spaced(form.scope);
    // oidc-provider takes an already-parsed body from req.body.
    ctx.req.body = form;
    let used = null;
    if (/^basic /i.test(ctx.get('authorization'))) used = 'client_secret_basic';
    else if (form.client_secret) used = 'client_secret_post';
    if (endpoint && used) {
      bump(stats.client_auth, `${endpoint}:${used}`);
      if (used !== CLIENT_AUTH_METHOD) {
        ctx.status = 401;
        ctx.body = {
          error: 'invalid_client',
          error_description: `this client authenticates with ${CLIENT_AUTH_METHOD}`,
        };
        if (endpoint === 'token') {
          bump(stats.token, form.grant_type || '(none)');
          bump(stats.token_errors, `${form.grant_type || '(none)'}:invalid_client`);
        } else {
          stats.revocation_errors += 1;
        }
        return;
      }
    }
  }

  await next();

  const route = ctx.oidc?.route;
  if (route === 'token') {
    const grantType = ctx.oidc.params?.grant_type || '(none)';
    bump(stats.token, grantType);
    const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : null;
    if (ctx.status !== 200) {
      bump(stats.token_errors, `${grantType}:${body?.error || ctx.status}`);
    } else if (body) {
      if (conf.comma_scopes && typeof body.scope === 'string') {
        body.scope = body.scope.split(' ').join(',');
      }
      if (conf.refresh_omits_refresh_token && grantType === 'refresh_token') {
        delete body.refresh_token;
      }
    }
  } else if (route === 'revocation') {
    if (ctx.status === 200) stats.revocation += 1;
    else stats.revocation_errors += 1;
  } else if (route === 'userinfo') {
    stats.userinfo += 1;
  }
}

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  provider.use(peerBehaviour);
  provider.on('grant.revoked', () => {
    stats.grants_revoked += 1;
  });
  provider.on('server_error', (ctx, err) => {
    console.error('oidc-peer server_error', err);
  });
  const handle = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === '/__stats' && (req.method === 'GET' || req.method === 'DELETE')) {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(stats));
      if (req.method === 'DELETE') stats = zeroStats();
      return;
    }
    handle(req, res);
  });
  console.log(`listening ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
