// Browser tests of the fleet pages (volumes, EBS snapshots, Elastic IPs, network interfaces,
// security groups, key pairs, images) against the console scripts/test-web started, after
// e2e.test.mjs. Resources are made in moto first; each page must list them, one action of each
// family goes through the page and is checked in EC2 itself, and a user who may only look sees
// the actions disabled with the reason and is refused when the request is forced. The gateway
// page shows a stored upstream's instances. Then a fleet page is checked at phone size and a
// page of 1,000 volumes is measured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { env, URL, MOTO_URL, shot, signIn, signOut, ec2py } from './lib.mjs';

const ADMIN_PASSWORD = env('AIRLOCK_ADMIN_PASSWORD');
const SUBNET = env('AIRLOCK_SUBNET');
const IMAGE = env('AIRLOCK_IMAGE');
const GROUP = env('AIRLOCK_GROUP');
const SECRET = 'web-test-secret-not-real-5d1c';
const CAROL_PASSWORD = 'carol-password-0123';

// Carol may use the account and look at everything, and change nothing.
const LOOK_ONLY = {
  Version: '2012-10-17',
  Statement: [{ Sid: 'Look', Effect: 'Allow', Action: ['airlock:UseAccount', 'ec2:Describe*'], Resource: '*' }],
};

let browser;
let context;
let page;
let made; // what was made in moto before the pages are opened

