// ReflexStack: the four Reflex functions as cargo-lambda-cdk RustFunctions, with the triggers,
// settings and least-privilege roles of ../../template.yaml (the SAM template), plus
// block-ssh-bruteforce. Each resource below names the template resource it mirrors.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as logsDestinations from 'aws-cdk-lib/aws-logs-destinations';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';

import {
  FUNCTIONS,
  FunctionSwitch,
  FunctionSwitches,
  NetworkSettings,
  ReflexSettings,
  resolveNetwork,
  resolveSettings,
} from './config';

export interface ReflexStackProps extends StackProps {
  /** Which functions to deploy; each defaults to on. */
  readonly functions?: FunctionSwitches;
  /** The template's Parameters; unset ones take the template's defaults. */
  readonly settings?: Partial<ReflexSettings>;
  /** Run every function in an existing VPC, with VPC endpoints. */
  readonly network?: NetworkSettings;
  /**
   * Directory of the Cargo workspace manifest (Cargo.toml) the functions are built from.
   * @default the nearest directory above this file holding a Cargo.toml (the repository root)
   */
  readonly manifestPath?: string;
}

/** block-ssh-bruteforce's CloudWatch Logs subscription filter: the sshd lines it reads. */
export const SSH_FILTER_PATTERN =
  '?"Failed " ?"Invalid user" ?"[preauth]" ?"Accepted " ?"maximum authentication attempts"';

/** The opt-in tag of drain-before-maintenance (fixed: IAM conditions name it). */
export const DRAIN_TAG_KEY = 'reflex:drain';

/** The interface endpoints created in VPC mode: construct id -> service. */
export const INTERFACE_ENDPOINTS: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
  Ec2: ec2.InterfaceVpcEndpointAwsService.EC2,
  ElasticLoadBalancing: ec2.InterfaceVpcEndpointAwsService.ELASTIC_LOAD_BALANCING,
  AutoScaling: ec2.InterfaceVpcEndpointAwsService.AUTOSCALING,
  Sns: ec2.InterfaceVpcEndpointAwsService.SNS,
  CloudWatchLogs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
  Ssm: ec2.InterfaceVpcEndpointAwsService.SSM,
  Sts: ec2.InterfaceVpcEndpointAwsService.STS,
};

const DESCRIPTION =
  'Reflex auto-remediation pack (CDK): close-open-ports revokes security-group ingress rules that ' +
  'open forbidden ports to the world; alert-to-slack turns CloudWatch alarms and security events ' +
  'into deduplicated, threaded Slack messages; drain-before-maintenance takes opted-in instances ' +
  'out of their target groups and Auto Scaling groups before maintenance; block-ssh-bruteforce ' +
  "blocks SSH brute-force sources in the subnet's network ACL, with expiry.";

