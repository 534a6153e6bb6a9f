// The four functions: runtime, architecture, handler, sizes, logging, environment, async
// invocation settings and dead-letter queues.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BINARIES, Json, mustFn, ofType, refId, roleIdOf, SLACK_WEBHOOK, SLACK_WEBHOOK_ARN, synth, WAF_IPSET_ARN } from './helpers';

/**
 * 'TABLE': the function's state table. With the defaults (no slackWebhookSecret) alert-to-slack
 * has no REFLEX_OWN_ROLE_ARNS: see the tests of that variable below.
 */
const EXPECTED: Record<string, { memory: number; timeout: number; env: Record<string, string | 'TABLE'> }> = {
  'close-open-ports': {
    memory: 128,
    timeout: 60,
    env: {
      REFLEX_DRY_RUN: 'false',
      REFLEX_FORBIDDEN_PORTS: '22,3389',
      REFLEX_ALLOWED_CIDRS: '',
      REFLEX_EXEMPT_TAG: 'reflex:exempt=true',
      REFLEX_SLACK_WEBHOOK_SECRET: '',
      REFLEX_SNS_TOPIC_ARN: '',
      REFLEX_REAUTHORIZE_REMAINDER: 'false',
    },
  },
  'alert-to-slack': {
    memory: 128,
    timeout: 120,
    env: {
      REFLEX_DRY_RUN: 'false',
      REFLEX_SLACK_WEBHOOK_SECRET: '',
      REFLEX_SLACK_BOT_TOKEN_SECRET: '',
      REFLEX_SLACK_CHANNEL: '',
      REFLEX_SLACK_ROUTES: '',
      REFLEX_DYNAMODB_TABLE: 'TABLE',
      REFLEX_DENIED_BURST: '5/300',
      REFLEX_SNS_TOPIC_ARN: '',
    },
  },
  'drain-before-maintenance': {
    memory: 128,
    timeout: 900,
    env: {
      REFLEX_DRY_RUN: 'false',
      REFLEX_DYNAMODB_TABLE: 'TABLE',
      REFLEX_DRAIN_POLICY: '',
      REFLEX_DRAIN_TAG: 'reflex:drain=true',
      REFLEX_DRAIN_MAX_CONCURRENT: '1',
      REFLEX_SLACK_WEBHOOK_SECRET: '',
      REFLEX_SNS_TOPIC_ARN: '',
    },
  },
  'block-ssh-bruteforce': {
    memory: 128,
    timeout: 60,
    env: {
      REFLEX_DRY_RUN: 'false',
      REFLEX_DYNAMODB_TABLE: 'TABLE',
      REFLEX_ALLOWED_CIDRS: '',
      REFLEX_SSH_MAX_FAILURES: '5',
      REFLEX_SSH_WINDOW_SECS: '600',
      REFLEX_SSH_BLOCK_SECS: '86400',
      REFLEX_NACL_RULE_RANGE: '50-99',
      REFLEX_SSH_BLOCK_PRIVATE: 'false',
      REFLEX_SLACK_WEBHOOK_SECRET: '',
      REFLEX_SNS_TOPIC_ARN: '',
    },
  },
};

/** Which table each function's REFLEX_DYNAMODB_TABLE must name (by the table's tag). */
const TABLE_OF: Record<string, string> = {
  'alert-to-slack': 'alert-to-slack',
  'drain-before-maintenance': 'drain-before-maintenance',
  'block-ssh-bruteforce': 'alert-to-slack', // block records live in alert-to-slack's table
};

function tableTagged(json: Json, fn: string): string {
  const found = ofType(json, 'AWS::DynamoDB::Table').filter(([, r]) =>
    r.Properties.Tags.some((t: Json) => t.Key === 'reflex:function' && t.Value === fn),
  );
  assert.equal(found.length, 1, `one table tagged ${fn}`);
  return found[0][0];
}

/** REFLEX_OWN_ROLE_ARNS as expected: the roles' Arn, comma-joined (one: the GetAtt itself). */
function ownRoles(json: Json, binaries: string[]): Json {
  const arns = binaries.map((b) => ({ 'Fn::GetAtt': [roleIdOf(json, b), 'Arn'] }));
  return arns.length === 1 ? arns[0] : { 'Fn::Join': [',', arns] };
}

