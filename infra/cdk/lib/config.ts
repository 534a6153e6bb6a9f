// Settings of the Reflex stack: what template.yaml takes as CloudFormation Parameters is
// taken here at synth time, from CDK context (`-c key=value`, cdk.json) or stack props, so
// `cdk synth` needs no input and the template has no Parameters of its own. Values are
// checked against the same constraints as the template's AllowedPattern / AllowedValues.

import type { Node } from 'constructs';

/** The functions of the pack, by their context switch. */
export const FUNCTIONS = {
  closeOpenPorts: 'close-open-ports',
  alertToSlack: 'alert-to-slack',
  drainBeforeMaintenance: 'drain-before-maintenance',
  blockSshBruteforce: 'block-ssh-bruteforce',
} as const;

export type FunctionSwitch = keyof typeof FUNCTIONS;
export const FUNCTION_SWITCHES = Object.keys(FUNCTIONS) as FunctionSwitch[];

/** Which functions to deploy; a missing key means on. */
export type FunctionSwitches = Partial<Record<FunctionSwitch, boolean>>;

/** The template's Parameters (camelCase), plus block-ssh-bruteforce's settings. */
export interface ReflexSettings {
  /** REFLEX_DRY_RUN of every function (template: DryRun). */
  readonly dryRun: boolean;
  /** close-open-ports: ports or ranges never to be open to the world (ForbiddenPorts). */
  readonly forbiddenPorts: string;
  /** CIDRs that never count as public (AllowedCidrs); block-ssh-bruteforce never blocks them. */
  readonly allowedCidrs: string;
  /** close-open-ports: key=value tag exempting a security group (ExemptTag). */
  readonly exemptTag: string;
  /** SSM SecureString name (/...) or Secrets Manager ARN of the Slack webhook; empty = no Slack. */
  readonly slackWebhookSecret: string;
  /** alert-to-slack: SSM name or Secrets Manager ARN of the Slack bot token. */
  readonly slackBotTokenSecret: string;
  /** alert-to-slack: default channel (#name or id). */
  readonly slackChannel: string;
  /** alert-to-slack: routing table. */
  readonly slackRoutes: string;
  /** alert-to-slack: COUNT/SECONDS of AccessDenied errors that make one alert. */
  readonly deniedBurst: string;
  /** alert-to-slack: existing alarm topic; empty = the stack creates one. */
  readonly alarmTopicArn: string;
  /** SNS topic for remediation reports; empty = no SNS. */
  readonly snsTopicArn: string;
  /** close-open-ports: schedule of the full sweep. */
  readonly sweepSchedule: string;
  /** close-open-ports: re-authorize the remainder of a revoked wide rule. */
  readonly reauthorizeRemainder: boolean;
  /** drain-before-maintenance: REFLEX_DRAIN_POLICY. */
  readonly drainPolicy: string;
  /** drain-before-maintenance: REFLEX_DRAIN_MAX_CONCURRENT. */
  readonly drainMaxConcurrent: number;
  /**
   * drain-before-maintenance: REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL, drains at once in the whole
   * account across groups (template: DrainMaxConcurrentGlobal, where 0 = none). Unset = no such
   * cap: the variable is not set.
   */
  readonly drainMaxConcurrentGlobal?: number;
  /** drain-before-maintenance: schedule of the resume tick. */
  readonly drainResumeSchedule: string;
  /** drain-before-maintenance: Kubernetes API server URL; empty = variable not set. */
  readonly kubeApiUrl: string;
  /** Retention of every function's log group. */
  readonly logRetentionInDays: number;
  /** block-ssh-bruteforce: the log group holding sshd's lines (imported, not created). */
  readonly sshLogGroupName: string;
  /** block-ssh-bruteforce: REFLEX_SSH_MAX_FAILURES. */
  readonly sshMaxFailures: number;
  /** block-ssh-bruteforce: REFLEX_SSH_WINDOW_SECS. */
  readonly sshWindowSecs: number;
  /** block-ssh-bruteforce: REFLEX_SSH_BLOCK_SECS. */
  readonly sshBlockSecs: number;
  /** block-ssh-bruteforce: REFLEX_NACL_RULE_RANGE. */
  readonly naclRuleRange: string;
  /** block-ssh-bruteforce: REFLEX_SSH_BLOCK_PRIVATE. */
  readonly sshBlockPrivate: boolean;
  /** block-ssh-bruteforce: schedule of the sweep of expired blocks. */
  readonly sshSweepSchedule: string;
  /**
   * block-ssh-bruteforce: REFLEX_SSH_WAF_IPSET_ARN, a WAFv2 IP set to add sources to instead
   * of the subnet's network ACL; empty = network ACL (variable not set).
   */
  readonly sshWafIpSetArn: string;
}

