// Least privilege: every role's one inline policy, statement by statement (actions, resources,
// conditions); no wildcard action anywhere; no mutating action on Resource "*"; conditional
// statements follow the settings.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  actionsBySid,
  allStatements,
  arnText,
  asList,
  BINARIES,
  CONTEXT_VPC,
  Json,
  mustFn,
  ofType,
  refId,
  roleStatements,
  synth,
  WAF_GLOBAL_IPSET_ARN,
  WAF_IPSET_ARN,
} from './helpers';

const P = 'arn:${AWS::Partition}';
const RA = '${AWS::Region}:${AWS::AccountId}';

/** Expected statements (default settings): Sid -> [actions, resource text]. */
function expected(json: Json, binary: string): Record<string, [string[], string]> {
  const [fnId, fn] = mustFn(json, binary);
  const logGroup = refId(fn.Properties.LoggingConfig.LogGroup);
  const dlq = refId(fn.Properties.DeadLetterConfig.TargetArn);
  const table = (tag: string) =>
    ofType(json, 'AWS::DynamoDB::Table').find(([, t]) => t.Properties.Tags.some((x: Json) => x.Value === tag))![0];
  const common: Record<string, [string[], string]> = {
    WriteOwnLogs: [['logs:CreateLogStream', 'logs:PutLogEvents'], `${P}:logs:${RA}:log-group:\${${logGroup}}:*`],
    AsyncDeadLetterQueue: [['sqs:SendMessage'], `\${${dlq}.Arn}`],
  };
  assert.ok(fnId);
  switch (binary) {
    case 'close-open-ports':
      return {
        DescribeSecurityGroups: [['ec2:DescribeSecurityGroupRules', 'ec2:DescribeSecurityGroups'], '*'],
        ReadPrefixLists: [['ec2:GetManagedPrefixListEntries'], `${P}:ec2:\${AWS::Region}:*:prefix-list/*`],
        RevokeIngress: [['ec2:RevokeSecurityGroupIngress'], `${P}:ec2:${RA}:security-group/*`],
        ...common,
      };
    case 'alert-to-slack':
      return {
        DedupAndThreadMap: [
          ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
          `\${${table('alert-to-slack')}.Arn}`,
        ],
        ...common,
      };
    case 'drain-before-maintenance':
      return {
        DescribeFleet: [
          [
            'autoscaling:DescribeAutoScalingInstances',
            'ec2:DescribeInstances',
            'elasticloadbalancing:DescribeTargetGroups',
            'elasticloadbalancing:DescribeTargetHealth',
          ],
          '*',
        ],
        DrainTaggedTargetGroups: [
          ['elasticloadbalancing:DeregisterTargets', 'elasticloadbalancing:RegisterTargets'],
          `${P}:elasticloadbalancing:${RA}:targetgroup/*/*`,
        ],
        DrainTaggedAutoScalingGroups: [
          [
            'autoscaling:CompleteLifecycleAction',
            'autoscaling:EnterStandby',
            'autoscaling:ExitStandby',
            'autoscaling:RecordLifecycleActionHeartbeat',
          ],
          `${P}:autoscaling:${RA}:autoScalingGroup:*:autoScalingGroupName/*`,
        ],
        DrainState: [
          ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'],
          `\${${table('drain-before-maintenance')}.Arn}`,
        ],
        ...common,
      };
    case 'block-ssh-bruteforce':
      return {
        DescribeInstancesAndAcls: [['ec2:DescribeInstances', 'ec2:DescribeNetworkAcls'], '*'],
        NetworkAclEntries: [
          ['ec2:CreateNetworkAclEntry', 'ec2:DeleteNetworkAclEntry'],
          `${P}:ec2:${RA}:network-acl/*`,
        ],
        BlockRecords: [
          ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'],
          `\${${table('alert-to-slack')}.Arn}`,
        ],
        ...common,
      };
  }
  throw new Error(binary);
}

function shape(statements: Json[]): Record<string, [string[], string]> {
  const out: Record<string, [string[], string]> = {};
  for (const s of statements) {
    assert.equal(s.Effect, 'Allow', s.Sid);
    const resources = asList(s.Resource);
    assert.equal(resources.length, 1, `${s.Sid}: one resource`);
    out[s.Sid] = [asList<string>(s.Action).slice().sort(), arnText(resources[0])];
  }
  return out;
}

/** Read-only API calls: Describe*, Get*, List*. */
const READ_ONLY = /^[a-z0-9-]+:(Describe|Get|List)[A-Za-z]*$/;

function assertNoWildcardActions(json: Json): void {
  const statements = allStatements(json);
  assert.ok(statements.length > 0);
  for (const s of statements) {
    assert.equal(s.NotAction, undefined, 'no NotAction');
    for (const a of asList<string>(s.Action)) {
      assert.equal(typeof a, 'string');
      assert.ok(!a.includes('*'), `wildcard action ${a} in ${JSON.stringify(s)}`);
    }
  }
  for (const [, p] of ofType(json, 'AWS::Lambda::Permission')) assert.ok(!p.Properties.Action.includes('*'));
}

