// Triggers: every EventBridge rule with its pattern or schedule, target retry policy and
// dead-letter queue; the alarm topic and its subscription; the CloudWatch Logs subscription
// filter of block-ssh-bruteforce.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { arnText, Json, mustFn, ofType, refId, synth } from './helpers';

const NO_ERROR = [{ exists: false }];

/** Expected rules per function, from template.yaml (and the block-ssh-bruteforce spec). */
const RULES: Record<string, Json[]> = {
  'close-open-ports': [
    {
      EventPattern: {
        source: ['aws.ec2'],
        'detail-type': ['AWS API Call via CloudTrail'],
        detail: {
          eventSource: ['ec2.amazonaws.com'],
          eventName: ['AuthorizeSecurityGroupIngress', 'ModifySecurityGroupRules'],
          errorCode: NO_ERROR,
        },
      },
    },
    {
      EventPattern: {
        source: ['aws.config'],
        'detail-type': ['Config Rules Compliance Change'],
        detail: {
          messageType: ['ComplianceChangeNotification'],
          configRuleName: [
            { prefix: 'restricted-ssh' },
            { prefix: 'restricted-common-ports' },
            { prefix: 'vpc-sg-open-only-to-authorized-ports' },
            { prefix: 'securityhub-restricted-ssh-' },
            { prefix: 'securityhub-restricted-common-ports-' },
            { prefix: 'securityhub-vpc-sg-open-only-to-authorized-ports-' },
          ],
          newEvaluationResult: {
            complianceType: ['NON_COMPLIANT'],
            evaluationResultIdentifier: { evaluationResultQualifier: { resourceType: ['AWS::EC2::SecurityGroup'] } },
          },
        },
      },
    },
    { ScheduleExpression: 'rate(1 day)', Description: 'Reflex close-open-ports full sweep' },
  ],
  'alert-to-slack': [
    { EventPattern: { source: ['aws.cloudwatch'], 'detail-type': ['CloudWatch Alarm State Change'] } },
    {
      State: 'ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS',
      EventPattern: {
        source: [{ prefix: 'aws.' }],
        'detail-type': ['AWS API Call via CloudTrail'],
        detail: {
          $or: [
            { userIdentity: { type: ['Root'], invokedBy: NO_ERROR } },
            {
              errorCode: ['AccessDenied', 'AccessDeniedException', 'Client.UnauthorizedOperation', 'UnauthorizedOperation'],
            },
            {
              eventSource: ['ec2.amazonaws.com'],
              eventName: [
                'AuthorizeSecurityGroupIngress',
                'AuthorizeSecurityGroupEgress',
                'RevokeSecurityGroupIngress',
                'RevokeSecurityGroupEgress',
                'CreateSecurityGroup',
                'DeleteSecurityGroup',
                'ModifySecurityGroupRules',
                'CreateNetworkAcl',
                'CreateNetworkAclEntry',
                'DeleteNetworkAcl',
                'DeleteNetworkAclEntry',
                'ReplaceNetworkAclEntry',
                'ReplaceNetworkAclAssociation',
              ],
              errorCode: NO_ERROR,
            },
            {
              eventSource: ['iam.amazonaws.com'],
              eventName: [
                'DeleteGroupPolicy',
                'DeleteRolePolicy',
                'DeleteUserPolicy',
                'PutGroupPolicy',
                'PutRolePolicy',
                'PutUserPolicy',
                'CreatePolicy',
                'DeletePolicy',
                'CreatePolicyVersion',
                'DeletePolicyVersion',
                'SetDefaultPolicyVersion',
                'AttachRolePolicy',
                'DetachRolePolicy',
                'AttachUserPolicy',
                'DetachUserPolicy',
                'AttachGroupPolicy',
                'DetachGroupPolicy',
              ],
              errorCode: NO_ERROR,
            },
            {
              eventSource: ['cloudtrail.amazonaws.com'],
              eventName: ['StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors'],
              errorCode: NO_ERROR,
            },
          ],
        },
      },
    },
    {
      EventPattern: {
        source: ['aws.signin'],
        'detail-type': ['AWS Console Sign In via CloudTrail'],
        detail: {
          eventName: ['ConsoleLogin'],
          $or: [{ userIdentity: { type: ['Root'] } }, { responseElements: { ConsoleLogin: ['Failure'] } }],
        },
      },
    },
    {
      EventPattern: {
        source: ['aws.config'],
        'detail-type': ['Config Rules Compliance Change'],
        detail: {
          messageType: ['ComplianceChangeNotification'],
          newEvaluationResult: { complianceType: ['NON_COMPLIANT', 'COMPLIANT', 'NOT_APPLICABLE'] },
        },
      },
    },
    { EventPattern: { source: ['aws.health'], 'detail-type': ['AWS Health Event'] } },
    { EventPattern: { source: ['aws.guardduty'], 'detail-type': ['GuardDuty Finding'] } },
  ],
  'drain-before-maintenance': [
    {
      EventPattern: {
        source: ['aws.health'],
        'detail-type': ['AWS Health Event'],
        detail: { service: ['EC2'], eventTypeCategory: ['scheduledChange'] },
      },
    },
    {
      EventPattern: {
        source: ['aws.ec2'],
        'detail-type': ['EC2 Spot Instance Interruption Warning', 'EC2 Instance Rebalance Recommendation'],
      },
    },
    { EventPattern: { source: ['aws.autoscaling'], 'detail-type': ['EC2 Instance-terminate Lifecycle Action'] } },
    {
      ScheduleExpression: 'rate(1 minute)',
      Description: 'Reflex drain-before-maintenance resume tick',
      Input: '{"source":"reflex","action":"resume"}',
    },
  ],
  'block-ssh-bruteforce': [
    { ScheduleExpression: 'rate(5 minutes)', Description: 'Reflex block-ssh-bruteforce sweep of expired blocks' },
  ],
};

