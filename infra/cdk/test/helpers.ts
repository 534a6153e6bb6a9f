// Shared by the tests: synthesizes the app in-process, exactly as bin/reflex.ts does under the
// CLI (createApp + context), with bundling skipped and the `cargo` stub first on PATH.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { Template } from 'aws-cdk-lib/assertions';

import { createApp } from '../lib/app';

// Compiled to dist/test: the package root is two levels up.
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
export const REPO_ROOT = path.resolve(PACKAGE_ROOT, '..', '..');

// Before any test constructs a RustFunction: cargo-lambda-cdk spawns `cargo lambda --version`
// from PATH, and bundling (if it were not skipped) would run `cargo lambda build`. Both reach
// the stub, which answers the probe and refuses any build; the real cargo is never run.
process.env.PATH = `${path.join(PACKAGE_ROOT, 'test', 'no-cargo')}${path.delimiter}${process.env.PATH ?? ''}`;
// Cloud assemblies and the stub's log go to one temporary directory per test process,
// removed when the process exits.
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'reflex-cdk-test-'));
process.on('exit', () => fs.rmSync(WORK, { recursive: true, force: true }));
export const CARGO_LOG = path.join(WORK, 'cargo.log');
process.env.REFLEX_CARGO_STUB_LOG = CARGO_LOG;
let outdirs = 0;
function outdir(): string {
  return path.join(WORK, `cdk.out.${++outdirs}`);
}

/** cdk.json's context, so the tests see what `cdk synth` sees. */
const CDK_JSON_CONTEXT: Record<string, unknown> =
  JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'cdk.json'), 'utf8')).context ?? {};

export type Json = any;

export interface Synth {
  readonly template: Template;
  readonly json: Json;
  readonly stack: ReturnType<typeof createApp>['stack'];
  readonly app: ReturnType<typeof createApp>['app'];
}

const cache = new Map<string, Synth>();

/** The synthesized ReflexStack for the given context (bundling skipped). */
export function synth(context: Record<string, unknown> = {}): Synth {
  const key = JSON.stringify(context);
  const hit = cache.get(key);
  if (hit) return hit;
  const { app, stack } = createApp({ outdir: outdir(), context: { ...CDK_JSON_CONTEXT, skipBundling: 'true', ...context } });
  const template = Template.fromStack(stack);
  const out = { template, json: template.toJSON(), stack, app };
  cache.set(key, out);
  return out;
}

/** Build without the skip: for the tests that prove bundling would otherwise run. */
export function createAppBundling(context: Record<string, unknown> = {}): ReturnType<typeof createApp> {
  return createApp({ outdir: outdir(), context: { ...CDK_JSON_CONTEXT, ...context } });
}

export const BINARIES = ['close-open-ports', 'alert-to-slack', 'drain-before-maintenance', 'block-ssh-bruteforce'];

/** [logicalId, resource] of every resource of a type. */
export function ofType(json: Json, type: string): [string, Json][] {
  return Object.entries(json.Resources as Record<string, Json>).filter(([, r]) => r.Type === type);
}

/** The Lambda function of a binary, found by its reflex:function tag. */
export function fnOf(json: Json, binary: string): [string, Json] | undefined {
  return ofType(json, 'AWS::Lambda::Function').find(([, r]) =>
    (r.Properties.Tags ?? []).some((t: Json) => t.Key === 'reflex:function' && t.Value === binary),
  );
}

export function mustFn(json: Json, binary: string): [string, Json] {
  const f = fnOf(json, binary);
  if (!f) throw new Error(`no function tagged reflex:function=${binary}`);
  return f;
}

/** The logical id a { Ref } / { Fn::GetAtt } points at. */
export function refId(v: Json): string | undefined {
  if (v && typeof v === 'object') {
    if (typeof v.Ref === 'string') return v.Ref;
    if (Array.isArray(v['Fn::GetAtt'])) return v['Fn::GetAtt'][0];
  }
  return undefined;
}

/** The inline policy statements of a function's role (the only policy it has). */
export function roleStatements(json: Json, binary: string): Json[] {
  const [, fn] = mustFn(json, binary);
  const role = json.Resources[refId(fn.Properties.Role)!];
  if (role?.Type !== 'AWS::IAM::Role') throw new Error(`${binary}: role not found`);
  const policies = role.Properties.Policies ?? [];
  if (policies.length !== 1) throw new Error(`${binary}: expected one inline policy, got ${policies.length}`);
  return policies[0].PolicyDocument.Statement;
}