export const DEFAULT_SETTINGS: ReflexSettings = {
  dryRun: false,
  forbiddenPorts: '22,3389',
  allowedCidrs: '',
  exemptTag: 'reflex:exempt=true',
  slackWebhookSecret: '',
  slackBotTokenSecret: '',
  slackChannel: '',
  slackRoutes: '',
  deniedBurst: '5/300',
  alarmTopicArn: '',
  snsTopicArn: '',
  sweepSchedule: 'rate(1 day)',
  reauthorizeRemainder: false,
  drainPolicy: '',
  drainMaxConcurrent: 1,
  drainResumeSchedule: 'rate(1 minute)',
  kubeApiUrl: '',
  logRetentionInDays: 30,
  sshLogGroupName: '/var/log/secure',
  sshMaxFailures: 5,
  sshWindowSecs: 600,
  sshBlockSecs: 86400,
  naclRuleRange: '50-99',
  sshBlockPrivate: false,
  sshSweepSchedule: 'rate(5 minutes)',
  sshWafIpSetArn: '',
};

/** Private networking. With a vpcId every function runs in the VPC. */
export interface NetworkSettings {
  readonly vpcId?: string;
  /** Subnets of the functions (required with vpcId). */
  readonly subnetIds?: string[];
  /** Security groups of the functions (required with vpcId). */
  readonly securityGroupIds?: string[];
  /** Route tables that get the DynamoDB gateway endpoint (required when endpoints are created). */
  readonly routeTableIds?: string[];
  /** Subnets of the interface endpoints, at most one per Availability Zone; default subnetIds. */
  readonly endpointSubnetIds?: string[];
  /** Create the VPC endpoints (default true). Turn off when the VPC already has them. */
  readonly vpcEndpoints?: boolean;
}

const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
  3288, 3653,
];

const SECRET_PATTERN =
  /^$|^\/[A-Za-z0-9_.\-/]+$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$/;
const SCHEDULE_PATTERN = /^(rate|cron)\(.+\)$/;

