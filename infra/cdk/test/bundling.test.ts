// Bundling: with skipBundling the synth never runs `cargo lambda build` (the code asset is the
// unbuilt source directory); without it, RustFunction would build every function with
// cargo lambda for arm64, which is what `cdk deploy` does. The `cargo` stub (test/no-cargo)
// logs every call and refuses to build, so neither case compiles anything.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { BINARIES, CARGO_LOG, createAppBundling, Json, REPO_ROOT, synth } from './helpers';

function cargoCalls(): string[] {
  return fs.existsSync(CARGO_LOG) ? fs.readFileSync(CARGO_LOG, 'utf8').split('\n').filter(Boolean) : [];
}

describe('bundling', () => {
  it('skipBundling=true: no cargo lambda build, the code assets are the source directory as is', () => {
    const before = cargoCalls().length;
    const { app } = synth({});
    const assembly = app.synth();
    const manifest = JSON.parse(fs.readFileSync(path.join(assembly.directory, 'ReflexStack.assets.json'), 'utf8'));
    const lambdaAssets = Object.values(manifest.files as Record<string, Json>).filter((f) =>
      /Function\/Code$/.test(f.displayName),
    );
    assert.equal(lambdaAssets.length, BINARIES.length);
    for (const a of lambdaAssets) {
      // Not staged (a bundle would be an asset.<hash> directory in the assembly).
      assert.equal(a.source.path, REPO_ROOT, a.displayName);
      assert.equal(a.source.packaging, 'zip');
    }
    const calls = cargoCalls().slice(before);
    assert.ok(!calls.some((c) => c.includes('build')), `no build: ${JSON.stringify(calls)}`);
    // At most cargo-lambda-cdk's version probe, and only ever through the stub.
    for (const c of cargoCalls()) assert.ok(c === 'lambda --version' || c.startsWith('lambda build '), c);
  });

  it('without skipBundling the app bundles with `cargo lambda build --release --arm64 --bin <function>`', () => {
    const before = cargoCalls().length;
    process.env.REFLEX_CARGO_STUB_QUIET = '1'; // the refusal is the expected outcome here
    try {
      assert.throws(() => createAppBundling(), /exited with status 97|Failed to bundle asset/);
    } finally {
      delete process.env.REFLEX_CARGO_STUB_QUIET;
    }
    const builds = cargoCalls().slice(before).filter((c) => c.startsWith('lambda build'));
    // The first function's bundling is refused by the stub, which stops the synth.
    assert.equal(builds.length, 1, JSON.stringify(builds));
    const args = builds[0].split(' ');
    for (const flag of ['--release', '--arm64', '--lambda-dir']) assert.ok(args.includes(flag), flag);
    const bin = args[args.indexOf('--bin') + 1];
    assert.ok(BINARIES.includes(bin), bin);
    assert.equal(args[args.indexOf('--flatten') + 1], bin);
  });
});