/** Rules whose targets invoke the function. */
function rulesOf(json: Json, binary: string): Json[] {
  const [fnId] = mustFn(json, binary);
  return ofType(json, 'AWS::Events::Rule')
    .map(([, r]) => r)
    .filter((r) => r.Properties.Targets.some((t: Json) => refId(t.Arn) === fnId));
}

/** The parts of a rule the template fixes. */
function shape(rule: Json, expected: Json): Json {
  const p = rule.Properties;
  const out: Json = {};
  if (p.EventPattern) out.EventPattern = p.EventPattern;
  if (p.ScheduleExpression) out.ScheduleExpression = p.ScheduleExpression;
  if (expected.Description !== undefined) out.Description = p.Description;
  if (p.State !== 'ENABLED') out.State = p.State;
  const input = p.Targets[0].Input;
  if (input !== undefined) out.Input = input;
  return out;
}

function eventDlqId(json: Json): string {
  const ids = ofType(json, 'AWS::SQS::Queue')
    .map(([id]) => id)
    .filter((id) => id.startsWith('EventDeliveryDLQ'));
  assert.equal(ids.length, 1, 'one EventDeliveryDLQ');
  return ids[0];
}

describe('EventBridge rules', () => {
  const { json } = synth();

  for (const [binary, expected] of Object.entries(RULES)) {
    it(`${binary}: exactly its ${expected.length} rules, with the template's patterns / schedules`, () => {
      const rules = rulesOf(json, binary);
      assert.equal(rules.length, expected.length);
      const remaining = [...expected];
      for (const rule of rules) {
        const i = remaining.findIndex((e) => {
          try {
            assert.deepEqual(shape(rule, e), e);
            return true;
          } catch {
            return false;
          }
        });
        assert.ok(i >= 0, `unexpected rule ${JSON.stringify(shape(rule, {}))}`);
        remaining.splice(i, 1);
      }
      assert.deepEqual(remaining, []);
    });
  }

  it('every rule has one target: retried 10 times within an hour, dead-lettered to EventDeliveryDLQ', () => {
    const dlq = eventDlqId(json);
    const rules = ofType(json, 'AWS::Events::Rule');
    assert.equal(rules.length, 14);
    for (const [id, r] of rules) {
      assert.equal(r.Properties.Targets.length, 1, id);
      const t = r.Properties.Targets[0];
      assert.deepEqual(t.RetryPolicy, { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 }, id);
      assert.deepEqual(t.DeadLetterConfig, { Arn: { 'Fn::GetAtt': [dlq, 'Arn'] } }, id);
    }
  });

  it('EventDeliveryDLQ: encrypted; its policy lets each rule (by ARN) and the alarm topic dead-letter, and denies plain HTTP', () => {
    const dlq = eventDlqId(json);
    const q = json.Resources[dlq];
    assert.equal(q.Properties.SqsManagedSseEnabled, true);
    assert.equal(q.Properties.MessageRetentionPeriod, 1209600);
    const policies = ofType(json, 'AWS::SQS::QueuePolicy').filter(([, p]) =>
      p.Properties.Queues.some((x: Json) => refId(x) === dlq),
    );
    assert.equal(policies.length, 1);
    const statements: Json[] = policies[0][1].Properties.PolicyDocument.Statement;
    const ruleIds = ofType(json, 'AWS::Events::Rule').map(([id]) => id).sort();
    const fromEvents = statements
      .filter((s) => s.Effect === 'Allow' && s.Principal?.Service === 'events.amazonaws.com')
      .map((s) => {
        assert.equal(s.Action, 'sqs:SendMessage');
        assert.deepEqual(s.Resource, { 'Fn::GetAtt': [dlq, 'Arn'] });
        return refId(s.Condition.ArnEquals['aws:SourceArn']);
      })
      .sort();
    assert.deepEqual(fromEvents, ruleIds);
    const fromSns = statements.filter((s) => s.Effect === 'Allow' && s.Principal?.Service === 'sns.amazonaws.com');
    assert.equal(fromSns.length, 1);
    assert.equal(refId(fromSns[0].Condition.ArnEquals['aws:SourceArn'])?.startsWith('AlarmTopic'), true);
    const deny = statements.filter((s) => s.Effect === 'Deny');
    assert.deepEqual(deny, [
      {
        Sid: 'DenyInsecureTransport',
        Effect: 'Deny',
        Principal: '*',
        Action: 'sqs:SendMessage',
        Resource: { 'Fn::GetAtt': [dlq, 'Arn'] },
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      },
    ]);
  });

  it('every rule may invoke its function (and nothing else may, but the topic and the log subscription)', () => {
    const perms = ofType(json, 'AWS::Lambda::Permission').map(([, p]) => p.Properties);
    const rules = ofType(json, 'AWS::Events::Rule');
    for (const [id, r] of rules) {
      const fn = refId(r.Properties.Targets[0].Arn);
      assert.ok(
        perms.some(
          (p) =>
            p.Principal === 'events.amazonaws.com' && refId(p.FunctionName) === fn && refId(p.SourceArn) === id,
        ),
        `permission for ${id}`,
      );
    }
    for (const p of perms) {
      assert.equal(p.Action, 'lambda:InvokeFunction');
      assert.ok(p.SourceArn, 'every permission is scoped to its source');
      assert.ok(['events.amazonaws.com', 'sns.amazonaws.com', 'logs.amazonaws.com'].includes(p.Principal), p.Principal);
    }
  });

  it('takes the schedules from context', () => {
    const { json: j } = synth({
      sweepSchedule: 'rate(6 hours)',
      drainResumeSchedule: 'rate(2 minutes)',
      sshSweepSchedule: 'rate(15 minutes)',
    });
    const schedules = ofType(j, 'AWS::Events::Rule')
      .map(([, r]) => r.Properties.ScheduleExpression)
      .filter(Boolean)
      .sort();
    assert.deepEqual(schedules, ['rate(15 minutes)', 'rate(2 minutes)', 'rate(6 hours)']);
  });
});

