// What the browser test files share: the environment scripts/test-web passes, screenshots,
// signing in and out with the keyboard, and moto reached with boto3 to see what EC2 holds.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the browser tests with scripts/test-web`);
  return v;
};

export const URL = env('AIRLOCK_URL');
export const MOTO_URL = env('AIRLOCK_MOTO_URL');
export const PYTHON = env('AIRLOCK_PYTHON');
export const ARTIFACTS = env('AIRLOCK_ARTIFACTS');

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export async function signIn(page, user, password) {
  await page.goto(URL);
  await page.waitForSelector('#sign-in-form');
  // With the keyboard only: the user field has focus, Tab to the password, Enter submits.
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('header.top:not([hidden])');
  assert.equal(await page.textContent('#who-user'), user);
}

export async function signOut(page) {
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in-form');
}

// Runs Python with an EC2 client `ec2` on moto (us-east-1, or `region`) and returns what the
// code prints, parsed as JSON when it is.
export function ec2py(code, args = [], region = 'us-east-1') {
  const out = execFileSync(PYTHON, ['-c', `
import json, sys, boto3
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name=sys.argv[2],
                   aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
${code}
`, MOTO_URL, region, ...args], { encoding: 'utf8' });
  try { return JSON.parse(out); } catch (_) { return out; }
}