/** The nearest directory at or above `from` that holds a Cargo.toml. */
export function findCargoWorkspace(from: string = __dirname): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'Cargo.toml'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Cargo.toml at or above ${from}`);
  }
}

/** `arn:${Partition}:service:${Region}:${Account}:resource`, as the template's !Sub. */
function arn(service: string, resource: string): string {
  return `arn:${Aws.PARTITION}:${service}:${Aws.REGION}:${Aws.ACCOUNT_ID}:${resource}`;
}

function statement(
  sid: string,
  actions: string[],
  resources: string[],
  conditions?: Record<string, Record<string, unknown>>,
): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid, effect: iam.Effect.ALLOW, actions, resources, conditions });
}

interface FunctionSpec {
  /** Logical-id prefix, e.g. CloseOpenPorts (template: CloseOpenPortsFunction, ...Role, ...). */
  readonly id: string;
  readonly switch: FunctionSwitch;
  readonly description: string;
  readonly timeout: Duration;
  /** Function-specific statements, before the common ones (logs, DLQ, SNS, Slack). */
  readonly statements: iam.PolicyStatement[];
  /** Statements after the common ones. */
  readonly extraStatements?: iam.PolicyStatement[];
  readonly environment: Record<string, string>;
}

export class ReflexStack extends Stack {
  /** The deployed functions, by switch. */
  public readonly functions: Partial<Record<FunctionSwitch, RustFunction>> = {};
  /** The deployed functions' roles, by switch. */
  public readonly roles: Partial<Record<FunctionSwitch, iam.Role>> = {};
  public readonly settings: ReflexSettings;

  private readonly manifestPath: string;
  private readonly vpcConfig?: {
    vpc: ec2.IVpc;
    subnets: ec2.ISubnet[];
    securityGroups: ec2.ISecurityGroup[];
  };
  private eventDeliveryDlqCache?: sqs.Queue;

  constructor(scope: Construct, id: string, props: ReflexStackProps = {}) {
    super(scope, id, { description: DESCRIPTION, ...props });
    const s = resolveSettings(props.settings);
    this.settings = s;
    const network = resolveNetwork(props.network);
    const on = (f: FunctionSwitch) => props.functions?.[f] ?? true;
    if (!(Object.keys(FUNCTIONS) as FunctionSwitch[]).some(on)) {
      // A stack without resources cannot be deployed; say why instead.
      throw new Error('Every Reflex function is switched off: nothing to deploy');
    }
    this.manifestPath = props.manifestPath ?? findCargoWorkspace();

    if (network) {
      // No lookup: the VPC, subnets and security groups are imported by id. The zones are
      // never used (the subnets are given explicitly), but the import needs a non-empty list.
      const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', { vpcId: network.vpcId, availabilityZones: Fn.getAzs() });
      this.vpcConfig = {
        vpc,
        subnets: network.subnetIds.map((sid) => ec2.Subnet.fromSubnetId(this, `Subnet-${sid}`, sid)),
        securityGroups: network.securityGroupIds.map((g) =>
          ec2.SecurityGroup.fromSecurityGroupId(this, `SecurityGroup-${g}`, g, { mutable: false }),
        ),
      };
      if (network.vpcEndpoints) this.addVpcEndpoints(network);
    }

    // AlertToSlackTable: alert-to-slack's dedup keys and thread map, and block-ssh-bruteforce's
    // block records. Created whenever either function is on.
    const alertTable =
      on('alertToSlack') || on('blockSshBruteforce') ? this.stateTable('AlertToSlackTable', 'alert-to-slack') : undefined;
    if (alertTable) {
      new CfnOutput(this, 'AlertToSlackTableName', {
        description: "DynamoDB table holding alert-to-slack's dedup keys and Slack thread map (and block-ssh-bruteforce's blocks).",
        value: alertTable.tableName,
      });
    }

    if (on('closeOpenPorts')) this.closeOpenPorts(s);
    if (on('alertToSlack')) this.alertToSlack(s, alertTable!);
    if (on('drainBeforeMaintenance')) this.drainBeforeMaintenance(s);
    if (on('blockSshBruteforce')) this.blockSshBruteforce(s, alertTable!);
    if (on('alertToSlack')) this.ignoreOwnRemediations(s);
  }

  /**
   * alert-to-slack's CloudTrail security rule also matches the security-group and NACL
   * changes Reflex makes itself, which close-open-ports (revokes ingress rules) and
   * block-ssh-bruteforce (creates / deletes NACL entries) report already: REFLEX_OWN_ROLE_ARNS
   * names their roles, whose successful changes alert-to-slack then ignores. Set after every
   * function exists; unset when neither is on. Also unset without slackWebhookSecret: those
   * two functions post to Slack only through the webhook, so without it (e.g. alert-to-slack
   * with a bot token alone) alert-to-slack is the only one to report their changes.
   * alert-to-slack's function depends on those roles, and they do not depend on it
   * (block-ssh-bruteforce's role names only the table), so there is no cycle.
   */
  private ignoreOwnRemediations(s: ReflexSettings): void {
    if (s.slackWebhookSecret === '') return;
    const own = (['closeOpenPorts', 'blockSshBruteforce'] as const)
      .map((f) => this.roles[f]?.roleArn)
      .filter((a): a is string => a !== undefined);
    if (own.length === 0) return;
    this.functions.alertToSlack!.addEnvironment('REFLEX_OWN_ROLE_ARNS', own.length === 1 ? own[0] : Fn.join(',', own));
  }

  // ---------------------------------------------------------------- shared

  /**
   * EventDeliveryDLQ: events EventBridge (and SNS) could not deliver to a function. SSE-SQS,
   * not SSE-KMS with the AWS managed key: EventBridge cannot use aws/sqs. Each rule target
   * (and the alarm-topic subscription) adds an Allow for its own source ARN to the queue policy.
   */
  private get eventDeliveryDlq(): sqs.Queue {
    if (!this.eventDeliveryDlqCache) {
      const q = this.queue('EventDeliveryDLQ');
      q.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'DenyInsecureTransport',
          effect: iam.Effect.DENY,
          principals: [new iam.StarPrincipal()],
          actions: ['sqs:SendMessage'],
          resources: [q.queueArn],
          conditions: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
      new CfnOutput(this, 'EventDeliveryDLQUrl', {
        description: 'URL of the SQS dead-letter queue for events EventBridge could not deliver.',
        value: q.queueUrl,
      });
      this.eventDeliveryDlqCache = q;
    }
    return this.eventDeliveryDlqCache;
  }

  private queue(id: string): sqs.Queue {
    return new sqs.Queue(this, id, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.DESTROY,
    });
  }

  /** A state table: key pk (S), TTL expires_at, on-demand, SSE (AWS managed key), PITR. */
  private stateTable(id: string, fn: string): dynamodb.Table {
    const table = new dynamodb.Table(this, id, {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expires_at',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Tags.of(table).add('reflex:function', fn);
    return table;
  }

  /** The statements every function's role carries after its own. */
  private commonStatements(s: ReflexSettings, logGroup: logs.LogGroup, dlq: sqs.Queue): iam.PolicyStatement[] {
    const out = [
      statement(
        'WriteOwnLogs',
        ['logs:CreateLogStream', 'logs:PutLogEvents'],
        [arn('logs', `log-group:${logGroup.logGroupName}:*`)],
      ),
      statement('AsyncDeadLetterQueue', ['sqs:SendMessage'], [dlq.queueArn]),
    ];
    if (s.snsTopicArn) out.push(statement('PublishReports', ['sns:Publish'], [s.snsTopicArn]));
    out.push(...this.secretStatements('ReadSlackWebhook', s.slackWebhookSecret));
    return out;
  }

  /**
   * Read access to a secret given as an SSM SecureString parameter name (/...) or a Secrets
   * Manager ARN. SecureStrings and secrets under the AWS managed keys need no kms:Decrypt.
   */
  private secretStatements(sidPrefix: string, secret: string): iam.PolicyStatement[] {
    if (!secret) return [];
    if (secret.startsWith('arn:')) {
      return [statement(`${sidPrefix}Secret`, ['secretsmanager:GetSecretValue'], [secret])];
    }
    return [statement(`${sidPrefix}Parameter`, ['ssm:GetParameter'], [arn('ssm', `parameter${secret}`)])];
  }

  /**
   * What Lambda needs to attach a function to the VPC (the AWSLambdaVPCAccessExecutionRole
   * actions minus logs, which WriteOwnLogs covers). DescribeNetworkInterfaces works only on
   * "*"; the mutating ones, CreateNetworkInterface included, are scoped to this account's
   * and region's EC2 resources ("arn:...:*\/*", the Lambda developer guide's example for
   * DeleteNetworkInterface), which covers the interface, subnet and security group.
   * A shared VPC (subnets owned by another account, shared through AWS RAM) needs the
   * account part widened: the subnet's ARN names its owner's account.
   */
  private vpcStatements(): iam.PolicyStatement[] {
    if (!this.vpcConfig) return [];
    return [
      statement('VpcDescribeNetworkInterfaces', ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'], ['*']),
      statement(
        'VpcNetworkInterfaceChanges',
        [
          'ec2:CreateNetworkInterface',
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        [arn('ec2', '*/*')],
      ),
    ];
  }

  /**
   * A function with its log group, async DLQ, role (one inline policy holding every
   * statement, as the template's explicit roles) and EventInvokeConfig.
   */
  private reflexFunction(s: ReflexSettings, spec: FunctionSpec): RustFunction {
    const binary = FUNCTIONS[spec.switch];
    const logGroup = new logs.LogGroup(this, `${spec.id}LogGroup`, {
      logGroupName: `/aws/lambda/${Aws.STACK_NAME}/${binary}`,
      retention: s.logRetentionInDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Async invocation failures of the function (after EventInvokeConfig retries).
    const dlq = this.queue(`${spec.id}DLQ`);

    const role = new iam.Role(this, `${spec.id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      inlinePolicies: {
        [binary]: new iam.PolicyDocument({
          statements: [
            ...spec.statements,
            ...this.commonStatements(s, logGroup, dlq),
            ...(spec.extraStatements ?? []),
            ...this.vpcStatements(),
          ],
        }),
      },
    });

    const fn = new RustFunction(this, `${spec.id}Function`, {
      manifestPath: this.manifestPath,
      binaryName: binary,
      runtime: 'provided.al2023',
      architecture: lambda.Architecture.ARM_64,
      description: spec.description,
      memorySize: 128,
      timeout: spec.timeout,
      // Every statement is in the inline policy above: CDK must not add its own (it would
      // put a second sqs:SendMessage for the DLQ into a separate DefaultPolicy).
      role: role.withoutPolicyUpdates(),
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      logGroup,
      environment: spec.environment,
      deadLetterQueue: dlq,
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
      ...(this.vpcConfig
        ? {
            vpc: this.vpcConfig.vpc,
            vpcSubnets: { subnets: this.vpcConfig.subnets },
            securityGroups: this.vpcConfig.securityGroups,
          }
        : {}),
    });
    Tags.of(fn).add('reflex:function', binary);
    this.functions[spec.switch] = fn;
    this.roles[spec.switch] = role;

    new CfnOutput(this, `${spec.id}FunctionArn`, { description: `ARN of the ${binary} function.`, value: fn.functionArn });
    new CfnOutput(this, `${spec.id}DLQUrl`, {
      description: `URL of the SQS dead-letter queue for ${binary}'s failed async invocations.`,
      value: dlq.queueUrl,
    });
    return fn;
  }

  /** An EventBridge rule targeting `fn`, with the template's RetryPolicy and DeadLetterConfig. */
  private rule(
    id: string,
    fn: lambda.IFunction,
    props: {
      eventPattern?: events.EventPattern;
      schedule?: string;
      description?: string;
      input?: Record<string, unknown>;
    },
  ): events.Rule {
    const rule = new events.Rule(this, id, {
      eventPattern: props.eventPattern,
      schedule: props.schedule ? events.Schedule.expression(props.schedule) : undefined,
      description: props.description,
    });
    rule.addTarget(
      new targets.LambdaFunction(fn, {
        event: props.input ? events.RuleTargetInput.fromObject(props.input) : undefined,
        retryAttempts: 10,
        maxEventAge: Duration.hours(1),
        deadLetterQueue: this.eventDeliveryDlq,
      }),
    );
    return rule;
  }

  /** Interface endpoints for the AWS APIs the functions call, and a DynamoDB gateway endpoint. */
  private addVpcEndpoints(network: Required<NetworkSettings>): void {
    const vpc = this.vpcConfig!.vpc;
    // HTTPS from the functions' security groups only; the endpoints need no egress.
    const endpointSg = new ec2.SecurityGroup(this, 'VpcEndpointSecurityGroup', {
      vpc,
      description: 'Reflex VPC interface endpoints: HTTPS from the Reflex functions',
      allowAllOutbound: false,
    });
    for (const g of network.securityGroupIds) {
      endpointSg.addIngressRule(ec2.Peer.securityGroupId(g), ec2.Port.tcp(443), `HTTPS from ${g}`);
    }
    // L1 endpoints: the L2 InterfaceVpcEndpoint picks one subnet per Availability Zone, which
    // needs the subnets' zones, i.e. a lookup. Give one subnet per zone (endpointSubnetIds).
    for (const [id, service] of Object.entries(INTERFACE_ENDPOINTS)) {
      new ec2.CfnVPCEndpoint(this, `${id}Endpoint`, {
        vpcId: network.vpcId,
        vpcEndpointType: 'Interface',
        serviceName: service.name,
        subnetIds: network.endpointSubnetIds,
        securityGroupIds: [endpointSg.securityGroupId],
        privateDnsEnabled: true,
      });
    }
    new ec2.CfnVPCEndpoint(this, 'DynamoDbEndpoint', {
      vpcId: network.vpcId,
      vpcEndpointType: 'Gateway',
      serviceName: ec2.GatewayVpcEndpointAwsService.DYNAMODB.name,
      routeTableIds: network.routeTableIds,
    });
  }

  // ---------------------------------------------------------------- close-open-ports

  private closeOpenPorts(s: ReflexSettings): void {
    const securityGroups = arn('ec2', 'security-group/*');
    const fn = this.reflexFunction(s, {
      id: 'CloseOpenPorts',
      switch: 'closeOpenPorts',
      description: 'Revokes security-group ingress rules that open forbidden ports to the world.',
      timeout: Duration.seconds(60),
      statements: [
        // EC2 Describe* actions support no resource-level permissions.
        statement('DescribeSecurityGroups', ['ec2:DescribeSecurityGroups', 'ec2:DescribeSecurityGroupRules'], ['*']),
        // A rule that references a managed prefix list is judged by its entries; lists may
        // be AWS-managed or shared, so any owner.
        statement('ReadPrefixLists', ['ec2:GetManagedPrefixListEntries'], [`arn:${Aws.PARTITION}:ec2:${Aws.REGION}:*:prefix-list/*`]),
        statement('RevokeIngress', ['ec2:RevokeSecurityGroupIngress'], [securityGroups]),
        ...(s.reauthorizeRemainder
          ? [statement('ReauthorizeRemainder', ['ec2:AuthorizeSecurityGroupIngress'], [securityGroups])]
          : []),
      ],
      environment: {
        REFLEX_DRY_RUN: String(s.dryRun),
        REFLEX_FORBIDDEN_PORTS: s.forbiddenPorts,
        REFLEX_ALLOWED_CIDRS: s.allowedCidrs,
        REFLEX_EXEMPT_TAG: s.exemptTag,
        REFLEX_SLACK_WEBHOOK_SECRET: s.slackWebhookSecret,
        REFLEX_SNS_TOPIC_ARN: s.snsTopicArn,
        REFLEX_REAUTHORIZE_REMAINDER: String(s.reauthorizeRemainder),
      },
    });

    // Someone opened a rule: react within seconds. Failed calls changed nothing.
    this.rule('CloseOpenPortsFunctionCloudTrailIngress', fn, {
      eventPattern: {
        source: ['aws.ec2'],
        detailType: ['AWS API Call via CloudTrail'],
        detail: {
          eventSource: ['ec2.amazonaws.com'],
          eventName: ['AuthorizeSecurityGroupIngress', 'ModifySecurityGroupRules'],
          errorCode: [{ exists: false }],
        },
      },
    });
    // AWS Config / Security Hub flagged a security group.
    this.rule('CloseOpenPortsFunctionConfigCompliance', fn, {
      eventPattern: {
        source: ['aws.config'],
        detailType: ['Config Rules Compliance Change'],
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
            evaluationResultIdentifier: {
              evaluationResultQualifier: { resourceType: ['AWS::EC2::SecurityGroup'] },
            },
          },
        },
      },
    });
    // Safety net: sweep every security group (default Scheduled Event payload).
    this.rule('CloseOpenPortsFunctionSweep', fn, {
      schedule: s.sweepSchedule,
      description: 'Reflex close-open-ports full sweep',
    });
  }

  // ---------------------------------------------------------------- alert-to-slack

  private alertToSlack(s: ReflexSettings, table: dynamodb.Table): void {
    const fn = this.reflexFunction(s, {
      id: 'AlertToSlack',
      switch: 'alertToSlack',
      description: 'Posts CloudWatch alarms and security events to Slack, deduplicated and threaded.',
      // Room for a burst queueing behind Slack's Retry-After (see template.yaml).
      timeout: Duration.seconds(120),
      statements: [
        // Item-level calls on the one table: no Scan, no Query, no table management.
        statement(
          'DedupAndThreadMap',
          ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
          [table.tableArn],
        ),
      ],
      extraStatements: this.secretStatements('ReadSlackBotToken', s.slackBotTokenSecret),
      environment: {
        REFLEX_DRY_RUN: String(s.dryRun),
        REFLEX_SLACK_WEBHOOK_SECRET: s.slackWebhookSecret,
        REFLEX_SLACK_BOT_TOKEN_SECRET: s.slackBotTokenSecret,
        REFLEX_SLACK_CHANNEL: s.slackChannel,
        REFLEX_SLACK_ROUTES: s.slackRoutes,
        REFLEX_DYNAMODB_TABLE: table.tableName,
        REFLEX_DENIED_BURST: s.deniedBurst,
        REFLEX_SNS_TOPIC_ARN: s.snsTopicArn,
      },
    });

    // AlarmTopic: created only when alarmTopicArn is empty. No SSE: CloudWatch alarms cannot
    // publish to a topic under the AWS managed key (see template.yaml).
    let topic: sns.ITopic;
    if (s.alarmTopicArn) {
      topic = sns.Topic.fromTopicArn(this, 'AlarmTopic', s.alarmTopicArn);
    } else {
      const created = new sns.Topic(this, 'AlarmTopic', { displayName: 'Reflex alarms to Slack' });
      Tags.of(created).add('reflex:function', 'alert-to-slack');
      // AlarmTopicPolicy: only this account's CloudWatch alarms; nothing over plain HTTP.
      created.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'AllowAccountAlarmsToPublish',
          effect: iam.Effect.ALLOW,
          principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
          actions: ['sns:Publish'],
          resources: [created.topicArn],
          conditions: {
            StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
            ArnLike: { 'aws:SourceArn': arn('cloudwatch', 'alarm:*') },
          },
        }),
      );
      created.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'DenyInsecureTransport',
          effect: iam.Effect.DENY,
          principals: [new iam.StarPrincipal()],
          actions: ['sns:Publish'],
          resources: [created.topicArn],
          conditions: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
      topic = created;
    }
    new CfnOutput(this, 'AlarmTopicArn', {
      description: 'SNS topic to use as the action of CloudWatch alarms that should reach Slack.',
      value: topic.topicArn,
    });
    // CloudWatch alarm actions; deliveries SNS gives up on go to EventDeliveryDLQ.
    topic.addSubscription(new subscriptions.LambdaSubscription(fn, { deadLetterQueue: this.eventDeliveryDlq }));

    const retryDeadLetter = (id: string, eventPattern: events.EventPattern) => this.rule(id, fn, { eventPattern });
    // Every alarm state change in the region, including alarms without actions.
    retryDeadLetter('AlertToSlackFunctionCloudWatchAlarm', {
      source: ['aws.cloudwatch'],
      detailType: ['CloudWatch Alarm State Change'],
    });
    // CIS-style CloudTrail monitoring in one rule ($or): root usage, access denied, and
    // successful changes to security groups, NACLs, IAM policies and CloudTrail itself.
    const security = retryDeadLetter('AlertToSlackFunctionCloudTrailSecurity', {
      // "aws." sources cannot be sent with PutEvents: no forged CloudTrail events.
      source: events.Match.prefix('aws.'),
      detailType: ['AWS API Call via CloudTrail'],
      detail: {
        $or: [
          { userIdentity: { type: ['Root'], invokedBy: [{ exists: false }] } },
          {
            errorCode: [
              'AccessDenied',
              'AccessDeniedException',
              'Client.UnauthorizedOperation',
              'UnauthorizedOperation',
            ],
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
            errorCode: [{ exists: false }],
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
            errorCode: [{ exists: false }],
          },
          {
            eventSource: ['cloudtrail.amazonaws.com'],
            eventName: ['StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors'],
            errorCode: [{ exists: false }],
          },
        ],
      },
    });
    // A plain ENABLED rule never sees read-only management events (Describe*/Get*/List*).
    // The L2 Rule has no State other than ENABLED/DISABLED: set it on the L1.
    (security.node.defaultChild as events.CfnRule).state = 'ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS';
    // Root console sign-ins and failed sign-ins.
    retryDeadLetter('AlertToSlackFunctionConsoleSignIn', {
      source: ['aws.signin'],
      detailType: ['AWS Console Sign In via CloudTrail'],
      detail: {
        eventName: ['ConsoleLogin'],
        $or: [{ userIdentity: { type: ['Root'] } }, { responseElements: { ConsoleLogin: ['Failure'] } }],
      },
    });
    // Every Config rule; NON_COMPLIANT opens a thread, COMPLIANT / NOT_APPLICABLE resolve it.
    retryDeadLetter('AlertToSlackFunctionConfigCompliance', {
      source: ['aws.config'],
      detailType: ['Config Rules Compliance Change'],
      detail: {
        messageType: ['ComplianceChangeNotification'],
        newEvaluationResult: { complianceType: ['NON_COMPLIANT', 'COMPLIANT', 'NOT_APPLICABLE'] },
      },
    });
    retryDeadLetter('AlertToSlackFunctionHealth', { source: ['aws.health'], detailType: ['AWS Health Event'] });
    retryDeadLetter('AlertToSlackFunctionGuardDuty', { source: ['aws.guardduty'], detailType: ['GuardDuty Finding'] });
  }

  // ---------------------------------------------------------------- drain-before-maintenance

  private drainBeforeMaintenance(s: ReflexSettings): void {
    // Dedup keys, drain records, drain slots and pending drains.
    const table = this.stateTable('DrainBeforeMaintenanceTable', 'drain-before-maintenance');
    new CfnOutput(this, 'DrainBeforeMaintenanceTableName', {
      description: "DynamoDB table holding drain-before-maintenance's drain records, slots and pending drains.",
      value: table.tableName,
    });
    const tagged = { StringEquals: { [`aws:ResourceTag/${DRAIN_TAG_KEY}`]: 'true' } };
    const fn = this.reflexFunction(s, {
      id: 'DrainBeforeMaintenance',
      switch: 'drainBeforeMaintenance',
      description: 'Drains opted-in instances from target groups and Auto Scaling groups before maintenance.',
      // Lambda's maximum: a drain waits for ELBv2 draining within the notice left.
      timeout: Duration.seconds(900),
      statements: [
        // Read-only calls that support no resource-level permissions.
        statement(
          'DescribeFleet',
          [
            'ec2:DescribeInstances',
            'elasticloadbalancing:DescribeTargetGroups',
            'elasticloadbalancing:DescribeTargetHealth',
            'autoscaling:DescribeAutoScalingInstances',
          ],
          ['*'],
        ),
        statement(
          'DrainTaggedTargetGroups',
          ['elasticloadbalancing:DeregisterTargets', 'elasticloadbalancing:RegisterTargets'],
          [arn('elasticloadbalancing', 'targetgroup/*/*')],
          tagged,
        ),
        statement(
          'DrainTaggedAutoScalingGroups',
          [
            'autoscaling:EnterStandby',
            'autoscaling:ExitStandby',
            'autoscaling:CompleteLifecycleAction',
            'autoscaling:RecordLifecycleActionHeartbeat',
          ],
          [arn('autoscaling', 'autoScalingGroup:*:autoScalingGroupName/*')],
          tagged,
        ),
        // Item calls and the Scan that lists pending drains, on the one table.
        statement(
          'DrainState',
          ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Scan'],
          [table.tableArn],
        ),
      ],
      environment: {
        REFLEX_DRY_RUN: String(s.dryRun),
        REFLEX_DYNAMODB_TABLE: table.tableName,
        REFLEX_DRAIN_POLICY: s.drainPolicy,
        // Must match the aws:ResourceTag conditions above.
        REFLEX_DRAIN_TAG: `${DRAIN_TAG_KEY}=true`,
        REFLEX_DRAIN_MAX_CONCURRENT: String(s.drainMaxConcurrent),
        // No account-wide cap unless given: the function takes 1 to 1000, unset = none.
        ...(s.drainMaxConcurrentGlobal !== undefined
          ? { REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL: String(s.drainMaxConcurrentGlobal) }
          : {}),
        REFLEX_SLACK_WEBHOOK_SECRET: s.slackWebhookSecret,
        REFLEX_SNS_TOPIC_ARN: s.snsTopicArn,
        // The function rejects an empty URL: set the variable only when given.
        ...(s.kubeApiUrl ? { REFLEX_KUBE_API_URL: s.kubeApiUrl } : {}),
      },
    });

    // AWS Health scheduled changes for EC2 (retirement, system reboot, maintenance).
    this.rule('DrainBeforeMaintenanceFunctionHealth', fn, {
      eventPattern: {
        source: ['aws.health'],
        detailType: ['AWS Health Event'],
        detail: { service: ['EC2'], eventTypeCategory: ['scheduledChange'] },
      },
    });
    // Spot interruption warnings and rebalance recommendations.
    this.rule('DrainBeforeMaintenanceFunctionSpotAndRebalance', fn, {
      eventPattern: {
        source: ['aws.ec2'],
        detailType: ['EC2 Spot Instance Interruption Warning', 'EC2 Instance Rebalance Recommendation'],
      },
    });
    // A terminate lifecycle hook: drain, then CompleteLifecycleAction CONTINUE.
    this.rule('DrainBeforeMaintenanceFunctionLifecycleTerminate', fn, {
      eventPattern: { source: ['aws.autoscaling'], detailType: ['EC2 Instance-terminate Lifecycle Action'] },
    });
    // The resume tick: pending drains that are due, and long waits, carry on.
    this.rule('DrainBeforeMaintenanceFunctionResume', fn, {
      schedule: s.drainResumeSchedule,
      description: 'Reflex drain-before-maintenance resume tick',
      input: { source: 'reflex', action: 'resume' },
    });
  }

  // ---------------------------------------------------------------- block-ssh-bruteforce

  private blockSshBruteforce(s: ReflexSettings, table: dynamodb.Table): void {
    const fn = this.reflexFunction(s, {
      id: 'BlockSshBruteforce',
      switch: 'blockSshBruteforce',
      description: s.sshWafIpSetArn
        ? 'Adds SSH brute-force sources to a WAFv2 IP set (web traffic only), for a limited time.'
        : "Denies SSH brute-force sources in the network ACL of the instance's subnet, for a limited time.",
      timeout: Duration.seconds(60),
      statements: [
        // Read-only calls that support no resource-level permissions: the instance's subnet
        // and that subnet's network ACL.
        statement('DescribeInstancesAndAcls', ['ec2:DescribeInstances', 'ec2:DescribeNetworkAcls'], ['*']),
        // DENY entries in, and expired ones out of, this account's network ACLs. Kept with
        // sshWafIpSetArn too: the sweep still removes NACL blocks recorded before the switch.
        statement(
          'NetworkAclEntries',
          ['ec2:CreateNetworkAclEntry', 'ec2:DeleteNetworkAclEntry'],
          [arn('ec2', 'network-acl/*')],
        ),
        // The WAFv2 alternative: read the IP set and write it back (under WAF's lock token),
        // on that one IP set.
        ...(s.sshWafIpSetArn ? [statement('WafIpSet', ['wafv2:GetIPSet', 'wafv2:UpdateIPSet'], [s.sshWafIpSetArn])] : []),
        // Block records (with expiry) in alert-to-slack's table; the Scan finds expired ones.
        statement(
          'BlockRecords',
          ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:UpdateItem', 'dynamodb:Scan'],
          [table.tableArn],
        ),
      ],
      environment: {
        REFLEX_DRY_RUN: String(s.dryRun),
        REFLEX_DYNAMODB_TABLE: table.tableName,
        REFLEX_ALLOWED_CIDRS: s.allowedCidrs,
        REFLEX_SSH_MAX_FAILURES: String(s.sshMaxFailures),
        REFLEX_SSH_WINDOW_SECS: String(s.sshWindowSecs),
        REFLEX_SSH_BLOCK_SECS: String(s.sshBlockSecs),
        REFLEX_NACL_RULE_RANGE: s.naclRuleRange,
        REFLEX_SSH_BLOCK_PRIVATE: String(s.sshBlockPrivate),
        REFLEX_SLACK_WEBHOOK_SECRET: s.slackWebhookSecret,
        REFLEX_SNS_TOPIC_ARN: s.snsTopicArn,
        // Set only when given (unset = block in the network ACL).
        ...(s.sshWafIpSetArn ? { REFLEX_SSH_WAF_IPSET_ARN: s.sshWafIpSetArn } : {}),
      },
    });

    // sshd's lines, shipped to CloudWatch Logs by the CloudWatch agent (imported: the agent
    // owns the log group). A log group takes at most two subscription filters.
    const sshLog = logs.LogGroup.fromLogGroupName(this, 'SshLogGroup', s.sshLogGroupName);
    new logs.SubscriptionFilter(this, 'BlockSshBruteforceFunctionSshLogs', {
      logGroup: sshLog,
      destination: new logsDestinations.LambdaDestination(fn),
      filterPattern: logs.FilterPattern.literal(SSH_FILTER_PATTERN),
    });
    // The sweep of expired blocks (the default Scheduled Event payload, no input).
    this.rule('BlockSshBruteforceFunctionSweep', fn, {
      schedule: s.sshSweepSchedule,
      description: 'Reflex block-ssh-bruteforce sweep of expired blocks',
    });
  }
}
