// Function switches (context closeOpenPorts=false etc.) and the checks on settings.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { App } from 'aws-cdk-lib';
import * as cxapi from 'aws-cdk-lib/cx-api';

import { ReflexStack } from '../lib/reflex-stack';
import { BINARIES, CONTEXT_VPC, dependencyCycle, fnOf, Json, ofType, refId, SLACK_WEBHOOK, synth, WAF_IPSET_ARN } from './helpers';

const SWITCH: Record<string, string> = {
  'close-open-ports': 'closeOpenPorts',
  'alert-to-slack': 'alertToSlack',
  'drain-before-maintenance': 'drainBeforeMaintenance',
  'block-ssh-bruteforce': 'blockSshBruteforce',
};

const PREFIX: Record<string, string> = {
  'close-open-ports': 'CloseOpenPorts',
  'alert-to-slack': 'AlertToSlack',
  'drain-before-maintenance': 'DrainBeforeMaintenance',
  'block-ssh-bruteforce': 'BlockSshBruteforce',
};

function count(json: Json, type: string): number {
  return ofType(json, type).length;
}

describe('function switches', () => {
  for (const off of BINARIES) {
    it(`${SWITCH[off]}=false removes ${off} and everything that is only its own`, () => {
      const { json } = synth({ [SWITCH[off]]: 'false' });
      assert.equal(fnOf(json, off), undefined);
      for (const other of BINARIES.filter((b) => b !== off)) assert.ok(fnOf(json, other), `${other} stays`);
      assert.equal(count(json, 'AWS::Lambda::Function'), 3);
      assert.equal(count(json, 'AWS::IAM::Role'), 3);
      assert.equal(count(json, 'AWS::Logs::LogGroup'), 3);
      assert.equal(count(json, 'AWS::Lambda::EventInvokeConfig'), 3);
      // No resource or output of its own is left behind.
      const own = new RegExp(`^${PREFIX[off]}(Function|Role|LogGroup|DLQ)`);
      assert.deepEqual(Object.keys(json.Resources).filter((id) => own.test(id)), []);
      assert.deepEqual(Object.keys(json.Outputs).filter((id) => own.test(id)), []);
      // Every rule, permission and subscription targets a function that exists.
      const fnIds = new Set(ofType(json, 'AWS::Lambda::Function').map(([id]) => id));
      for (const [, r] of ofType(json, 'AWS::Events::Rule')) assert.ok(fnIds.has(refId(r.Properties.Targets[0].Arn)!));
      for (const [, p] of ofType(json, 'AWS::Lambda::Permission')) assert.ok(fnIds.has(refId(p.Properties.FunctionName)!));
    });
  }

  it('each function has its own resources when on (the test above is not vacuous)', () => {
    const { json } = synth();
    for (const b of BINARIES) {
      for (const kind of ['Function', 'Role', 'LogGroup', 'DLQ']) {
        assert.ok(Object.keys(json.Resources).some((id) => id.startsWith(PREFIX[b] + kind)), `${b} ${kind}`);
      }
    }
  });

  it('close-open-ports off: its 3 rules go; alert-to-slack off: its 6 rules, the topic and subscription go', () => {
    assert.equal(count(synth({ closeOpenPorts: 'false' }).json, 'AWS::Events::Rule'), 11);
    const { json } = synth({ alertToSlack: 'false' });
    assert.equal(count(json, 'AWS::Events::Rule'), 8);
    assert.equal(count(json, 'AWS::SNS::Topic'), 0);
    assert.equal(count(json, 'AWS::SNS::Subscription'), 0);
    assert.equal(json.Outputs.AlarmTopicArn, undefined);
  });

  it('drain-before-maintenance off removes its table', () => {
    const { json } = synth({ drainBeforeMaintenance: 'false' });
    assert.equal(count(json, 'AWS::DynamoDB::Table'), 1);
    assert.equal(json.Outputs.DrainBeforeMaintenanceTableName, undefined);
  });

  it('block-ssh-bruteforce off removes its subscription filter', () => {
    assert.equal(count(synth({ blockSshBruteforce: 'false' }).json, 'AWS::Logs::SubscriptionFilter'), 0);
  });

  it("alert-to-slack's table exists for block-ssh-bruteforce even with alert-to-slack off", () => {
    const { json } = synth({ alertToSlack: 'false' });
    const tables = ofType(json, 'AWS::DynamoDB::Table').filter(([, t]) =>
      t.Properties.Tags.some((x: Json) => x.Value === 'alert-to-slack'),
    );
    assert.equal(tables.length, 1);
    const env = fnOf(json, 'block-ssh-bruteforce')![1].Properties.Environment.Variables;
    assert.deepEqual(env.REFLEX_DYNAMODB_TABLE, { Ref: tables[0][0] });
  });

  it('no alert-to-slack table when both alert-to-slack and block-ssh-bruteforce are off', () => {
    const { json } = synth({ alertToSlack: 'false', blockSshBruteforce: 'false' });
    assert.equal(count(json, 'AWS::DynamoDB::Table'), 1);
  });

  it('all off is an error (a stack without resources cannot be deployed)', () => {
    const allOff = {
      closeOpenPorts: 'false',
      alertToSlack: 'false',
      drainBeforeMaintenance: 'false',
      blockSshBruteforce: 'false',
    };
    assert.throws(() => synth(allOff), /Every Reflex function is switched off/);
    // Any one function on is enough; only what it needs is created.
    const { json } = synth({ ...allOff, closeOpenPorts: 'true' });
    assert.equal(count(json, 'AWS::Lambda::Function'), 1);
    assert.equal(count(json, 'AWS::DynamoDB::Table'), 0);
    assert.equal(count(json, 'AWS::SNS::Topic'), 0);
    assert.equal(count(json, 'AWS::SQS::Queue'), 2, 'its DLQ and EventDeliveryDLQ');
  });

  it('no dependency cycle with any pair of functions on (alert-to-slack names the other roles; they never name it)', () => {
    // With the webhook secret, alert-to-slack names the remediating roles (REFLEX_OWN_ROLE_ARNS).
    const configs: Record<string, unknown>[] = [
      {},
      { slackWebhookSecret: SLACK_WEBHOOK },
      { ...CONTEXT_VPC, slackWebhookSecret: SLACK_WEBHOOK, sshWafIpSetArn: WAF_IPSET_ARN, reauthorizeRemainder: 'true' },
    ];
    for (const a of BINARIES) {
      for (const b of BINARIES) {
        if (a < b) {
          const ctx: Record<string, unknown> = { slackWebhookSecret: SLACK_WEBHOOK };
          for (const x of BINARIES) if (x !== a && x !== b) ctx[SWITCH[x]] = 'false';
          configs.push(ctx);
        }
      }
    }
    for (const ctx of configs) assert.equal(dependencyCycle(synth(ctx).json), undefined, JSON.stringify(ctx));
  });

  it('the cycle check finds a cycle (a role naming alert-to-slack, which names that role)', () => {
    const broken = structuredClone(synth({ slackWebhookSecret: SLACK_WEBHOOK }).json);
    const alert = fnOf(broken, 'alert-to-slack')![0];
    const sshRole = refId(fnOf(broken, 'block-ssh-bruteforce')![1].Properties.Role)!;
    broken.Resources[sshRole].Properties.Policies[0].PolicyDocument.Statement.push({
      Sid: 'Loop',
      Effect: 'Allow',
      Action: 'lambda:GetFunction',
      Resource: { 'Fn::GetAtt': [alert, 'Arn'] },
    });
    const cycle = dependencyCycle(broken);
    assert.ok(cycle?.includes(alert) && cycle.includes(sshRole), JSON.stringify(cycle));
  });

  it('accepts booleans as well as text (cdk.json / props)', () => {
    const { json } = synth({ closeOpenPorts: false });
    assert.equal(fnOf(json, 'close-open-ports'), undefined);
    const app = new App({ context: { [cxapi.BUNDLING_STACKS]: [] } });
    const stack = new ReflexStack(app, 'Props', { functions: { drainBeforeMaintenance: false } });
    assert.deepEqual(Object.keys(stack.functions).sort(), ['alertToSlack', 'blockSshBruteforce', 'closeOpenPorts']);
  });
});