function assertNothingMutatesStar(json: Json): void {
  for (const s of allStatements(json)) {
    if (s.Effect !== 'Allow') continue;
    assert.equal(s.NotResource, undefined, 'no NotResource');
    if (!asList(s.Resource).includes('*')) continue;
    for (const a of asList<string>(s.Action)) {
      assert.match(a, READ_ONLY, `mutating action ${a} on Resource "*" (${s.Sid ?? 'no Sid'})`);
    }
  }
}

describe('IAM', () => {
  const { json } = synth();

  for (const binary of BINARIES) {
    it(`${binary}: its role holds exactly the template's statements`, () => {
      assert.deepEqual(shape(roleStatements(json, binary)), expected(json, binary));
    });
  }

  it('drain-before-maintenance may change only target groups and Auto Scaling groups tagged reflex:drain=true', () => {
    const st = roleStatements(json, 'drain-before-maintenance');
    for (const sid of ['DrainTaggedTargetGroups', 'DrainTaggedAutoScalingGroups']) {
      const s = st.find((x: Json) => x.Sid === sid);
      assert.deepEqual(s.Condition, { StringEquals: { 'aws:ResourceTag/reflex:drain': 'true' } }, sid);
    }
    assert.equal(
      mustFn(json, 'drain-before-maintenance')[1].Properties.Environment.Variables.REFLEX_DRAIN_TAG,
      'reflex:drain=true',
    );
    for (const s of st) {
      if (!['DrainTaggedTargetGroups', 'DrainTaggedAutoScalingGroups'].includes(s.Sid)) assert.equal(s.Condition, undefined);
    }
  });

  it('roles: only Lambda may assume them; no managed policies; no policies outside the role', () => {
    const roles = ofType(json, 'AWS::IAM::Role');
    assert.equal(roles.length, 4);
    for (const [id, r] of roles) {
      assert.deepEqual(r.Properties.AssumeRolePolicyDocument.Statement, [
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ]);
      assert.equal(r.Properties.ManagedPolicyArns, undefined, `${id}: no managed policy (no AWSLambdaBasicExecutionRole)`);
      assert.equal(r.Properties.Policies.length, 1);
    }
    assert.equal(ofType(json, 'AWS::IAM::Policy').length, 0, 'no AWS::IAM::Policy: every statement is in the role');
    assert.equal(ofType(json, 'AWS::IAM::ManagedPolicy').length, 0);
    for (const b of BINARIES) assert.equal(roleStatements(json, b).length, Object.keys(expected(json, b)).length);
  });

  it('no IAM statement anywhere has a wildcard action', () => {
    assertNoWildcardActions(json);
    // Every setting that adds statements, too.
    assertNoWildcardActions(
      synth({
        ...CONTEXT_VPC,
        reauthorizeRemainder: 'true',
        snsTopicArn: 'arn:aws:sns:eu-west-1:123456789012:reports',
        slackWebhookSecret: '/reflex/slack-webhook',
        slackBotTokenSecret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:bot-AbCdEf',
        sshWafIpSetArn: WAF_IPSET_ARN,
      }).json,
    );
  });

  it('no mutating action on Resource "*"', () => {
    assertNothingMutatesStar(json);
    assertNothingMutatesStar(synth({ ...CONTEXT_VPC, reauthorizeRemainder: 'true', sshWafIpSetArn: WAF_IPSET_ARN }).json);
  });

  it('sshWafIpSetArn adds WafIpSet: wafv2:GetIPSet and wafv2:UpdateIPSet on that IP set only; the NACL statements stay', () => {
    for (const ipSet of [WAF_IPSET_ARN, WAF_GLOBAL_IPSET_ARN]) {
      const { json: j } = synth({ sshWafIpSetArn: ipSet });
      const st = roleStatements(j, 'block-ssh-bruteforce');
      const waf = st.filter((x: Json) => asList<string>(x.Action).some((a) => a.startsWith('wafv2:')));
      assert.equal(waf.length, 1, 'one statement with wafv2 actions');
      assert.deepEqual(
        [waf[0].Sid, waf[0].Effect, [...asList<string>(waf[0].Action)].sort(), waf[0].Resource, waf[0].Condition],
        ['WafIpSet', 'Allow', ['wafv2:GetIPSet', 'wafv2:UpdateIPSet'], ipSet, undefined],
      );
      // Everything else is the default policy, NACL entries included (the sweep still
      // removes blocks recorded in a network ACL before the switch to WAF).
      const { WafIpSet, ...rest } = shape(st);
      assert.ok(WafIpSet);
      assert.deepEqual(rest, expected(j, 'block-ssh-bruteforce'));
      // No other role gets a WAF permission.
      for (const b of BINARIES.filter((x) => x !== 'block-ssh-bruteforce')) {
        assert.ok(!JSON.stringify(roleStatements(j, b)).includes('wafv2:'), b);
      }
    }
  });

  it('without sshWafIpSetArn no role has a wafv2 action', () => {
    assert.ok(!JSON.stringify(allStatements(json)).includes('wafv2:'));
    assert.ok(!roleStatements(json, 'block-ssh-bruteforce').some((x: Json) => x.Sid === 'WafIpSet'));
  });

  it('reauthorizeRemainder=true adds ec2:AuthorizeSecurityGroupIngress on security groups only', () => {
    assert.ok(!actionsBySid(roleStatements(json, 'close-open-ports')).ReauthorizeRemainder);
    const { json: j } = synth({ reauthorizeRemainder: 'true' });
    const s = roleStatements(j, 'close-open-ports').find((x: Json) => x.Sid === 'ReauthorizeRemainder');
    assert.equal(s.Action, 'ec2:AuthorizeSecurityGroupIngress');
    assert.equal(arnText(s.Resource), `${P}:ec2:${RA}:security-group/*`);
  });

  it('snsTopicArn adds sns:Publish on that topic to every function', () => {
    const topic = 'arn:aws:sns:eu-west-1:123456789012:reports';
    const { json: j } = synth({ snsTopicArn: topic });
    for (const b of BINARIES) {
      const s = roleStatements(j, b).find((x: Json) => x.Sid === 'PublishReports');
      assert.deepEqual([s?.Action, s?.Resource], ['sns:Publish', topic], b);
    }
    for (const b of BINARIES) assert.ok(!roleStatements(json, b).some((x: Json) => x.Sid === 'PublishReports'), b);
  });

  it('an SSM webhook secret grants ssm:GetParameter on that parameter; an ARN grants secretsmanager:GetSecretValue on it', () => {
    const { json: ssm } = synth({ slackWebhookSecret: '/reflex/slack-webhook' });
    for (const b of BINARIES) {
      const st = roleStatements(ssm, b);
      const s = st.find((x: Json) => x.Sid === 'ReadSlackWebhookParameter');
      assert.equal(s?.Action, 'ssm:GetParameter', b);
      assert.equal(arnText(s.Resource), `${P}:ssm:${RA}:parameter/reflex/slack-webhook`);
      assert.ok(!st.some((x: Json) => x.Sid === 'ReadSlackWebhookSecret'));
    }
    const secret = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf';
    const { json: sm } = synth({ slackWebhookSecret: secret });
    for (const b of BINARIES) {
      const st = roleStatements(sm, b);
      const s = st.find((x: Json) => x.Sid === 'ReadSlackWebhookSecret');
      assert.deepEqual([s?.Action, s?.Resource], ['secretsmanager:GetSecretValue', secret], b);
      assert.ok(!st.some((x: Json) => x.Sid === 'ReadSlackWebhookParameter'));
    }
  });

  it('the bot token secret is readable by alert-to-slack only', () => {
    const { json: j } = synth({ slackBotTokenSecret: '/reflex/slack-bot-token' });
    const s = roleStatements(j, 'alert-to-slack').find((x: Json) => x.Sid === 'ReadSlackBotTokenParameter');
    assert.equal(arnText(s.Resource), `${P}:ssm:${RA}:parameter/reflex/slack-bot-token`);
    for (const b of BINARIES.filter((x) => x !== 'alert-to-slack')) {
      assert.ok(!roleStatements(j, b).some((x: Json) => /BotToken/.test(x.Sid)), b);
    }
  });

  it('the checks catch a wildcard action and a mutating action on "*"', () => {
    const broken = structuredClone(json);
    const [, role] = ofType(broken, 'AWS::IAM::Role')[0];
    role.Properties.Policies[0].PolicyDocument.Statement.push({ Sid: 'Bad', Effect: 'Allow', Action: 'ec2:*', Resource: 'x' });
    assert.throws(() => assertNoWildcardActions(broken), /wildcard action ec2:\*/);
    role.Properties.Policies[0].PolicyDocument.Statement.push({
      Sid: 'Bad2',
      Effect: 'Allow',
      Action: 'ec2:RevokeSecurityGroupIngress',
      Resource: '*',
    });
    assert.throws(() => assertNothingMutatesStar(broken), /mutating action ec2:RevokeSecurityGroupIngress/);
  });

  it('the same checks catch a widened WafIpSet statement', () => {
    const { json: j } = synth({ sshWafIpSetArn: WAF_IPSET_ARN });
    assert.doesNotThrow(() => assertNoWildcardActions(j));
    assert.doesNotThrow(() => assertNothingMutatesStar(j));
    const widen = (change: (s: Json) => void): Json => {
      const broken = structuredClone(j);
      const s = allStatements(broken).find((x: Json) => x.Sid === 'WafIpSet');
      change(s);
      return broken;
    };
    assert.throws(
      () => assertNoWildcardActions(widen((s) => (s.Action = 'wafv2:*'))),
      /wildcard action wafv2:\*/,
    );
    assert.throws(
      () => assertNothingMutatesStar(widen((s) => (s.Resource = '*'))),
      /mutating action wafv2:UpdateIPSet on Resource "\*" \(WafIpSet\)/,
    );
  });
});