describe('functions', () => {
  const { json } = synth();

  it('deploys exactly the four functions', () => {
    const fns = ofType(json, 'AWS::Lambda::Function');
    assert.equal(fns.length, 4);
    for (const b of BINARIES) mustFn(json, b);
  });

  for (const binary of BINARIES) {
    describe(binary, () => {
      const exp = EXPECTED[binary];

      it('is provided.al2023 on arm64 with handler bootstrap, its memory and timeout', () => {
        const [, fn] = mustFn(json, binary);
        const p = fn.Properties;
        assert.equal(p.Runtime, 'provided.al2023');
        assert.deepEqual(p.Architectures, ['arm64']);
        assert.equal(p.Handler, 'bootstrap');
        assert.equal(p.MemorySize, exp.memory);
        assert.equal(p.Timeout, exp.timeout);
        assert.equal(typeof p.Description, 'string');
        // Code is an asset (the cargo lambda bundle at deploy time).
        assert.ok(p.Code.S3Bucket && p.Code.S3Key, 'code from the asset bucket');
      });

      it('has exactly its environment variables', () => {
        const [, fn] = mustFn(json, binary);
        const vars = fn.Properties.Environment.Variables;
        const expected: Record<string, unknown> = { ...exp.env };
        for (const [k, v] of Object.entries(expected)) {
          if (v === 'TABLE') expected[k] = { Ref: tableTagged(json, TABLE_OF[binary]) };
        }
        assert.deepEqual(vars, expected);
      });

      it('logs JSON to its own log group, INFO / WARN, with the retention', () => {
        const [, fn] = mustFn(json, binary);
        const lc = fn.Properties.LoggingConfig;
        assert.equal(lc.LogFormat, 'JSON');
        assert.equal(lc.ApplicationLogLevel, 'INFO');
        assert.equal(lc.SystemLogLevel, 'WARN');
        const lg = json.Resources[refId(lc.LogGroup)!];
        assert.equal(lg.Type, 'AWS::Logs::LogGroup');
        assert.deepEqual(lg.Properties.LogGroupName, {
          'Fn::Join': ['', ['/aws/lambda/', { Ref: 'AWS::StackName' }, `/${binary}`]],
        });
        assert.equal(lg.Properties.RetentionInDays, 30);
        assert.equal(lg.DeletionPolicy, 'Delete');
        assert.equal(lg.UpdateReplacePolicy, 'Delete');
      });

      it('has an encrypted SQS dead-letter queue (DeadLetterConfig) that exists', () => {
        const [, fn] = mustFn(json, binary);
        const target = fn.Properties.DeadLetterConfig?.TargetArn;
        assert.ok(target, 'DeadLetterConfig.TargetArn');
        assert.equal(target['Fn::GetAtt'][1], 'Arn');
        const q = json.Resources[refId(target)!];
        assert.equal(q?.Type, 'AWS::SQS::Queue', 'the DLQ is a queue of this stack');
        assert.equal(q.Properties.SqsManagedSseEnabled, true);
        assert.equal(q.Properties.MessageRetentionPeriod, 1209600);
      });

      it('retries async invocations twice within an hour', () => {
        const [id] = mustFn(json, binary);
        const cfgs = ofType(json, 'AWS::Lambda::EventInvokeConfig').filter(
          ([, r]) => refId(r.Properties.FunctionName) === id,
        );
        assert.equal(cfgs.length, 1);
        assert.equal(cfgs[0][1].Properties.MaximumRetryAttempts, 2);
        assert.equal(cfgs[0][1].Properties.MaximumEventAgeInSeconds, 3600);
        assert.equal(cfgs[0][1].Properties.Qualifier, '$LATEST');
      });

      it('is not in a VPC by default', () => {
        const [, fn] = mustFn(json, binary);
        assert.equal(fn.Properties.VpcConfig, undefined);
      });
    });
  }

  it('gives every function its own DLQ', () => {
    const dlqs = BINARIES.map((b) => refId(mustFn(json, b)[1].Properties.DeadLetterConfig.TargetArn));
    assert.equal(new Set(dlqs).size, 4);
  });

  it('creates the two state tables: key pk, TTL expires_at, on-demand, SSE, PITR, deleted with the stack', () => {
    const tables = ofType(json, 'AWS::DynamoDB::Table');
    assert.equal(tables.length, 2);
    for (const [, t] of tables) {
      assert.deepEqual(t.Properties.KeySchema, [{ AttributeName: 'pk', KeyType: 'HASH' }]);
      assert.deepEqual(t.Properties.AttributeDefinitions, [{ AttributeName: 'pk', AttributeType: 'S' }]);
      assert.deepEqual(t.Properties.TimeToLiveSpecification, { AttributeName: 'expires_at', Enabled: true });
      assert.equal(t.Properties.BillingMode, 'PAY_PER_REQUEST');
      assert.deepEqual(t.Properties.SSESpecification, { SSEEnabled: true });
      assert.deepEqual(t.Properties.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
      assert.equal(t.DeletionPolicy, 'Delete');
    }
  });

  it('feeds settings from context into the environment', () => {
    const { json: j } = synth({
      dryRun: 'true',
      forbiddenPorts: '22,5432-5433',
      allowedCidrs: '203.0.113.0/24',
      snsTopicArn: 'arn:aws:sns:eu-west-1:123456789012:reports',
      slackWebhookSecret: '/reflex/slack-webhook',
      drainMaxConcurrent: '3',
      kubeApiUrl: 'https://k8s.example.com',
      sshMaxFailures: '5',
      sshWindowSecs: '60',
      sshBlockSecs: '3600',
      naclRuleRange: '10-20',
      sshBlockPrivate: 'true',
      logRetentionInDays: '7',
    });
    const env = (b: string) => mustFn(j, b)[1].Properties.Environment.Variables;
    for (const b of BINARIES) {
      assert.equal(env(b).REFLEX_DRY_RUN, 'true', b);
      assert.equal(env(b).REFLEX_SNS_TOPIC_ARN, 'arn:aws:sns:eu-west-1:123456789012:reports', b);
      assert.equal(env(b).REFLEX_SLACK_WEBHOOK_SECRET, '/reflex/slack-webhook', b);
    }
    assert.equal(env('close-open-ports').REFLEX_FORBIDDEN_PORTS, '22,5432-5433');
    assert.equal(env('close-open-ports').REFLEX_ALLOWED_CIDRS, '203.0.113.0/24');
    assert.equal(env('block-ssh-bruteforce').REFLEX_ALLOWED_CIDRS, '203.0.113.0/24');
    assert.equal(env('drain-before-maintenance').REFLEX_DRAIN_MAX_CONCURRENT, '3');
    assert.equal(env('drain-before-maintenance').REFLEX_KUBE_API_URL, 'https://k8s.example.com');
    assert.deepEqual(
      [
        env('block-ssh-bruteforce').REFLEX_SSH_MAX_FAILURES,
        env('block-ssh-bruteforce').REFLEX_SSH_WINDOW_SECS,
        env('block-ssh-bruteforce').REFLEX_SSH_BLOCK_SECS,
        env('block-ssh-bruteforce').REFLEX_NACL_RULE_RANGE,
        env('block-ssh-bruteforce').REFLEX_SSH_BLOCK_PRIVATE,
      ],
      ['5', '60', '3600', '10-20', 'true'],
    );
    for (const [, lg] of ofType(j, 'AWS::Logs::LogGroup')) assert.equal(lg.Properties.RetentionInDays, 7);
  });

  it('sets REFLEX_SSH_WAF_IPSET_ARN on block-ssh-bruteforce only when sshWafIpSetArn is given', () => {
    for (const b of BINARIES) {
      assert.ok(!('REFLEX_SSH_WAF_IPSET_ARN' in mustFn(json, b)[1].Properties.Environment.Variables), b);
    }
    const { json: j } = synth({ sshWafIpSetArn: WAF_IPSET_ARN });
    const env = (b: string) => mustFn(j, b)[1].Properties.Environment.Variables;
    assert.equal(env('block-ssh-bruteforce').REFLEX_SSH_WAF_IPSET_ARN, WAF_IPSET_ARN);
    // The network ACL settings stay: the sweep still removes blocks made there before.
    assert.equal(env('block-ssh-bruteforce').REFLEX_NACL_RULE_RANGE, '50-99');
    for (const b of BINARIES.filter((x) => x !== 'block-ssh-bruteforce')) {
      assert.ok(!('REFLEX_SSH_WAF_IPSET_ARN' in env(b)), b);
    }
    assert.match(mustFn(j, 'block-ssh-bruteforce')[1].Properties.Description, /WAFv2 IP set/);
  });

  it('REFLEX_OWN_ROLE_ARNS only with slackWebhookSecret (the remediating functions post to Slack only through the webhook)', () => {
    const alertEnv = (j: Json) => mustFn(j, 'alert-to-slack')[1].Properties.Environment.Variables;
    // Without the webhook close-open-ports and block-ssh-bruteforce post nothing to Slack:
    // alert-to-slack reports their changes, even with a bot token of its own.
    const { json: botOnly } = synth({ slackBotTokenSecret: '/reflex/slack-bot-token', slackChannel: '#alerts' });
    for (const [what, j] of [['defaults', json], ['bot token alone', botOnly]] as const) {
      assert.ok(!('REFLEX_OWN_ROLE_ARNS' in alertEnv(j)), what);
      assert.equal(alertEnv(j).REFLEX_SLACK_WEBHOOK_SECRET, '', what);
    }
    // With it (SSM name or Secrets Manager ARN), both roles; the other variables are unchanged.
    for (const webhook of [SLACK_WEBHOOK, SLACK_WEBHOOK_ARN]) {
      const { json: j } = synth({ slackWebhookSecret: webhook });
      const { REFLEX_OWN_ROLE_ARNS: own, ...rest } = alertEnv(j);
      assert.deepEqual(own, ownRoles(j, ['close-open-ports', 'block-ssh-bruteforce']), webhook);
      assert.deepEqual(rest, { ...alertEnv(json), REFLEX_SLACK_WEBHOOK_SECRET: webhook }, webhook);
    }
  });

  it("alert-to-slack's REFLEX_OWN_ROLE_ARNS joins exactly the roles of close-open-ports and block-ssh-bruteforce", () => {
    const { json: j } = synth({ slackWebhookSecret: SLACK_WEBHOOK });
    const v = mustFn(j, 'alert-to-slack')[1].Properties.Environment.Variables.REFLEX_OWN_ROLE_ARNS;
    assert.deepEqual(v, {
      'Fn::Join': [
        ',',
        [
          { 'Fn::GetAtt': [roleIdOf(j, 'close-open-ports'), 'Arn'] },
          { 'Fn::GetAtt': [roleIdOf(j, 'block-ssh-bruteforce'), 'Arn'] },
        ],
      ],
    });
    // Not alert-to-slack's own role, nor drain-before-maintenance's (it changes no security group or NACL).
    const named = JSON.stringify(v);
    assert.ok(!named.includes(roleIdOf(j, 'alert-to-slack')));
    assert.ok(!named.includes(roleIdOf(j, 'drain-before-maintenance')));
  });

  it("REFLEX_OWN_ROLE_ARNS follows the switches: close-open-ports off leaves block-ssh-bruteforce's role, and the other way round", () => {
    const { json: noClose } = synth({ slackWebhookSecret: SLACK_WEBHOOK, closeOpenPorts: 'false' });
    assert.deepEqual(
      mustFn(noClose, 'alert-to-slack')[1].Properties.Environment.Variables.REFLEX_OWN_ROLE_ARNS,
      { 'Fn::GetAtt': [roleIdOf(noClose, 'block-ssh-bruteforce'), 'Arn'] },
    );
    const { json: noSsh } = synth({ slackWebhookSecret: SLACK_WEBHOOK, blockSshBruteforce: 'false' });
    assert.deepEqual(
      mustFn(noSsh, 'alert-to-slack')[1].Properties.Environment.Variables.REFLEX_OWN_ROLE_ARNS,
      { 'Fn::GetAtt': [roleIdOf(noSsh, 'close-open-ports'), 'Arn'] },
    );
  });

  it('REFLEX_OWN_ROLE_ARNS is unset when neither close-open-ports nor block-ssh-bruteforce is on', () => {
    const { json: j } = synth({ slackWebhookSecret: SLACK_WEBHOOK, closeOpenPorts: 'false', blockSshBruteforce: 'false' });
    const vars = mustFn(j, 'alert-to-slack')[1].Properties.Environment.Variables;
    assert.ok(!('REFLEX_OWN_ROLE_ARNS' in vars));
    assert.equal(vars.REFLEX_DENIED_BURST, '5/300', 'the other variables stay');
  });

  it('sets REFLEX_KUBE_API_URL only when kubeApiUrl is given', () => {
    assert.ok(!('REFLEX_KUBE_API_URL' in mustFn(json, 'drain-before-maintenance')[1].Properties.Environment.Variables));
  });

  it('sets REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL only when drainMaxConcurrentGlobal is given (unset = no account-wide cap)', () => {
    const env = (j: Json, b = 'drain-before-maintenance') => mustFn(j, b)[1].Properties.Environment.Variables;
    assert.ok(!('REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL' in env(json)));
    // An empty context value is unset, as the function reads an empty variable.
    assert.deepEqual(env(synth({ drainMaxConcurrentGlobal: '' }).json), env(json));
    for (const [given, want] of [['1', '1'], ['4', '4'], [1000, '1000']] as const) {
      const { json: j } = synth({ drainMaxConcurrentGlobal: given });
      const { REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL: cap, ...rest } = env(j);
      assert.equal(cap, want, String(given));
      assert.deepEqual(rest, env(json), 'the other variables stay');
      for (const b of BINARIES.filter((x) => x !== 'drain-before-maintenance')) {
        assert.ok(!('REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL' in env(j, b)), b);
      }
    }
  });

  it('has no CloudFormation parameters but the CDK bootstrap version', () => {
    assert.deepEqual(Object.keys(json.Parameters ?? {}), ['BootstrapVersion']);
  });

  it('is environment-agnostic', () => {
    const { stack } = synth();
    assert.deepEqual(stack.resolve(stack.account), { Ref: 'AWS::AccountId' });
    assert.deepEqual(stack.resolve(stack.region), { Ref: 'AWS::Region' });
  });
});