describe('settings checks', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ closeOpenPort: 'false' }, /Unknown context key "closeOpenPort"/],
    [{ closeOpenPorts: 'no' }, /closeOpenPorts="no": expected true or false/],
    [{ dryRun: 'yes' }, /dryRun/],
    [{ forbiddenPorts: '22;3389' }, /forbiddenPorts/],
    [{ allowedCidrs: 'office' }, /allowedCidrs/],
    [{ exemptTag: 'novalue' }, /exemptTag/],
    [{ slackWebhookSecret: 'slack-webhook' }, /slackWebhookSecret/],
    [{ slackChannel: 'alerts' }, /slackChannel/],
    [{ deniedBurst: '5' }, /deniedBurst/],
    [{ alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:a.fifo' }, /alarmTopicArn/],
    [{ sweepSchedule: 'daily' }, /sweepSchedule/],
    [{ drainPolicy: 'Maintenance=NOW' }, /drainPolicy/],
    [{ drainMaxConcurrent: '0' }, /drainMaxConcurrent/],
    [{ drainMaxConcurrentGlobal: '0' }, /drainMaxConcurrentGlobal=0: expected a whole number from 1 to 1000/],
    [{ drainMaxConcurrentGlobal: '1001' }, /drainMaxConcurrentGlobal=1001: expected a whole number from 1 to 1000/],
    [{ drainMaxConcurrentGlobal: 'all' }, /drainMaxConcurrentGlobal="all": expected a whole number/],
    [{ drainResumeSchedule: 'every minute' }, /drainResumeSchedule/],
    [{ kubeApiUrl: 'k8s.local' }, /kubeApiUrl/],
    [{ logRetentionInDays: '31' }, /logRetentionInDays/],
    [{ sshLogGroupName: 'bad name' }, /sshLogGroupName/],
    [{ sshMaxFailures: '0' }, /sshMaxFailures/],
    [{ sshWindowSecs: '86401' }, /sshWindowSecs/],
    [{ naclRuleRange: '99-50' }, /naclRuleRange/],
    [{ sshSweepSchedule: '5 minutes' }, /sshSweepSchedule/],
    [{ sshBlockPrivate: 'maybe' }, /sshBlockPrivate/],
    [{ sshWafIpSetArn: 'reflex-ssh' }, /sshWafIpSetArn="reflex-ssh": expected empty, or a WAFv2 IP set ARN/],
    [{ sshWafIpSetArn: 'arn:aws:wafv2:us-east-1:123456789012:regional/webacl/reflex/1f0e' }, /sshWafIpSetArn=.*IP set ARN/],
    [{ sshWafIpSetArn: 'arn:aws:wafv2:us-east-1:123456789012:regional/ipset/reflex-ssh' }, /sshWafIpSetArn=.*IP set ARN/],
    [{ sshWafIpSetArn: 'arn:aws:wafv2::123456789012:global/ipset/reflex-ssh/1f0e' }, /sshWafIpSetArn=.*IP set ARN/],
    [{ sshWafIpSetArn: 'arn:aws:waf-regional:us-east-1:123456789012:ipset/1f0e' }, /sshWafIpSetArn=.*IP set ARN/],
    [
      {
        snsTopicArn: 'arn:aws:sns:eu-west-1:123456789012:same',
        alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:same',
      },
      /alert-to-slack would receive its own messages/,
    ],
    [{ subnetIds: 'subnet-0123456789abcdef0' }, /subnetIds.*without vpcId/],
    [{ vpcId: 'vpc-0123456789abcdef0', securityGroupIds: 'sg-0123456789abcdef0', routeTableIds: 'rtb-0123456789abcdef0' }, /subnetIds/],
    [{ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0', routeTableIds: 'rtb-0123456789abcdef0' }, /securityGroupIds/],
    [{ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0', securityGroupIds: 'sg-0123456789abcdef0' }, /routeTableIds/],
    [{ vpcId: 'vpc-1', subnetIds: 'subnet-0123456789abcdef0', securityGroupIds: 'sg-0123456789abcdef0' }, /vpcId/],
  ];
  for (const [context, says] of bad) {
    it(`rejects ${JSON.stringify(context)}`, () => {
      assert.throws(() => synth(context), says);
    });
  }

  it('accepts the template defaults spelled out', () => {
    assert.doesNotThrow(() =>
      synth({
        dryRun: 'false',
        forbiddenPorts: '22,3389',
        exemptTag: 'reflex:exempt=true',
        deniedBurst: '5/300',
        sweepSchedule: 'rate(1 day)',
        drainMaxConcurrent: 1,
        drainResumeSchedule: 'rate(1 minute)',
        logRetentionInDays: 30,
        slackChannel: '#alerts',
        slackWebhookSecret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf',
      }),
    );
  });

  it('checks drainMaxConcurrentGlobal given as a stack prop like the context value, and leaves it unset by default', () => {
    const stack = (drainMaxConcurrentGlobal?: number) =>
      new ReflexStack(new App({ context: { [cxapi.BUNDLING_STACKS]: [] } }), 'Props', { settings: { drainMaxConcurrentGlobal } });
    assert.equal(stack().settings.drainMaxConcurrentGlobal, undefined);
    assert.equal(stack(2).settings.drainMaxConcurrentGlobal, 2);
    for (const bad of [0, 1001, 2.5]) {
      assert.throws(() => stack(bad), /drainMaxConcurrentGlobal=.*expected a whole number from 1 to 1000/, String(bad));
    }
  });
});
