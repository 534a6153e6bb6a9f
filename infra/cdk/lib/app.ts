// The CDK app: one ReflexStack, configured from context. bin/reflex.ts runs it under the CDK
// CLI; the tests build it in-process with the same function.

import { App, AppProps } from 'aws-cdk-lib';
import * as cxapi from 'aws-cdk-lib/cx-api';

import { contextBoolean, propsFromContext } from './config';
import { ReflexStack } from './reflex-stack';

export const STACK_NAME = 'ReflexStack';

/**
 * Builds the app. With context `skipBundling=true` no stack is bundled: the CDK context key
 * `aws:cdk:bundling-stacks` (the stacks whose assets are bundled, default every stack) is
 * set to [] on the App before the stack exists, so RustFunction's Code.fromAsset stages
 * the source directory as is and never runs `cargo lambda build` (nor Docker). The CLI's
 * own `-c aws:cdk:bundling-stacks=...` cannot do this: `cdk synth` and `cdk deploy`
 * overwrite that key with their stack selection. Deploying needs the bundle, so
 * skipBundling is for synth / tests only.
 */
export function createApp(props: AppProps = {}): { app: App; stack: ReflexStack } {
  const app = new App(props);
  if (contextBoolean('skipBundling', app.node.tryGetContext('skipBundling'))) {
    app.node.setContext(cxapi.BUNDLING_STACKS, []);
  }
  const stack = new ReflexStack(app, STACK_NAME, propsFromContext(app.node));
  return { app, stack };
}