/** Pattern checks, taken from template.yaml's AllowedPattern / MaxLength. */
const STRING_RULES: { [K in keyof ReflexSettings]?: { pattern?: RegExp; maxLength?: number; says: string } } = {
  forbiddenPorts: {
    pattern:
      /^$|^\s*[0-9]{1,5}(\s*-\s*[0-9]{1,5})?(\s*,\s*[0-9]{1,5}(\s*-\s*[0-9]{1,5})?)*\s*$/,
    says: 'comma-separated ports or ranges, e.g. 22,3389,5432-5433',
  },
  allowedCidrs: {
    pattern: /^[0-9A-Fa-f:./,\s]*$/,
    says: 'comma-separated IPv4/IPv6 CIDRs, e.g. 203.0.113.0/24',
  },
  exemptTag: { pattern: /^$|^[^=]+=.+$/, says: 'key=value, e.g. reflex:exempt=true' },
  slackWebhookSecret: {
    pattern: SECRET_PATTERN,
    says: 'empty, an SSM SecureString parameter name starting with "/", or a Secrets Manager secret ARN',
  },
  slackBotTokenSecret: {
    pattern: SECRET_PATTERN,
    says: 'empty, an SSM SecureString parameter name starting with "/", or a Secrets Manager secret ARN',
  },
  slackChannel: {
    pattern: /^$|^#[^\s#,;]{1,80}$|^[CGD][A-Z0-9]{6,}$/,
    says: 'empty, a channel name such as #alerts, or a channel id such as C0123456',
  },
  slackRoutes: { maxLength: 2048, says: 'at most 2048 characters' },
  deniedBurst: { pattern: /^[1-9][0-9]{0,3}\/[1-9][0-9]{0,5}$/, says: 'COUNT/SECONDS, e.g. 5/300' },
  alarmTopicArn: {
    pattern: /^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$/,
    says: 'empty or a (standard, not FIFO) SNS topic ARN',
  },
  snsTopicArn: {
    pattern: /^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+(\.fifo)?$/,
    says: 'empty or an SNS topic ARN',
  },
  sweepSchedule: { pattern: SCHEDULE_PATTERN, says: 'an EventBridge schedule expression, e.g. rate(1 day)' },
  drainPolicy: {
    pattern: /^[a-z0-9:=,\s-]*$/,
    maxLength: 1024,
    says: 'comma-separated kind=rule entries, e.g. freeze=ignore-under:60, maintenance=before:900',
  },
  drainResumeSchedule: {
    pattern: SCHEDULE_PATTERN,
    says: 'an EventBridge schedule expression, e.g. rate(1 minute)',
  },
  sshSweepSchedule: {
    pattern: SCHEDULE_PATTERN,
    says: 'an EventBridge schedule expression, e.g. rate(5 minutes)',
  },
  kubeApiUrl: { pattern: /^$|^https?:\/\/[^\s,]+$/, says: 'empty, or the Kubernetes API server URL (https://...)' },
  sshLogGroupName: {
    pattern: /^[.\-_/#A-Za-z0-9]{1,512}$/,
    says: 'a CloudWatch Logs log group name, e.g. /var/log/secure',
  },
  // A WAFv2 IP set ARN, as block-ssh-bruteforce's IpSetRef::parse reads it, with WAF's
  // name characters and a lowercase hex id (template.yaml's SshWafIpSetArn pattern).
  sshWafIpSetArn: {
    pattern: /^$|^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:[0-9]{12}:(regional|global)\/ipset\/[A-Za-z0-9_-]{1,128}\/[a-f0-9-]{1,64}$/,
    says:
      'empty, or a WAFv2 IP set ARN, arn:aws:wafv2:REGION:ACCOUNT:regional/ipset/NAME/ID ' +
      '(or .../global/ipset/NAME/ID for CloudFront, in us-east-1)',
  },
};

/** Settings without a default: unset (undefined) = the function's own default. */
const OPTIONAL_SETTINGS = ['drainMaxConcurrentGlobal'] as const;

/** Whole-number settings: [min, max]. */
const NUMBER_RULES: { [K in keyof ReflexSettings]?: [number, number] } = {
  drainMaxConcurrent: [1, 1000],
  drainMaxConcurrentGlobal: [1, 1000],
  sshMaxFailures: [1, 1000],
  sshWindowSecs: [1, 86_400],
  sshBlockSecs: [1, 30 * 86_400],
};

export class ConfigError extends Error {
  constructor(key: string, value: unknown, says: string) {
    super(`Reflex setting ${key}=${JSON.stringify(value)}: expected ${says}`);
    this.name = 'ConfigError';
  }
}

/** Defaults, overridden by `given`, then checked. Throws ConfigError on a bad value. */
export function resolveSettings(given: Partial<ReflexSettings> = {}): ReflexSettings {
  const s: ReflexSettings = { ...DEFAULT_SETTINGS };
  for (const [k, v] of Object.entries(given)) {
    if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  }
  for (const [key, rule] of Object.entries(STRING_RULES)) {
    const v = s[key as keyof ReflexSettings];
    if (typeof v !== 'string') throw new ConfigError(key, v, 'a string');
    if (rule.pattern && !rule.pattern.test(v)) throw new ConfigError(key, v, rule.says);
    if (rule.maxLength !== undefined && v.length > rule.maxLength) throw new ConfigError(key, v, rule.says);
  }
  for (const [key, [min, max]] of Object.entries(NUMBER_RULES)) {
    const v = s[key as keyof ReflexSettings];
    if (v === undefined && (OPTIONAL_SETTINGS as readonly string[]).includes(key)) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(key, v, `a whole number from ${min} to ${max}`);
    }
  }
  for (const key of ['dryRun', 'reauthorizeRemainder', 'sshBlockPrivate'] as const) {
    if (typeof s[key] !== 'boolean') throw new ConfigError(key, s[key], 'true or false');
  }
  if (!LOG_RETENTION_DAYS.includes(s.logRetentionInDays)) {
    throw new ConfigError('logRetentionInDays', s.logRetentionInDays, `one of ${LOG_RETENTION_DAYS.join(', ')}`);
  }
  const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(s.naclRuleRange);
  if (!range || +range[1] < 1 || +range[1] > +range[2] || +range[2] > 32766) {
    throw new ConfigError('naclRuleRange', s.naclRuleRange, 'FIRST-LAST within 1-32766, e.g. 50-99');
  }
  // template.yaml's Rules: SnsTopicIsNotTheAlarmTopic. alert-to-slack publishes to
  // snsTopicArn and is subscribed to the alarm topic: the same topic would loop.
  if (s.snsTopicArn !== '' && s.snsTopicArn === s.alarmTopicArn) {
    throw new ConfigError(
      'snsTopicArn',
      s.snsTopicArn,
      'a topic other than alarmTopicArn (alert-to-slack would receive its own messages)',
    );
  }
  return s;
}

