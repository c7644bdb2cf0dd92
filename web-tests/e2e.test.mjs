// End-to-end tests of the Airlock web console in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core), against a console backed by moto. scripts/test-web starts moto,
// the loopback VPC and the console, and passes them in the environment.
//
// The steps share one console and run in order: sign in, connect an account, deploy two tagged
// instances (image, subnet and security group picked from lists) and watch them run, stop one,
// write a policy and a user who may not terminate, see Terminate disabled with the reason (and
// refused when forced), compare the simulator with
// `airlock policy simulate`, read the audit log, then measure the instance page with 1,000
// instances. Screenshots go to web-tests/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { env, URL, MOTO_URL, PYTHON, ARTIFACTS, shot as shotOf, signIn as signInOf, signOut as signOutOf } from './lib.mjs';

const ADMIN_PASSWORD = env('AIRLOCK_ADMIN_PASSWORD');
const BIN = env('AIRLOCK_BIN');
const SUBNET = env('AIRLOCK_SUBNET');
const IMAGE = env('AIRLOCK_IMAGE');
const OWNED_IMAGE = env('AIRLOCK_OWNED_IMAGE');
const GROUP = env('AIRLOCK_GROUP');
const WORK = env('AIRLOCK_WORK');
const SECRET = 'web-test-secret-not-real-5d1c';
const BOB_PASSWORD = 'bob-password-0123';

const NO_TERMINATE = {
  Version: '2012-10-17',
  Statement: [
    {
      Sid: 'Operate',
      Effect: 'Allow',
      Action: ['ec2:DescribeInstances', 'ec2:StartInstances', 'ec2:StopInstances', 'ec2:RebootInstances', 'ec2:TerminateInstances', 'airlock:UseAccount'],
      Resource: '*',
    },
    { Sid: 'NoTermination', Effect: 'Deny', Action: 'ec2:TerminateInstances', Resource: '*' },
  ],
};

let browser;
let context;
let page;
const seen = []; // every response body, to check no secret reaches the browser

before(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
  context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on('response', async (r) => {
    try { seen.push(await r.text()); } catch (_) { /* redirects and aborted bodies */ }
  });
});

after(async () => {
  if (browser) await browser.close();
});

const shot = (name, p = page) => shotOf(p, name);
const signIn = (user, password) => signInOf(page, user, password);
const signOut = () => signOutOf(page);

function row(instanceId) {
  return page.locator(`#instance-rows tr:has(td:text-is("${instanceId}"))`);
}