before(async () => {
  made = ec2py(`
subnet = ec2.describe_subnets(SubnetIds=[sys.argv[3]])["Subnets"][0]
zone = subnet["AvailabilityZone"]
tagged = lambda kind, value: [{"ResourceType": kind, "Tags": [{"Key": "team", "Value": value}]}]
instances = [i["InstanceId"] for i in ec2.run_instances(ImageId=sys.argv[4], MinCount=2, MaxCount=2,
    SubnetId=subnet["SubnetId"], TagSpecifications=tagged("instance", "fleet"))["Instances"]]
volume = ec2.create_volume(AvailabilityZone=zone, Size=1, TagSpecifications=tagged("volume", "fleet"))["VolumeId"]
snapshot = ec2.create_snapshot(VolumeId=volume, TagSpecifications=tagged("snapshot", "fleet"))["SnapshotId"]
address = ec2.allocate_address(Domain="vpc", TagSpecifications=tagged("elastic-ip", "fleet"))["AllocationId"]
ec2.associate_address(AllocationId=address, InstanceId=instances[0])
interface = ec2.create_network_interface(SubnetId=subnet["SubnetId"],
    TagSpecifications=tagged("network-interface", "fleet"))["NetworkInterface"]["NetworkInterfaceId"]
ec2.create_key_pair(KeyName="seeded", TagSpecifications=tagged("key-pair", "fleet"))
print(json.dumps({"zone": zone, "instances": instances, "volume": volume, "snapshot": snapshot,
                  "address": address, "interface": interface}))
`, [SUBNET, IMAGE]);
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
  context = await browser.newContext({ viewport: { width: 1366, height: 860 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(30000);
});

after(async () => {
  if (browser) await browser.close();
});

// The row of a listed resource, by the id shown in one of its cells.
const row = (id) => page.locator(`#fleet-rows tr:has(td:has-text("${id}"))`);

async function open(name, id) {
  await page.goto(`${URL}/#/${name}`);
  await row(id).waitFor();
}

// Selects a row and opens one of its actions once the policies allow it.
async function act(id, action) {
  await row(id).locator('input.pick').check();
  await page.waitForSelector(`#act-${action}:not([disabled])`);
  await page.click(`#act-${action}`);
}

// Submits the action form and waits for it to close (or fails with what the page says).
async function submit() {
  await page.click('#action-submit');
  await page.waitForFunction(() => !document.querySelector('#action-form')
    || Array.from(document.querySelectorAll('#action-form .form-error, #action-form .field-error')).some((e) => !e.hidden));
  const errors = await page.$$eval('#action-form .form-error:not([hidden]), #action-form .field-error:not([hidden])', (es) => es.map((e) => e.textContent));
  assert.deepEqual(errors, [], 'the action was refused');
}

test('the fleet pages', async (t) => {
  await t.test('admin signs in; the account is there', async () => {
    await signIn(page, 'admin', ADMIN_PASSWORD);
    const accounts = await page.evaluate(() => Airlock.api('GET', '/v1/accounts'));
    if (!accounts.some((a) => a.name === 'dev')) {
      await page.evaluate(([moto, secret]) => Airlock.api('POST', '/v1/accounts', {
        name: 'dev', region: 'us-east-1', access_key_id: 'AKIAIOSFODNN7EXAMPLE', secret_access_key: secret, endpoint_url: moto,
      }), [MOTO_URL, SECRET]);
    }
  });

  await t.test('volumes: listed with their zone, and one created in a picked zone is in EC2', async () => {
    await open('volumes', made.volume);
    assert.match(await row(made.volume).textContent(), new RegExp(`${made.zone}[\\s\\S]*team=fleet`));
    await page.click('#act-create');
    await page.waitForSelector(`#f-availability_zone option[value="${made.zone}"]`, { state: 'attached' });
    await page.selectOption('#f-availability_zone', made.zone);
    await page.fill('#f-size_gib', '3');
    await page.fill('#f-tags', 'team=fleet-new');
    await submit();
    const found = ec2py('print(json.dumps([[v["Size"], v["AvailabilityZone"]] for v in ec2.describe_volumes(Filters=[{"Name": "tag:team", "Values": ["fleet-new"]}])["Volumes"]]))');
    assert.deepEqual(found, [[3, made.zone]]);
    await page.waitForSelector('#fleet-rows td.tags:has-text("team=fleet-new")');
    await shot(page, 'volumes');
  });

  await t.test('EBS snapshots: listed, and one copied to another region is there', async () => {
    await open('ebs-snapshots', made.snapshot);
    await act(made.snapshot, 'copy');
    await page.fill('#f-destination_region', 'us-west-2');
    await page.fill('#f-tags', 'team=fleet-copy');
    await submit();
    const copies = ec2py('print(json.dumps(len(ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:team", "Values": ["fleet-copy"]}])["Snapshots"])))', [], 'us-west-2');
    assert.equal(copies, 1);
    await shot(page, 'ebs-snapshots');
  });

  await t.test('Elastic IPs: the address moves to the picked instance in one step', async () => {
    await open('addresses', made.address);
    assert.match(await row(made.address).textContent(), new RegExp(made.instances[0]));
    await act(made.address, 'move');
    await page.waitForSelector(`#f-instance_id option[value="${made.instances[1]}"]`, { state: 'attached' });
    await page.selectOption('#f-instance_id', made.instances[1]);
    await submit();
    const holder = ec2py('print(json.dumps(ec2.describe_addresses(AllocationIds=[sys.argv[3]])["Addresses"][0].get("InstanceId")))', [made.address]);
    assert.equal(holder, made.instances[1]);
    await page.waitForSelector(`#fleet-rows tr:has(td:has-text("${made.address}")):has(td:has-text("${made.instances[1]}"))`);
    await shot(page, 'addresses');
  });

  await t.test('network interfaces: one created with a fixed address in a picked subnet', async () => {
    await open('network-interfaces', made.interface);
    await page.click('#act-create');
    await page.waitForSelector(`#f-subnet_id option[value="${SUBNET}"]`, { state: 'attached' });
    await page.selectOption('#f-subnet_id', SUBNET);
    await page.fill('#f-private_ip', '127.0.0.200');
    await page.fill('#f-tags', 'team=fleet-eni');
    await submit();
    const found = ec2py('print(json.dumps([n["PrivateIpAddress"] for n in ec2.describe_network_interfaces(Filters=[{"Name": "tag:team", "Values": ["fleet-eni"]}])["NetworkInterfaces"]]))');
    assert.deepEqual(found, ['127.0.0.200']);
    await shot(page, 'network-interfaces');
  });

  await t.test('security groups: SSH open to the world is refused in words, a narrow rule is added', async () => {
    await open('security-groups', GROUP);
    await act(GROUP, 'authorize');
    await page.fill('#f-ports', '22');
    await page.fill('#f-cidr', '0.0.0.0/0');
    await page.click('#action-submit');
    const refusal = page.locator('#action-form .field-error:not([hidden]), #action-form .form-error:not([hidden])').first();
    await refusal.waitFor();
    assert.match(await refusal.textContent(), /SSH/);
    await page.fill('#f-ports', '443');
    await page.fill('#f-cidr', '10.0.0.0/8');
    await submit();
    const ports = ec2py('print(json.dumps([p.get("FromPort") for p in ec2.describe_security_groups(GroupIds=[sys.argv[3]])["SecurityGroups"][0]["IpPermissions"]]))', [GROUP]);
    assert.deepEqual(ports, [443]);
    await page.waitForSelector(`#fleet-rows tr:has(td:has-text("${GROUP}")) :text("tcp 443 ← 10.0.0.0/8")`);
    await shot(page, 'security-groups');
  });

  await t.test('key pairs: a new key is offered for download once, and EC2 has it', async () => {
    await open('key-pairs', 'seeded');
    await page.click('#act-create');
    await page.fill('#f-key_name', 'web-key');
    await page.selectOption('#f-key_type', 'rsa');
    await page.click('#action-submit');
    const link = page.locator('#key-download');
    await link.waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    assert.equal(download.suggestedFilename(), 'web-key.pem');
    assert.match(readFileSync(await download.path(), 'utf8'), /PRIVATE KEY/);
    await link.waitFor({ state: 'detached' });
    const names = ec2py('print(json.dumps(sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"])))');
    assert.ok(names.includes('web-key'), `EC2 has ${names}`);
    await row('web-key').waitFor();
    await shot(page, 'key-pairs');
  });

  await t.test('images: one is created from a picked instance', async () => {
    await page.goto(`${URL}/#/images`);
    await page.waitForSelector('#fleet-rows tr');
    await page.click('#act-create');
    await page.waitForSelector(`#f-instance_id option[value="${made.instances[0]}"]`, { state: 'attached' });
    await page.selectOption('#f-instance_id', made.instances[0]);
    await page.fill('#f-name', 'fleet-image');
    await submit();
    const images = ec2py('print(json.dumps([i["Name"] for i in ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["fleet-image"]}])["Images"]]))');
    assert.deepEqual(images, ['fleet-image']);
    await row('fleet-image').waitFor();
    await shot(page, 'images');
  });

  await t.test('gateway: a stored upstream shows the instances behind it and why the others are not', async () => {
    const yaml = [
      'apiVersion: gloo.solo.io/v1', 'kind: Upstream', 'metadata: {name: fleet, namespace: gloo-system}', 'spec:', '  awsEc2:',
      '    region: us-east-1', '    filters:', '    - kvPair: {key: team, value: fleet}', '    secretRef: {name: dev, namespace: airlock-console}',
    ].join('\n');
    await page.evaluate((y) => Airlock.api('PUT', '/v1/gateway/configs/fleet', { yaml: y }), yaml);
    await page.goto(`${URL}/#/gateway`);
    await page.waitForSelector('#gateway-configs summary:text-is("fleet")');
    const section = page.locator('section.upstream:has(h2:text-is("gloo-system/fleet"))');
    for (const id of made.instances) await section.locator(`table.members td:text-is("${id}")`).waitFor();
    assert.match(await section.textContent(), /its tags do not match tag:team=fleet/);
    await shot(page, 'gateway');
  });

  await t.test('a user who may only look sees every action disabled with the reason, and is refused when forcing one', async () => {
    await page.evaluate(async ([doc, password]) => {
      await Airlock.api('PUT', '/v1/policies/look-only', { document: doc });
      await Airlock.api('POST', '/v1/users', { name: 'carol', password, policies: ['look-only'] });
    }, [JSON.stringify(LOOK_ONLY), CAROL_PASSWORD]);
    await signOut(page);
    await signIn(page, 'carol', CAROL_PASSWORD);
    const cases = [
      ['volumes', made.volume, 'delete', 'ec2:DeleteVolume', '/v1/volumes/delete', { volume_id: made.volume }],
      ['ebs-snapshots', made.snapshot, 'delete', 'ec2:DeleteSnapshot', '/v1/snapshots/delete', { snapshot_id: made.snapshot }],
      ['addresses', made.address, 'release', 'ec2:ReleaseAddress', '/v1/addresses/release', { allocation_id: made.address }],
      ['network-interfaces', made.interface, 'delete', 'ec2:DeleteNetworkInterface', '/v1/network-interfaces/delete', { network_interface_id: made.interface }],
      ['security-groups', GROUP, 'delete', 'ec2:DeleteSecurityGroup', '/v1/security-groups/delete', { group_id: GROUP }],
      ['key-pairs', 'seeded', 'delete', 'ec2:DeleteKeyPair', '/v1/key-pairs/delete', { key_name: 'seeded' }],
      ['images', 'fleet-image', 'deregister', 'ec2:DeregisterImage', null, null],
    ];
    for (const [name, id, action, iam, path, body] of cases) {
      await open(name, id);
      await row(id).locator('input.pick').check();
      await page.waitForFunction((a) => /Not allowed/.test(document.querySelector(`#why-${a}`).textContent), action);
      assert.equal(await page.isDisabled(`#act-${action}`), true, `${name}: ${action} is disabled`);
      assert.match(await page.textContent(`#why-${action}`), new RegExp(`${iam}|implicitly denied|no statement`, 'i'));
      if (name === 'volumes') await shot(page, 'volumes-carol');
      const refused = await page.evaluate(async ([p, b]) => {
        try { await Airlock.api('POST', p, { account: 'dev', ...b }); return null; } catch (e) { return { status: e.status, message: e.message }; }
      }, [path || `/v1/images/${action}`, body || { image_id: await row(id).locator('input.pick').evaluate((x) => x.value.split('/')[1]) }]);
      assert.equal(refused && refused.status, 403, `${name}: a forced ${action} is refused (${JSON.stringify(refused)})`);
      assert.match(refused.message, new RegExp(`carol is not authorized to perform ${iam}`));
    }
    const still = ec2py('print(json.dumps([len(ec2.describe_volumes(VolumeIds=[sys.argv[3]])["Volumes"]), len(ec2.describe_key_pairs(KeyNames=["seeded"])["KeyPairs"])]))', [made.volume]);
    assert.deepEqual(still, [1, 1], 'nothing was deleted');
    await signOut(page);
    await signIn(page, 'admin', ADMIN_PASSWORD);
  });

  await t.test('keyboard: a volume is picked and its snapshot form opened without the mouse', async () => {
    await open('volumes', made.volume);
    await row(made.volume).locator('input.pick').focus();
    await page.keyboard.press('Space');
    await page.waitForFunction((id) => document.querySelector('#why-snapshot').textContent.includes(id), made.volume);
    await page.focus('#act-snapshot');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#action-form');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-description');
    // Escape closes the form and the focus goes back to the action.
    await page.keyboard.press('Escape');
    await page.waitForSelector('#action-form', { state: 'detached' });
    assert.equal(await page.evaluate(() => document.activeElement.id), 'act-snapshot');
  });

  await t.test('every new page fits a phone', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await phone.addCookies(await context.cookies());
    const p = await phone.newPage();
    for (const name of ['volumes', 'ebs-snapshots', 'addresses', 'network-interfaces', 'security-groups', 'key-pairs', 'images', 'gateway']) {
      await p.goto(`${URL}/#/${name}`);
      await p.waitForSelector(name === 'gateway' ? 'section.upstream' : '#fleet-rows tr[data-key]');
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${name} scrolls sideways by ${overflow}px on a phone`);
    }
    await p.goto(`${URL}/#/volumes`);
    await p.waitForSelector(`#fleet-rows td:has-text("${made.volume}")`);
    await shot(p, 'volumes-phone');
    await phone.close();
  });

  await t.test('1,000 volumes: the measured render time', async () => {
    ec2py(`
for n in range(1000):
    ec2.create_volume(AvailabilityZone=sys.argv[3], Size=1,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "team", "Value": "bench"}]}])
`, [made.zone]);
    await page.evaluate(() => sessionStorage.clear());
    await page.goto(`${URL}/#/deployments`);
    const start = Date.now();
    await page.goto(`${URL}/#/volumes`);
    await page.waitForFunction(() => document.querySelectorAll('#fleet-rows tr').length >= 1000, null, { timeout: 120000 });
    const total = Date.now() - start;
    const render = await page.evaluate(() => performance.getEntriesByName('airlock:volumes-render').map((e) => e.duration).pop());
    await page.fill('#f-group', 'team');
    await page.dispatchEvent('#f-group', 'change');
    const grouped = await page.evaluate(() => performance.getEntriesByName('airlock:volumes-render').map((e) => e.duration).pop());
    const bench = await page.textContent('#fleet-rows tr.group:has-text("team = bench") .count');
    console.log(`1,000-volume page: render ${render.toFixed(1)} ms after the data arrived (grouped ${grouped.toFixed(1)} ms); open to rows ${total} ms`);
    assert.ok(Number.isFinite(render) && Number.isFinite(grouped));
    assert.equal(bench, '1000');
    await shot(page, 'volumes-1000');
  });
});
