// Check and Register against a live guardrail-service from Node.js.
// GUARDRAIL_TARGET=127.0.0.1:50051 node --test test.js
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const test = require('node:test');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const ROOT = path.resolve(__dirname, '..', '..');
const target = process.env.GUARDRAIL_TARGET || '127.0.0.1:50051';

const definition = protoLoader.loadSync('guardrail/v1/guardrail.proto', {
  includeDirs: [path.join(ROOT, 'proto'), path.join(ROOT, 'third_party', 'proto')],
  keepCase: true,
  enums: String,
  longs: Number,
  defaults: true,
  oneofs: true,
});
const { GuardrailService } = grpc.loadPackageDefinition(definition).guardrail.v1;
const client = new GuardrailService(target, grpc.credentials.createInsecure());

function deadline(seconds = 5) {
  return new Date(Date.now() + seconds * 1000);
}

function check(request) {
  return new Promise((resolve, reject) => {
    client.Check(request, { deadline: deadline() }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function register(items) {
  return new Promise((resolve, reject) => {
    const answers = [];
    const call = client.Register({ deadline: deadline() });
    call.on('data', (answer) => answers.push(answer));
    call.on('error', reject);
    call.on('end', () => resolve(answers));
    for (const item of items) call.write(item);
    call.end();
  });
}

test.after(() => client.close());

test('Check masks an e-mail in a chat message', async () => {
  const response = await check({
    payload: { messages: [{ role: 'user', content: [{ text: 'write to ann.tester@example-mail.org' }] }] },
    direction: 'DIRECTION_INPUT',
  });
  assert.equal(response.decision, 'DECISION_MASK');
  assert.equal(response.masked_payload.messages[0].content[0].text, 'write to [EMAIL]');
  assert.ok(response.findings.some((f) => f.guardrail === 'pii' && f.location.path === 'messages[0].content[0].text'));
});

test('Check answers a block as an OK response, not an error', async () => {
  const key = 'AKIA' + 'QWERTYUIOPASDFGH'.replace(/[^A-Z2-7]/g, '2');
  const response = await check({ payload: { text: `my key ${key}` } });
  assert.equal(response.decision, 'DECISION_BLOCK');
});

test('Check with an unknown guardrail fails with NOT_FOUND and a status detail', async () => {
  await assert.rejects(check({ payload: { text: 'hi' }, guardrails: ['no-such-guardrail'] }), (err) => {
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.ok(err.metadata.get('grpc-status-details-bin').length > 0);
    return true;
  });
});

test('Register accepts a good guardrail and rejects a bad one on the same stream', async () => {
  const good = {
    guardrail: {
      name: 'node_ticket_ids',
      description: 'internal ticket ids',
      action: 'ACTION_MASK',
      rules: [{ id: 'ticket', category: 'internal', pattern: 'TCK-[0-9]{6}', must_match: ['TCK-123456'], must_not_match: ['TCK-12'] }],
    },
  };
  const bad = { guardrail: { name: 'node_bad', action: 'ACTION_BLOCK', rules: [{ id: 'r', category: 'c', pattern: '(unclosed' }] } };
  const answers = await register([good, bad]);
  assert.equal(answers.length, 2);
  assert.equal(answers[0].result, 'accepted');
  assert.equal(answers[0].accepted.name, 'node_ticket_ids');
  assert.equal(answers[1].result, 'error');
  assert.equal(answers[1].error.code, grpc.status.INVALID_ARGUMENT);

  const response = await check({ payload: { text: 'see TCK-654321' }, guardrails: ['node_ticket_ids'] });
  assert.equal(response.decision, 'DECISION_MASK');
});
