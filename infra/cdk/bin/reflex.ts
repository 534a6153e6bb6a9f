#!/usr/bin/env node
// Entry point of the CDK app (cdk.json: "app"). Environment-agnostic: the account and
// region come from the CLI's credentials at deploy time.
import { createApp } from '../lib/app';

createApp().app.synth();