describe('alarm topic (alert-to-slack)', () => {
  it('is created when alarmTopicArn is empty, with the template policy, and subscribes alert-to-slack', () => {
    const { json } = synth();
    const topics = ofType(json, 'AWS::SNS::Topic');
    assert.equal(topics.length, 1);
    const [topicId, topic] = topics[0];
    assert.equal(topic.Properties.DisplayName, 'Reflex alarms to Slack');
    assert.equal(topic.Properties.KmsMasterKeyId, undefined, 'no SSE: alarms cannot publish to aws/sns');

    const [policyId, policy] = ofType(json, 'AWS::SNS::TopicPolicy')[0];
    assert.ok(policyId);
    assert.deepEqual(policy.Properties.Topics, [{ Ref: topicId }]);
    const st: Json[] = policy.Properties.PolicyDocument.Statement;
    assert.equal(st.length, 2);
    const allow = st.find((s) => s.Sid === 'AllowAccountAlarmsToPublish');
    assert.deepEqual(allow.Principal, { Service: 'cloudwatch.amazonaws.com' });
    assert.equal(allow.Action, 'sns:Publish');
    assert.deepEqual(allow.Resource, { Ref: topicId });
    assert.deepEqual(allow.Condition.StringEquals, { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } });
    assert.equal(
      arnText(allow.Condition.ArnLike['aws:SourceArn']),
      'arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*',
    );
    const deny = st.find((s) => s.Sid === 'DenyInsecureTransport');
    assert.equal(deny.Effect, 'Deny');
    assert.equal(deny.Principal, '*');
    assert.deepEqual(deny.Condition, { Bool: { 'aws:SecureTransport': 'false' } });

    const subs = ofType(json, 'AWS::SNS::Subscription');
    assert.equal(subs.length, 1);
    const sub = subs[0][1].Properties;
    assert.equal(sub.Protocol, 'lambda');
    assert.deepEqual(sub.TopicArn, { Ref: topicId });
    assert.equal(refId(sub.Endpoint), mustFn(json, 'alert-to-slack')[0]);
    assert.equal(refId(sub.RedrivePolicy.deadLetterTargetArn), eventDlqId(json));
    assert.deepEqual(json.Outputs.AlarmTopicArn.Value, { Ref: topicId });
  });

  it('is not created when alarmTopicArn is given; the given topic is subscribed instead', () => {
    const given = 'arn:aws:sns:eu-west-1:123456789012:my-alarms';
    const { json } = synth({ alarmTopicArn: given });
    assert.equal(ofType(json, 'AWS::SNS::Topic').length, 0);
    assert.equal(ofType(json, 'AWS::SNS::TopicPolicy').length, 0);
    const subs = ofType(json, 'AWS::SNS::Subscription');
    assert.equal(subs.length, 1);
    assert.equal(subs[0][1].Properties.TopicArn, given);
    const perm = ofType(json, 'AWS::Lambda::Permission').find(([, p]) => p.Properties.Principal === 'sns.amazonaws.com');
    assert.equal(perm?.[1].Properties.SourceArn, given);
    assert.equal(json.Outputs.AlarmTopicArn.Value, given);
  });
});