export function asList<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Sid -> sorted actions, for comparing a whole policy. */
export function actionsBySid(statements: Json[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of statements) {
    if (!s.Sid) throw new Error(`statement without Sid: ${JSON.stringify(s)}`);
    out[s.Sid] = asList<string>(s.Action).slice().sort();
  }
  return out;
}

/** Every policy statement anywhere in the template (any "Statement" array, at any depth). */
export function allStatements(json: Json): Json[] {
  const out: Json[] = [];
  const walk = (v: Json): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        if (k === 'Statement') out.push(...asList(child as Json));
        walk(child);
      }
    }
  };
  walk(json.Resources);
  return out;
}

/** A rendered ARN (Fn::Join of strings and pseudo-parameter refs) as a readable string. */
export function arnText(v: Json): string {
  if (typeof v === 'string') return v;
  if (v && v['Fn::Join']) {
    const [sep, parts] = v['Fn::Join'];
    return parts.map((p: Json) => arnText(p)).join(sep);
  }
  if (v && typeof v.Ref === 'string') return '${' + v.Ref + '}';
  if (v && Array.isArray(v['Fn::GetAtt'])) return '${' + v['Fn::GetAtt'].join('.') + '}';
  return JSON.stringify(v);
}

/** The logical id of a function's role. */
export function roleIdOf(json: Json, binary: string): string {
  return refId(mustFn(json, binary)[1].Properties.Role)!;
}

/**
 * A dependency cycle among the template's resources (Ref, Fn::GetAtt, Fn::Sub names and
 * DependsOn), as the list of logical ids around it; undefined when there is none.
 * CloudFormation refuses a template with a cycle.
 */
export function dependencyCycle(json: Json): string[] | undefined {
  const resources = json.Resources as Record<string, Json>;
  const deps = (r: Json): Set<string> => {
    const out = new Set<string>(asList<string>(r.DependsOn));
    const walk = (v: Json): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        const id = refId(v);
        if (id && id in resources) out.add(id);
        if (v['Fn::Sub'] !== undefined) {
          const text = Array.isArray(v['Fn::Sub']) ? v['Fn::Sub'][0] : v['Fn::Sub'];
          for (const m of String(text).matchAll(/\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}/g)) {
            if (m[1] in resources) out.add(m[1]);
          }
        }
        Object.values(v).forEach(walk);
      }
    };
    walk(r.Properties);
    return out;
  };
  const graph = new Map(Object.entries(resources).map(([id, r]) => [id, deps(r)]));
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'open') return [...path.slice(path.indexOf(id)), id];
    state.set(id, 'open');
    path.push(id);
    for (const d of graph.get(id) ?? []) {
      const cycle = visit(d);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of graph.keys()) {
    const cycle = visit(id);
    if (cycle) return cycle;
  }
  return undefined;
}

export const WAF_IPSET_ARN =
  'arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/reflex-ssh/91f365c5-9053-4502-aef5-7b140e2c85db';
export const WAF_GLOBAL_IPSET_ARN =
  'arn:aws:wafv2:us-east-1:123456789012:global/ipset/reflex-ssh-edge/0f7c9b1e-2d3a-4c5b-8e6f-7a8b9c0d1e2f';

/**
 * A Slack webhook secret: close-open-ports and block-ssh-bruteforce post to Slack only through
 * it, so alert-to-slack gets REFLEX_OWN_ROLE_ARNS (and names their roles) only when it is set.
 */
export const SLACK_WEBHOOK = '/reflex/slack-webhook';
export const SLACK_WEBHOOK_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:reflex/slack-webhook-AbCdEf';

export const CONTEXT_VPC = {
  vpcId: 'vpc-0123456789abcdef0',
  subnetIds: 'subnet-0123456789abcdef0,subnet-0fedcba9876543210',
  securityGroupIds: 'sg-0123456789abcdef0,sg-0fedcba9876543210',
  routeTableIds: 'rtb-0123456789abcdef0,rtb-0fedcba9876543210',
};