const ID_PATTERNS = {
  vpcId: /^vpc-[0-9a-f]{8,17}$/,
  subnetIds: /^subnet-[0-9a-f]{8,17}$/,
  securityGroupIds: /^sg-[0-9a-f]{8,17}$/,
  routeTableIds: /^rtb-[0-9a-f]{8,17}$/,
  endpointSubnetIds: /^subnet-[0-9a-f]{8,17}$/,
};

/** The network settings, checked. Undefined = no VPC. */
export function resolveNetwork(n: NetworkSettings = {}): Required<NetworkSettings> | undefined {
  const lists = ['subnetIds', 'securityGroupIds', 'routeTableIds', 'endpointSubnetIds'] as const;
  if (!n.vpcId) {
    for (const key of lists) {
      if (n[key]?.length) throw new ConfigError(key, n[key], 'no value without vpcId');
    }
    return undefined;
  }
  if (!ID_PATTERNS.vpcId.test(n.vpcId)) throw new ConfigError('vpcId', n.vpcId, 'a VPC id, e.g. vpc-0123456789abcdef0');
  for (const key of lists) {
    for (const id of n[key] ?? []) {
      if (!ID_PATTERNS[key].test(id)) throw new ConfigError(key, n[key], `a comma-separated list of ${key.replace(/Ids$/, '')} ids`);
    }
  }
  const vpcEndpoints = n.vpcEndpoints ?? true;
  const out: Required<NetworkSettings> = {
    vpcId: n.vpcId,
    subnetIds: n.subnetIds ?? [],
    securityGroupIds: n.securityGroupIds ?? [],
    routeTableIds: n.routeTableIds ?? [],
    endpointSubnetIds: n.endpointSubnetIds?.length ? n.endpointSubnetIds : (n.subnetIds ?? []),
    vpcEndpoints,
  };
  if (out.subnetIds.length === 0) throw new ConfigError('subnetIds', n.subnetIds, 'at least one subnet id with vpcId');
  if (out.securityGroupIds.length === 0) {
    throw new ConfigError('securityGroupIds', n.securityGroupIds, 'at least one security group id with vpcId');
  }
  if (vpcEndpoints && out.routeTableIds.length === 0) {
    throw new ConfigError(
      'routeTableIds',
      n.routeTableIds,
      'the route tables of the subnets (for the DynamoDB gateway endpoint), or vpcEndpoints=false',
    );
  }
  return out;
}