describe('block-ssh-bruteforce log subscription', () => {
  const FILTER = '?"Failed " ?"Invalid user" ?"[preauth]" ?"Accepted " ?"maximum authentication attempts"';

  it('subscribes the function to /var/log/secure with the sshd filter pattern', () => {
    const { json } = synth();
    const filters = ofType(json, 'AWS::Logs::SubscriptionFilter');
    assert.equal(filters.length, 1);
    const f = filters[0][1].Properties;
    assert.equal(f.LogGroupName, '/var/log/secure');
    assert.equal(f.FilterPattern, FILTER);
    const [fnId] = mustFn(json, 'block-ssh-bruteforce');
    assert.deepEqual(f.DestinationArn, { 'Fn::GetAtt': [fnId, 'Arn'] });
    // CloudWatch Logs may invoke it, for that log group only.
    const perm = ofType(json, 'AWS::Lambda::Permission').find(
      ([, p]) => p.Properties.Principal === 'logs.amazonaws.com',
    );
    assert.ok(perm);
    assert.equal(refId(perm[1].Properties.FunctionName), fnId);
    assert.equal(
      arnText(perm[1].Properties.SourceArn),
      'arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/var/log/secure:*',
    );
    assert.ok(filters[0][1].DependsOn.includes(perm[0]), 'the filter waits for the permission');
    // The log group is imported, not created (the CloudWatch agent owns it).
    const created = ofType(json, 'AWS::Logs::LogGroup').map(([, lg]) => JSON.stringify(lg.Properties.LogGroupName));
    assert.ok(!created.some((n) => n.includes('/var/log/secure')));
  });

  it('takes the log group from context sshLogGroupName', () => {
    const { json } = synth({ sshLogGroupName: '/ec2/auth.log' });
    assert.equal(ofType(json, 'AWS::Logs::SubscriptionFilter')[0][1].Properties.LogGroupName, '/ec2/auth.log');
  });
});