test('the console web app', async (t) => {
  let deployed = [];
  // Steps on the deployed instances are skipped, not timed out one by one, when the deploy failed.
  const needsInstances = () => ({ skip: deployed.length === 2 ? false : 'the deploy step failed' });

  await t.test('pages carry the security headers and a wrong password is refused in words', async () => {
    const response = await page.goto(URL);
    const headers = response.headers();
    assert.match(headers['content-security-policy'], /script-src 'self'/);
    assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(headers['x-frame-options'], 'DENY');
    await page.fill('#f-user', 'admin');
    await page.fill('#f-password', 'not-the-password');
    await page.click('#sign-in-form button[type=submit]');
    await page.waitForSelector('#sign-in-form .form-error:not([hidden])');
    assert.match(await page.textContent('#sign-in-form .form-error'), /wrong user name or password/);
    await shot('sign-in');
  });

  await t.test('admin signs in with the keyboard; the cookie is HttpOnly and SameSite=Strict', async () => {
    await signIn('admin', ADMIN_PASSWORD);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'airlock_session');
    assert.ok(session, 'a session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie.includes('airlock_session')), false);
    const api = await page.evaluate(async () => {
      const r = await fetch('/v1/whoami');
      return { status: r.status, cache: r.headers.get('cache-control') };
    });
    assert.deepEqual(api, { status: 200, cache: 'no-store' });
  });

  await t.test('a state-changing request without the CSRF header is refused', async () => {
    const r = await page.evaluate(async () => {
      const res = await fetch('/v1/policies/validate', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"document":"{}"}' });
      return { status: res.status, body: await res.json() };
    });
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /X-CSRF-Token/);
  });

  await t.test('connect an account: a bad field is named next to it, then it is verified and listed', async () => {
    await page.click('nav a[href="#/accounts"]');
    await page.waitForSelector('#account-form');
    await page.fill('#f-name', 'dev');
    await page.fill('#f-region', 'us-east-1');
    await page.fill('#f-access_key_id', 'short');
    await page.fill('#f-secret_access_key', SECRET);
    await page.fill('#f-endpoint_url', MOTO_URL);
    await page.click('#account-form button[type=submit]');
    const fieldError = page.locator('[data-field="access_key_id"] .field-error');
    await fieldError.waitFor({ state: 'visible' });
    assert.match(await fieldError.textContent(), /access key id is 16 to 128/);
    await page.fill('#f-access_key_id', 'AKIAIOSFODNN7EXAMPLE');
    await page.fill('#f-secret_access_key', SECRET);
    await page.click('#account-form button[type=submit]');
    await page.waitForSelector('#account-rows td:text-is("dev")');
    assert.equal(await page.inputValue('#f-secret_access_key'), '');
    await shot('accounts');
  });

  await t.test('deploy two tagged instances and watch them reach running', async () => {
    await page.click('nav a[href="#/deploy"]');
    await page.waitForSelector('#f-account option[value="dev"]', { state: 'attached' });
    // Picked, not typed: the account's own image found by its name, its subnet, its group.
    await page.waitForSelector(`#f-image_id option[value="${OWNED_IMAGE}"]`, { state: 'attached' });
    await page.fill('#f-image-search', 'web-base');
    await page.selectOption('#f-image_id', OWNED_IMAGE);
    await page.waitForSelector(`#f-subnet_id option[value="${SUBNET}"]`, { state: 'attached' });
    assert.match(await page.textContent(`#f-subnet_id option[value="${SUBNET}"]`), /us-east-1.* 127\.0\.0\.0\/24 .* free/);
    await page.selectOption('#f-subnet_id', SUBNET);
    await page.check(`#f-security_group_ids input[value="${GROUP}"]`);
    await page.fill('#f-count', '2');
    await page.fill('#f-tags', 'team=web\nowner=ana');
    await page.fill('#f-user_script', '#!/bin/sh\necho hello\n');
    await page.waitForSelector('#deploy-allowed .ok');
    await shot('deploy');
    await page.click('#deploy-submit');
    await page.waitForFunction(() => location.hash.startsWith('#/deployments/dep-')
      || Array.from(document.querySelectorAll('#deploy-form .field-error, #deploy-form .form-error')).some((e) => !e.hidden));
    const refused = await page.$$eval('#deploy-form .field-error:not([hidden]), #deploy-form .form-error:not([hidden])', (es) => es.map((e) => e.textContent));
    assert.deepEqual(refused, [], 'the deployment was refused');
    await page.waitForSelector('.progress:has-text("2 of 2 running")', { timeout: 60000 });
    await shot('deployment');
    deployed = await page.$$eval('#deployment-body tbody td:first-child', (tds) => tds.map((td) => td.textContent));
    assert.equal(deployed.length, 2);
    // What was picked is what EC2 launched.
    const launched = JSON.parse(execFileSync(PYTHON, ['-c', `
import json, sys, boto3
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
out = ec2.describe_instances(InstanceIds=sys.argv[2:])
print(json.dumps([[i["ImageId"], i["SubnetId"], [g["GroupId"] for g in i["SecurityGroups"]]]
                  for r in out["Reservations"] for i in r["Instances"]]))
`, MOTO_URL, ...deployed], { encoding: 'utf8' }));
    for (const [image, subnet, groups] of launched) {
      assert.equal(image, OWNED_IMAGE);
      assert.equal(subnet, SUBNET);
      assert.deepEqual(groups, [GROUP]);
    }
  });

  await t.test('the instances appear across accounts, filter and group by tag', needsInstances(), async () => {
    await page.click('nav a[href="#/instances"]');
    for (const id of deployed) await row(id).waitFor();
    assert.match(await row(deployed[0]).textContent(), /running/);
    assert.match(await row(deployed[0]).textContent(), /team=web/);
    await page.fill('#f-filter', 'tag:team=web instance-state-name=running');
    await page.fill('#f-group', 'team');
    await page.click('#instance-filter button[type=submit]');
    await page.waitForSelector('tr.group th:has-text("team = web")');
    await shot('instances');
    // A filter the API refuses is explained next to the search box.
    await page.fill('#f-filter', 'nonsense');
    await page.click('#instance-filter button[type=submit]');
    const err = page.locator('[data-field="filter"] .field-error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), /NAME=VALUE/);
    await page.fill('#f-filter', 'tag:team=web');
    await page.fill('#f-group', '');
    await page.click('#instance-filter button[type=submit]');
    await row(deployed[0]).waitFor();
  });

  await t.test('stop one instance after confirming; its state updates without reload', needsInstances(), async () => {
    await row(deployed[0]).locator('input.pick').check();
    await page.waitForSelector('#act-stop:not([disabled])');
    await page.click('#act-stop');
    await page.waitForSelector('#confirm[open]');
    assert.match(await page.textContent('#confirm-text'), new RegExp(deployed[0]));
    await page.click('#confirm-ok');
    await row(deployed[0]).locator('.state-stopped').waitFor({ timeout: 30000 });
    assert.match(await row(deployed[1]).textContent(), /running/);
  });

  await t.test('a policy is validated as it is typed, then saved', async () => {
    await page.click('nav a[href="#/policies"]');
    await page.waitForSelector('#policy-validation.ok');
    await page.fill('#f-name', 'no-terminate');
    await page.fill('#f-document', '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*"');
    await page.waitForSelector('#policy-validation.bad');
    assert.match(await page.textContent('#policy-validation'), /line 1/);
    await page.fill('#f-document', JSON.stringify({ ...NO_TERMINATE, Statement: [{ Effect: 'Perhaps', Action: 'ec2:*', Resource: '*' }] }));
    await page.waitForSelector('#policy-validation.bad:has-text("Effect")');
    await page.fill('#f-document', JSON.stringify(NO_TERMINATE, null, 2));
    await page.waitForSelector('#policy-validation.ok:has-text("2 statements")');
    await page.click('#policy-form button[type=submit]');
    await page.waitForSelector('#policy-list a[aria-current="page"]:text-is("no-terminate")');
    await shot('policies');
  });

  await t.test('add the user bob with that policy', async () => {
    await page.click('nav a[href="#/users"]');
    await page.waitForSelector('#f-policies option:text-is("no-terminate")', { state: 'attached' });
    await page.fill('#f-name', 'bob');
    await page.fill('#f-password', 'short');
    await page.click('#user-form button[type=submit]');
    await page.locator('[data-field="password"] .field-error').waitFor({ state: 'visible' });
    await page.fill('#f-password', BOB_PASSWORD);
    await page.selectOption('#f-policies', 'no-terminate');
    await page.click('#user-form button[type=submit]');
    await page.waitForSelector('#user-rows td:text-is("bob")');
    await shot('users');
    await signOut();
  });

  await t.test('bob sees Terminate disabled with the reason, and a forced terminate is refused in words', needsInstances(), async () => {
    await signIn('bob', BOB_PASSWORD);
    await row(deployed[1]).waitFor();
    await row(deployed[1]).locator('input.pick').check();
    await page.waitForSelector('#act-stop:not([disabled])');
    await page.waitForSelector('#act-terminate[disabled]');
    const why = await page.textContent('#why-terminate');
    assert.match(why, /Not allowed/);
    assert.match(why, /explicitly denied by no-terminate#1 \(NoTermination\)/);
    await shot('instances-bob');
    // Forced through the page: the button enabled by hand, the API still refuses, shown in words.
    await page.evaluate(() => { document.querySelector('#act-terminate').disabled = false; });
    await page.click('#act-terminate');
    await page.click('#confirm-ok');
    const err = page.locator('#instance-action-error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), /bob is not authorized to perform ec2:TerminateInstances/);
    // And straight from the page's API client.
    const refusal = await page.evaluate(async (id) => {
      try {
        await Airlock.api('POST', '/v1/instances/terminate', { account: 'dev', instance_ids: [id] });
        return null;
      } catch (e) { return { status: e.status, message: e.message }; }
    }, deployed[1]);
    assert.equal(refusal.status, 403);
    assert.match(refusal.message, /explicitly denied by no-terminate#1 \(NoTermination\)/);
    assert.match(await row(deployed[1]).textContent(), /running/);
    await signOut();
  });

  await t.test('the simulator decides as `airlock policy simulate` does', async () => {
    await signIn('admin', ADMIN_PASSWORD);
    await page.click('nav a[href="#/simulator"]');
    await page.waitForSelector('#f-user option[value="bob"]', { state: 'attached' });
    await page.selectOption('#f-user', 'bob');
    await page.waitForFunction(() => document.querySelector('#f-policies').value.includes('NoTermination'));
    writeFileSync(join(WORK, 'policy.json'), JSON.stringify(NO_TERMINATE));
    for (const action of ['ec2:TerminateInstances', 'ec2:StopInstances', 'ec2:CreateVolume']) {
      const request = { action, resource: `arn:aws:ec2:us-east-1:123456789012:instance/${deployed[1]}`, context: { 'aws:username': 'bob' } };
      await page.fill('#f-request\\.action', request.action);
      await page.fill('#f-request\\.resource', request.resource);
      await page.fill('#f-request\\.context', JSON.stringify(request.context));
      await page.evaluate(() => { document.querySelector('#simulate-result').textContent = ''; });
      const answer = page.waitForResponse((r) => r.url().endsWith('/v1/policies/simulate'));
      await page.click('#simulate-form button[type=submit]');
      const web = await (await answer).json();
      await page.waitForSelector('#simulate-decision');
      assert.equal(await page.textContent('#simulate-decision'), web.decision);
      writeFileSync(join(WORK, 'request.json'), JSON.stringify(request));
      const cli = JSON.parse(execFileSync(BIN, ['policy', 'simulate', '--policy', join(WORK, 'policy.json'), '--request', join(WORK, 'request.json'), '--output', 'json'], { encoding: 'utf8' }));
      assert.equal(web.decision, cli.decision, action);
      const refs = (r) => r.matchedStatements.map((s) => [s.index, s.sid]);
      assert.deepEqual(refs(web), refs(cli), action);
      console.log(`simulator and CLI agree on ${action}: ${cli.decision}`);
    }
    await shot('simulator');
  });

  await t.test('the audit log is searchable and its chain verified', async () => {
    await page.click('nav a[href="#/audit"]');
    await page.waitForSelector('#audit-chain.ok');
    assert.match(await page.textContent('#audit-chain'), /intact/);
    // Follow the cursor to the end of the log, a page at a time.
    await page.waitForSelector('#audit-rows tr');
    while (await page.isVisible('#audit-more')) {
      await page.click('#audit-more');
      await page.waitForSelector('#audit-more:not([disabled])', { state: 'attached' });
    }
    assert.doesNotMatch(await page.textContent('#audit-status'), /more follow/);
    await page.fill('#f-text', 'CreateUser');
    await page.waitForSelector('#audit-rows td:text-is("airlock:CreateUser")');
    const [, shown, total] = (await page.textContent('#audit-status')).match(/^(\d+) of (\d+) records/);
    assert.ok(Number(shown) >= 1 && Number(shown) < Number(total), `${shown} of ${total} shown`);
    if (deployed.length === 2) {
      await page.fill('#f-text', 'TerminateInstances');
      await page.waitForSelector('#audit-rows td:text-is("bob")');
      assert.match(await page.textContent('#audit-rows'), /explicitDeny/);
    }
    await shot('audit');
  });

  await t.test('deployments list and detail', needsInstances(), async () => {
    await page.click('nav a[href="#/deployments"]');
    await page.waitForSelector('#deployment-rows a');
    assert.match(await page.textContent('#deployment-rows'), /team=web/);
    await shot('deployments');
  });

  await t.test('a snapshot policy is listed, run from its page, and its run shown', async () => {
    execFileSync(PYTHON, ['-c', `
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
ec2.create_volume(AvailabilityZone="us-east-1a", Size=1,
    TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Backup", "Value": "web"}]}])
`, MOTO_URL]);
    await page.evaluate(() => Airlock.api('POST', '/v1/snapshot-policies', {
      name: 'web-daily', account: 'dev', target: 'tag:Backup=web', schedule: 'cron(0 3 ? * * *)', retain: 2,
    }));
    await page.click('nav a[href="#/snapshots"]');
    await page.waitForSelector('#snapshot-policy-rows a:text-is("web-daily")');
    await shot('snapshot-policies');
    await page.click('#snapshot-policy-rows a:text-is("web-daily")');
    await page.waitForSelector('#run-now:not([disabled])');
    await page.click('#run-now');
    await page.click('#confirm-ok');
    await page.waitForSelector('#policy-body .state-succeeded');
    assert.match(await page.textContent('#policy-body'), /snap-/);
    await shot('snapshot-policy');
  });

  await t.test('a command is listed and its instances shown', needsInstances(), async () => {
    const sent = await page.evaluate((id) => Airlock.api('POST', '/v1/commands', {
      account: 'dev', instance_ids: [id], command: ['uptime'], timeout_seconds: 1,
    }), deployed[1]);
    await page.click('nav a[href="#/commands"]');
    await page.waitForSelector(`#command-rows a:text-is("${sent.id}")`);
    await shot('commands');
    await page.click(`#command-rows a:text-is("${sent.id}")`);
    // No agent runs in this test bed: the instance ends undeliverable once the timeout passed.
    await page.waitForSelector('#command-results .state-undeliverable', { timeout: 20000 });
    assert.match(await page.textContent('#command-results'), new RegExp(deployed[1]));
    await shot('command');
  });

  await t.test('a maintenance window is listed and its execution shown per instance', needsInstances(), async () => {
    await page.evaluate(() => Airlock.api('POST', '/v1/maintenance-windows', {
      name: 'web-patch', account: 'dev', target: 'tag:team=web', schedule: 'cron(0 3 ? * SUN *)',
      duration_seconds: 3600, cutoff_seconds: 0, tasks: [{ type: 'reboot' }],
    }));
    await page.evaluate(() => Airlock.api('POST', '/v1/maintenance-windows/web-patch/run', {}));
    await page.click('nav a[href="#/windows"]');
    await page.waitForSelector('#window-rows a:text-is("web-patch")');
    await shot('windows');
    await page.click('#window-rows a:text-is("web-patch")');
    await page.waitForSelector('#execution-rows .state-succeeded');
    assert.match(await page.textContent('#execution-rows'), new RegExp(deployed[1]));
    await shot('window');
  });

  await t.test("a deployment's roll shows each node's progress", needsInstances(), async () => {
    // A fresh one-node deployment (the web deployment has a stopped node, which refuses a roll).
    const dep = await page.evaluate(({ image, subnet }) => Airlock.api('POST', '/v1/deployments', {
      account: 'dev', image_id: image, instance_type: 't3.micro', subnet_id: subnet, credentials: 'none', count: 1,
    }), { image: IMAGE, subnet: SUBNET });
    await page.evaluate(async (id) => {
      for (let i = 0; i < 50; i += 1) {
        const d = await Airlock.api('GET', `/v1/deployments/${id}`);
        if (d.state === 'running') return;
        await new Promise((r) => setTimeout(r, 200));
      }
    }, dep.id);
    await page.evaluate(({ id, image }) => Airlock.api('POST', `/v1/deployments/${id}/roll`, { image_id: image }),
      { id: dep.id, image: IMAGE });
    await page.goto(`${URL}#/deployments/${dep.id}`);
    await page.waitForSelector('#roll-rows .state-done', { timeout: 30000 });
    assert.match(await page.textContent('#roll-body'), /1 of 1 nodes replaced/);
    await shot('deployment-roll');
  });

  await t.test('no secret reached the browser', async () => {
    const all = seen.join('\n');
    assert.ok(!all.includes(SECRET), 'the secret access key');
    assert.ok(!all.includes(ADMIN_PASSWORD), 'the admin password');
    assert.ok(!all.includes(BOB_PASSWORD), "bob's password");
    assert.ok(!/alk_[A-Za-z0-9_-]{20,}/.test(all), 'an API token');
  });

  await t.test('phone-sized instance page', needsInstances(), async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await phone.addCookies(await context.cookies());
    const p = await phone.newPage();
    await p.goto(`${URL}/#/instances`);
    await p.waitForSelector(`#instance-rows td:text-is("${deployed[1]}")`);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px on a phone`);
    await shot('instances-phone', p);
    await phone.close();
  });

  await t.test('1,000 instances: the measured render time', async () => {
    execFileSync(PYTHON, ['-c', `
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
for _ in range(4):
    ec2.run_instances(ImageId=sys.argv[2], InstanceType="t3.micro", MinCount=250, MaxCount=250,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "bench"}, {"Key": "Name", "Value": "bench"}]}])
`, MOTO_URL, IMAGE]);
    await page.evaluate(() => sessionStorage.clear());
    const start = Date.now();
    await page.click('nav a[href="#/instances"]');
    await page.waitForFunction(() => document.querySelectorAll('#instance-rows tr').length >= 1000, null, { timeout: 120000 });
    const total = Date.now() - start;
    const timings = await page.evaluate(() => ({
      render: performance.getEntriesByName('airlock:instances-render').map((e) => e.duration).pop(),
      fetch: performance.getEntriesByName('airlock:instances-fetch').map((e) => e.duration).pop(),
      rows: document.querySelectorAll('#instance-rows tr').length,
    }));
    // Grouped by a tag too, which renders group rows.
    await page.fill('#f-group', 'team');
    await page.dispatchEvent('#f-group', 'change');
    const grouped = await page.evaluate(() => performance.getEntriesByName('airlock:instances-render').map((e) => e.duration).pop());
    const benchGroup = await page.textContent('#instance-rows tr.group:has-text("team = bench") .count');
    await shot('instances-1000');
    console.log(`1,000-instance page: ${timings.rows} rows; render ${timings.render.toFixed(1)} ms (grouped ${grouped.toFixed(1)} ms); API answer ${timings.fetch.toFixed(0)} ms; click to rows ${total} ms`);
    // The trend above the table: the console sampled the account as soon as it was added.
    await page.waitForSelector('#instance-trend svg.trend-chart');
    assert.match(await page.textContent('#instance-trend .legend'), /running/);
    await page.locator('#instance-trend').screenshot({ path: join(ARTIFACTS, 'instances-trend.png') });
    // The page measured itself (the numbers above are real), and grouping counted every launch.
    assert.ok(Number.isFinite(timings.render) && Number.isFinite(timings.fetch) && Number.isFinite(grouped));
    assert.equal(benchGroup, '1000');
  });
});