// ------------------------------------------------------------------ context

/** Context keys that are not Reflex settings but are read by the app. */
export const APP_CONTEXT_KEYS = ['skipBundling'] as const;

const NETWORK_KEYS = ['vpcId', 'subnetIds', 'securityGroupIds', 'routeTableIds', 'endpointSubnetIds', 'vpcEndpoints'] as const;

/** Every plain (camelCase) context key the app understands. */
export const KNOWN_CONTEXT_KEYS: readonly string[] = [
  ...FUNCTION_SWITCHES,
  ...Object.keys(DEFAULT_SETTINGS),
  ...OPTIONAL_SETTINGS,
  ...NETWORK_KEYS,
  ...APP_CONTEXT_KEYS,
];

/** A boolean from context: true/false as JSON (cdk.json) or as text (`-c key=false`). */
export function contextBoolean(key: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (t === 'true') return true;
    if (t === 'false') return false;
  }
  throw new ConfigError(key, v, 'true or false');
}

function contextNumber(key: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) return Number(v);
  throw new ConfigError(key, v, 'a whole number');
}

function contextString(key: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  throw new ConfigError(key, v, 'a string');
}

/** A list: a JSON array (cdk.json) or comma-separated text (`-c subnetIds=subnet-a,subnet-b`). */
function contextList(key: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  let items: unknown[];
  if (Array.isArray(v)) items = v;
  else if (typeof v === 'string') items = v.split(',');
  else throw new ConfigError(key, v, 'a comma-separated list');
  return items.map((i) => {
    if (typeof i !== 'string') throw new ConfigError(key, v, 'a list of strings');
    return i.trim();
  }).filter((i) => i !== '');
}

/** What the stack takes from context. */
export interface ContextProps {
  readonly functions: FunctionSwitches;
  readonly settings: Partial<ReflexSettings>;
  readonly network: NetworkSettings;
}

/**
 * Reads the Reflex settings from the construct tree's context. A plain camelCase key that
 * is not one of ours is an error: `-c closeOpenPort=false` (a typo) must not silently
 * deploy the function it meant to switch off.
 */
export function propsFromContext(node: Node): ContextProps {
  const all = node.getAllContext() as Record<string, unknown>;
  for (const key of Object.keys(all)) {
    if (/^[a-z][A-Za-z0-9]*$/.test(key) && !KNOWN_CONTEXT_KEYS.includes(key)) {
      throw new Error(`Unknown context key "${key}"; Reflex understands: ${KNOWN_CONTEXT_KEYS.join(', ')}`);
    }
  }
  const get = (key: string): unknown => node.tryGetContext(key);

  const functions: Record<string, boolean | undefined> = {};
  for (const key of FUNCTION_SWITCHES) functions[key] = contextBoolean(key, get(key));

  const settings: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(DEFAULT_SETTINGS)) {
    const v = get(key);
    if (typeof def === 'boolean') settings[key] = contextBoolean(key, v);
    else if (typeof def === 'number') settings[key] = contextNumber(key, v);
    else settings[key] = contextString(key, v);
  }
  // Whole numbers; an empty value (`-c drainMaxConcurrentGlobal=`) is unset, as for the function.
  for (const key of OPTIONAL_SETTINGS) {
    const v = get(key);
    settings[key] = typeof v === 'string' && v.trim() === '' ? undefined : contextNumber(key, v);
  }

  const network: NetworkSettings = {
    vpcId: contextString('vpcId', get('vpcId'))?.trim() || undefined,
    subnetIds: contextList('subnetIds', get('subnetIds')),
    securityGroupIds: contextList('securityGroupIds', get('securityGroupIds')),
    routeTableIds: contextList('routeTableIds', get('routeTableIds')),
    endpointSubnetIds: contextList('endpointSubnetIds', get('endpointSubnetIds')),
    vpcEndpoints: contextBoolean('vpcEndpoints', get('vpcEndpoints')),
  };
  return {
    functions: functions as FunctionSwitches,
    settings: settings as Partial<ReflexSettings>,
    network,
  };
}
