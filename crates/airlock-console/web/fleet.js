// Airlock web console, fleet pages: volumes, EBS snapshots, Elastic IPs, network interfaces,
// security groups, key pairs and images. One page for every family, driven by the family's
// description below: the same filter box, grouping by tag, selection and actions as the
// instances page. Each action is asked of `POST /v1/authorize/check` for the selection, and is
// disabled with the reason when the reader's policies refuse it; the console decides again
// when it is sent (`POST /v1/{family}/{verb}`), so a forced request is refused all the same.
'use strict';

(() => {
  const {
    api, h, $, $all, field, showError, clearErrors, confirmAction, age, debounce, poll, pages,
    tagsText, stateBadge, parseFilters, parseTags, groupedRows, tagKeyOptions,
  } = Airlock;

  const mono = (v) => `<span class="mono">${h(v)}</span>`;
  const when = (iso) => (iso ? `<span title="${h(iso)}">${h(age(iso))} ago</span>` : '');
  const rulesText = (rules) => (rules || []).map((r) => {
    const ports = r.from_port === undefined || r.from_port === null ? 'all'
      : r.from_port === r.to_port ? String(r.from_port) : `${r.from_port}-${r.to_port}`;
    return `${r.protocol === '-1' ? 'all' : r.protocol} ${ports} ← ${r.cidr || r.group_id || '?'}`;
  }).join(', ');

  // Form fields the actions share. `type` picks the control; `from` fills a select from the API.
  const F = {
    account: { name: 'account', label: 'Account', type: 'account' },
    tags: { name: 'tags', label: 'Tags', type: 'textarea', hint: 'One KEY=VALUE per line; applied on creation' },
    description: { name: 'description', label: 'Description', type: 'text' },
    instance: (label, hint) => ({ name: 'instance_id', label, type: 'instance', hint }),
  };

  // What each family shows and lets the reader do. `target: 'one'` acts on the selected item,
  // `'new'` creates one; `body` builds the request from the form values (`v`) and the item.
  const FAMILIES = [
    {
      page: 'volumes', path: 'volumes', title: 'Volumes', kind: 'volume', id: 'volume_id',
      hint: 'status=available, volume-type=gp3, availability-zone=us-east-1a, tag:team=web…',
      columns: [
        ['Volume', (x) => mono(x.volume_id)], ['State', (x) => stateBadge(x.state)],
        ['Size', (x) => (x.size_gib ? `${h(x.size_gib)} GiB` : '')], ['Type', (x) => h(x.volume_type)],
        ['Zone', (x) => h(x.availability_zone)], ['Attached to', (x) => mono((x.attached_to || []).join(' '))],
        ['Encrypted', (x) => (x.encrypted ? 'yes' : 'no')],
      ],
      actions: [
        {
          name: 'create', label: 'Create volume', iam: 'ec2:CreateVolume', target: 'new',
          fields: [F.account, { name: 'availability_zone', label: 'Availability Zone', type: 'zone' },
            { name: 'size_gib', label: 'Size (GiB)', type: 'number', value: '8' },
            { name: 'volume_type', label: 'Type', type: 'select', options: ['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard'] },
            { name: 'encrypted', label: 'Encrypted with the account’s default key', type: 'checkbox' }, F.tags],
          body: (v) => ({ account: v.account, availability_zone: v.availability_zone, size_gib: Number(v.size_gib), volume_type: v.volume_type, encrypted: v.encrypted, tags: parseTags(v.tags) }),
        },
        {
          name: 'attach', label: 'Attach', iam: 'ec2:AttachVolume', target: 'one',
          fields: [F.instance('Instance', 'Running or stopped instances of the volume’s account and zone'),
            { name: 'device', label: 'Device', type: 'text', value: '/dev/sdf' }],
          instances: (x) => [`availability-zone=${x.availability_zone}`],
          body: (v, x) => ({ account: x.account, volume_id: x.volume_id, instance_id: v.instance_id, device: v.device }),
        },
        {
          name: 'detach', label: 'Detach', iam: 'ec2:DetachVolume', target: 'one',
          confirm: (x) => `Detach ${x.volume_id} from ${(x.attached_to || []).join(', ') || 'its instance'}? Unmount it first.`,
          body: (v, x) => ({ account: x.account, volume_id: x.volume_id }),
        },
        {
          name: 'snapshot', label: 'Snapshot', iam: 'ec2:CreateSnapshot', target: 'one', family: 'snapshots', verb: 'create',
          fields: [F.description, F.tags],
          body: (v, x) => ({ account: x.account, volume_id: x.volume_id, description: v.description || undefined, tags: parseTags(v.tags) }),
        },
        {
          name: 'delete', label: 'Delete', iam: 'ec2:DeleteVolume', target: 'one', danger: true,
          confirm: (x) => `Delete ${x.volume_id}? Its data cannot be recovered unless it has a snapshot.`,
          body: (v, x) => ({ account: x.account, volume_id: x.volume_id }),
        },
      ],
    },
    {
      page: 'ebs-snapshots', path: 'snapshots', title: 'EBS snapshots', kind: 'snapshot', id: 'snapshot_id',
      hint: 'status=completed, volume-id=vol-…, tag:team=web…',
      columns: [
        ['Snapshot', (x) => mono(x.snapshot_id)], ['State', (x) => stateBadge(x.state)], ['Progress', (x) => h(x.progress)],
        ['Volume', (x) => mono(x.volume_id)], ['Size', (x) => (x.volume_size_gib ? `${h(x.volume_size_gib)} GiB` : '')],
        ['Started', (x) => when(x.start_time)], ['Description', (x) => h(x.description)],
      ],
      actions: [
        {
          name: 'copy', label: 'Copy to region', iam: 'ec2:CopySnapshot', target: 'one',
          fields: [{ name: 'destination_region', label: 'Destination region', type: 'text', value: 'us-west-2' }, F.description, F.tags],
          body: (v, x) => ({ account: x.account, snapshot_id: x.snapshot_id, destination_region: v.destination_region, description: v.description || undefined, tags: parseTags(v.tags) }),
        },
        {
          name: 'delete', label: 'Delete', iam: 'ec2:DeleteSnapshot', target: 'one', danger: true,
          confirm: (x) => `Delete ${x.snapshot_id}? Volumes cannot be restored from it afterwards.`,
          body: (v, x) => ({ account: x.account, snapshot_id: x.snapshot_id }),
        },
      ],
    },
    {
      page: 'addresses', path: 'addresses', title: 'Elastic IPs', kind: 'elastic-ip', id: 'allocation_id',
      hint: 'public-ip=…, instance-id=i-…, tag:team=web…',
      columns: [
        ['Address', (x) => mono(x.public_ip)], ['Allocation', (x) => mono(x.allocation_id)],
        ['Instance', (x) => mono(x.instance_id)], ['Private IP', (x) => mono(x.private_ip)],
        ['Association', (x) => mono(x.association_id)],
      ],
      actions: [
        {
          name: 'allocate', label: 'Allocate', iam: 'ec2:AllocateAddress', target: 'new', fields: [F.account, F.tags],
          body: (v) => ({ account: v.account, tags: parseTags(v.tags) }),
        },
        {
          name: 'move', label: 'Move to instance', iam: 'ec2:AssociateAddress', target: 'one',
          fields: [F.instance('To instance', 'EC2 moves it in one step: it is never unassociated in between')],
          body: (v, x) => ({ account: x.account, allocation_id: x.allocation_id, to_instance_id: v.instance_id }),
        },
        {
          name: 'disassociate', label: 'Disassociate', iam: 'ec2:DisassociateAddress', target: 'one',
          confirm: (x) => `Disassociate ${x.public_ip} from ${x.instance_id || 'its interface'}?`,
          body: (v, x) => ({ account: x.account, allocation_id: x.allocation_id }),
        },
        {
          name: 'release', label: 'Release', iam: 'ec2:ReleaseAddress', target: 'one', danger: true,
          confirm: (x) => `Release ${x.public_ip}? The address goes back to AWS and may never be yours again.`,
          body: (v, x) => ({ account: x.account, allocation_id: x.allocation_id }),
        },
      ],
    },
    {
      page: 'network-interfaces', path: 'network-interfaces', title: 'Network interfaces', kind: 'network-interface', id: 'network_interface_id',
      hint: 'status=available, subnet-id=subnet-…, attachment.instance-id=i-…, tag:team=web…',
      columns: [
        ['Interface', (x) => mono(x.network_interface_id)], ['Status', (x) => stateBadge(x.status)],
        ['Private IP', (x) => mono(x.private_ip)], ['Subnet', (x) => mono(x.subnet_id)], ['Zone', (x) => h(x.availability_zone)],
        ['Attached to', (x) => (x.attachment ? `${mono(x.attachment.instance_id)} #${h(x.attachment.device_index)}` : '')],
        ['Description', (x) => h(x.description)],
      ],
      actions: [
        {
          name: 'create', label: 'Create interface', iam: 'ec2:CreateNetworkInterface', target: 'new',
          fields: [F.account, { name: 'subnet_id', label: 'Subnet', type: 'subnet' },
            { name: 'private_ip', label: 'Fixed private address', type: 'text', hint: 'Empty: EC2 picks one in the subnet' },
            { name: 'security_group_ids', label: 'Security groups', type: 'text', hint: 'Ids separated by spaces' }, F.description, F.tags],
          body: (v) => ({ account: v.account, subnet_id: v.subnet_id, private_ip: v.private_ip || undefined, security_group_ids: v.security_group_ids.split(/[\s,]+/).filter(Boolean), description: v.description || undefined, tags: parseTags(v.tags) }),
        },
        {
          name: 'move', label: 'Move to instance', iam: 'ec2:AttachNetworkInterface', target: 'one',
          fields: [F.instance('To instance', 'Detached from its instance and attached to this one, with its private address')],
          instances: (x) => [`availability-zone=${x.availability_zone}`],
          body: (v, x) => ({ account: x.account, network_interface_id: x.network_interface_id, to_instance_id: v.instance_id }),
        },
        {
          name: 'delete', label: 'Delete', iam: 'ec2:DeleteNetworkInterface', target: 'one', danger: true,
          confirm: (x) => `Delete ${x.network_interface_id}? Its private address ${x.private_ip || ''} is given up.`,
          body: (v, x) => ({ account: x.account, network_interface_id: x.network_interface_id }),
        },
      ],
    },
    {
      page: 'security-groups', path: 'security-groups', title: 'Security groups', kind: 'security-group', id: 'group_id',
      hint: 'group-name=web, vpc-id=vpc-…, tag:team=web…',
      columns: [
        ['Group', (x) => mono(x.group_id)], ['Name', (x) => h(x.group_name)], ['VPC', (x) => mono(x.vpc_id)],
        ['Inbound', (x) => `<span class="small">${h(rulesText(x.ingress))}</span>`],
        ['Outbound', (x) => `<span class="small">${h(rulesText(x.egress))}</span>`], ['Description', (x) => h(x.description)],
      ],
      actions: [
        {
          name: 'create', label: 'Create group', iam: 'ec2:CreateSecurityGroup', target: 'new',
          fields: [F.account, { name: 'group_name', label: 'Name', type: 'text' }, { name: 'description', label: 'Description', type: 'text' },
            { name: 'vpc_id', label: 'VPC', type: 'text', hint: 'Empty: the default VPC' }, F.tags],
          body: (v) => ({ account: v.account, group_name: v.group_name, description: v.description, vpc_id: v.vpc_id || undefined, tags: parseTags(v.tags) }),
        },
        {
          name: 'authorize', label: 'Add rule', iam: 'ec2:AuthorizeSecurityGroupIngress', target: 'one',
          fields: [{ name: 'direction', label: 'Direction', type: 'select', options: ['ingress', 'egress'] },
            { name: 'protocol', label: 'Protocol', type: 'select', options: ['tcp', 'udp', 'icmp', '-1'] },
            { name: 'ports', label: 'Port or range', type: 'text', value: '443', hint: '443 or 8000-8080' },
            { name: 'cidr', label: 'Source (CIDR)', type: 'text', value: '10.0.0.0/8' },
            { name: 'allow_world', label: 'I mean to open an administrative port to the whole internet', type: 'checkbox' }],
          body: (v, x) => ({ account: x.account, group_id: x.group_id, direction: v.direction, allow_world: v.allow_world, rules: [rule(v)] }),
        },
        {
          name: 'revoke', label: 'Remove rule', iam: 'ec2:RevokeSecurityGroupIngress', target: 'one',
          fields: [{ name: 'rule', label: 'Rule', type: 'rule' }],
          body: (v, x) => {
            const [direction, n] = v.rule.split(':');
            const r = (direction === 'egress' ? x.egress : x.ingress)[Number(n)];
            return { account: x.account, group_id: x.group_id, direction, rules: [r] };
          },
        },
        {
          name: 'delete', label: 'Delete', iam: 'ec2:DeleteSecurityGroup', target: 'one', danger: true,
          confirm: (x) => `Delete ${x.group_name} (${x.group_id})?`,
          body: (v, x) => ({ account: x.account, group_id: x.group_id }),
        },
      ],
    },
    {
      page: 'key-pairs', path: 'key-pairs', title: 'Key pairs', kind: 'key-pair', id: 'key_name',
      hint: 'key-name=ops, key-pair-id=key-…, tag:team=web…',
      columns: [
        ['Name', (x) => h(x.key_name)], ['Type', (x) => h(x.key_type)], ['Fingerprint', (x) => `<span class="mono small">${h(x.key_fingerprint)}</span>`],
        ['Created', (x) => when(x.created_at)], ['Id', (x) => mono(x.key_pair_id)],
      ],
      actions: [
        {
          name: 'create', label: 'Create key pair', iam: 'ec2:CreateKeyPair', target: 'new',
          fields: [F.account, { name: 'key_name', label: 'Name', type: 'text' },
            { name: 'key_type', label: 'Type', type: 'select', options: ['ed25519', 'rsa'] }, F.tags],
          body: (v) => ({ account: v.account, key_name: v.key_name, key_type: v.key_type, tags: parseTags(v.tags) }),
        },
        {
          name: 'import', label: 'Import public key', iam: 'ec2:ImportKeyPair', target: 'new',
          fields: [F.account, { name: 'key_name', label: 'Name', type: 'text' },
            { name: 'public_key', label: 'Public key', type: 'textarea', hint: 'One line: ssh-ed25519 AAAA… or ssh-rsa AAAA…' }, F.tags],
          body: (v) => ({ account: v.account, key_name: v.key_name, public_key: v.public_key.trim(), tags: parseTags(v.tags) }),
        },
        {
          name: 'delete', label: 'Delete', iam: 'ec2:DeleteKeyPair', target: 'one', danger: true,
          confirm: (x) => `Delete key pair ${x.key_name}? Instances launched with it keep the key; new ones cannot use it.`,
          body: (v, x) => ({ account: x.account, key_name: x.key_name }),
        },
      ],
    },
    {
      page: 'images', path: 'images', title: 'Images', kind: 'image', id: 'image_id',
      hint: 'name=web-*, state=available, tag:team=web… (images this account owns)',
      columns: [
        ['Image', (x) => mono(x.image_id)], ['Name', (x) => h(x.name)], ['State', (x) => stateBadge(x.state)],
        ['Owner', (x) => mono(x.owner_id)], ['Created', (x) => when(x.creation_date)], ['Description', (x) => h(x.description)],
      ],
      actions: [
        {
          name: 'create', label: 'Create from instance', iam: 'ec2:CreateImage', target: 'new',
          fields: [F.account, F.instance('Instance', 'Its volumes are snapshotted into the image'),
            { name: 'name', label: 'Name', type: 'text' }, F.description,
            { name: 'no_reboot', label: 'Do not reboot the instance (the file systems may be inconsistent)', type: 'checkbox' }, F.tags],
          body: (v) => ({ account: v.account, instance_id: v.instance_id, name: v.name, description: v.description || undefined, no_reboot: v.no_reboot, tags: parseTags(v.tags) }),
        },
        {
          name: 'deregister', label: 'Deregister', iam: 'ec2:DeregisterImage', target: 'one', danger: true,
          confirm: (x) => `Deregister ${x.name || ''} (${x.image_id})? No instance can be launched from it afterwards; its snapshots stay.`,
          body: (v, x) => ({ account: x.account, image_id: x.image_id }),
        },
      ],
    },
  ];

  // A security group rule from the form: `443` or `8000-8080`, ICMP and all-traffic without ports.
  function rule(v) {
    const r = { protocol: v.protocol, cidr: v.cidr.trim() };
    if (v.protocol === 'tcp' || v.protocol === 'udp') {
      const [from, to] = v.ports.split('-').map((p) => Number(p.trim()));
      r.from_port = from;
      r.to_port = to === undefined ? from : to;
    }
    return r;
  }

  // One control of an action's form.
  function control(f) {
    const id = `f-${f.name}`;
    switch (f.type) {
      case 'checkbox':
        return `<div class="field" data-field="${h(f.name)}"><label><input type="checkbox" id="${id}" name="${h(f.name)}"> ${h(f.label)}</label>
          <p class="field-error" role="alert" hidden></p></div>`;
      case 'textarea':
        return field(f.name, f.label, `<textarea id="${id}" name="${h(f.name)}" rows="3" class="mono"></textarea>`, f.hint);
      case 'number':
        return field(f.name, f.label, `<input id="${id}" name="${h(f.name)}" type="number" min="1" value="${h(f.value || '')}">`, f.hint);
      case 'select':
        return field(f.name, f.label, `<select id="${id}" name="${h(f.name)}">${f.options.map((o) => `<option>${h(o)}</option>`).join('')}</select>`, f.hint);
      case 'account': case 'instance': case 'subnet': case 'zone': case 'rule':
        return field(f.name, f.label, `<select id="${id}" name="${h(f.name)}" data-from="${f.type}" required><option value="">Loading…</option></select>`, f.hint);
      default:
        return field(f.name, f.label, `<input id="${id}" name="${h(f.name)}" value="${h(f.value || '')}">`, f.hint);
    }
  }

  // Fills the form's API-backed selects: accounts, then what depends on the chosen account.
  async function fillSelects(form, action, item, accounts) {
    const set = (sel, options, empty) => {
      sel.innerHTML = options.length ? options.map(([v, label]) => `<option value="${h(v)}">${h(label)}</option>`).join('')
        : `<option value="">${h(empty)}</option>`;
    };
    const account = () => (item ? item.account : form.account && form.account.value);
    for (const sel of $all('select[data-from="account"]', form)) {
      set(sel, accounts.map((a) => [a.name, `${a.name} (${a.region})`]), 'No accounts');
    }
    const dependents = async () => {
      const a = account();
      const q = (extra) => new URLSearchParams([['account', a], ...extra.map((f) => ['filter', f])]).toString();
      for (const sel of $all('select[data-from]', form)) {
        const from = sel.dataset.from;
        try {
          if (from === 'instance') {
            const filters = ['instance-state-name=running,stopped', ...(action.instances && item ? action.instances(item) : [])];
            const { instances } = await api('GET', `/v1/instances?${q(filters)}`);
            set(sel, instances.map((i) => {
              const name = (i.tags || []).find((t) => t.key === 'Name');
              return [i.instance_id, `${i.instance_id}${name ? ` (${name.value})` : ''} · ${i.state} · ${i.private_ip || ''}`];
            }), 'No instance to choose');
          } else if (from === 'subnet' || from === 'zone') {
            const { items } = await api('GET', `/v1/subnets?${q([])}`);
            if (from === 'subnet') {
              set(sel, items.map((s) => [s.subnet_id, `${s.subnet_id} · ${s.availability_zone} · ${s.cidr_block} · ${s.available_ip_address_count} free`]), 'No subnet you may use');
            } else {
              const zones = Array.from(new Set(items.map((s) => s.availability_zone))).sort();
              set(sel, zones.map((z) => [z, z]), 'No zone with a subnet you may use');
            }
          } else if (from === 'rule' && item) {
            const rules = [...(item.ingress || []).map((r, n) => [`ingress:${n}`, `inbound ${rulesText([r])}`]),
              ...(item.egress || []).map((r, n) => [`egress:${n}`, `outbound ${rulesText([r])}`])];
            set(sel, rules, 'The group has no rules');
          }
        } catch (err) {
          set(sel, [], `Cannot list: ${err.message}`);
        }
      }
    };
    if (form.account) form.account.addEventListener('change', dependents);
    await dependents();
  }

  // The form's values by field name (checkboxes as booleans).
  function values(form, action) {
    const out = {};
    for (const f of action.fields || []) {
      const el = form.elements[f.name];
      out[f.name] = f.type === 'checkbox' ? el.checked : el.value;
    }
    return out;
  }

  // Lets the reader save a private key EC2 returns once; it is not kept anywhere else.
  function offerKey(panel, name, key) {
    const url = URL.createObjectURL(new Blob([key], { type: 'application/x-pem-file' }));
    panel.innerHTML = `<div class="notice ok" role="status"><p>Key pair <strong>${h(name)}</strong> created. Its private key is shown this once:
      save it now, EC2 and the console keep no copy.</p>
      <p><a id="key-download" href="${h(url)}" download="${h(name)}.pem">Download ${h(name)}.pem</a>
      <button type="button" class="link" id="key-done">Done</button></p></div>`;
    const done = () => { URL.revokeObjectURL(url); panel.innerHTML = ''; };
    $('#key-download', panel).addEventListener('click', () => setTimeout(done, 1000));
    $('#key-done', panel).addEventListener('click', done);
  }

  function familyPage(fam) {
    return {
      title: fam.title,
      render(root) {
        const saved = new URLSearchParams(sessionStorage.getItem(`airlock.${fam.page}`) || '');
        const cols = fam.columns.length + 3;
        root.innerHTML = `<h1>${h(fam.title)}</h1>
          <form class="toolbar" id="fleet-filter" role="search">
            <div class="field grow" data-field="filter"><label for="f-filter">Filter</label>
              <input id="f-filter" name="filter" value="${h(saved.get('q') || '')}" placeholder="${h(fam.hint)}" aria-describedby="filter-hint">
              <small class="hint" id="filter-hint">EC2 filters separated by spaces: ${h(fam.hint)}</small>
              <p class="field-error" role="alert" hidden></p></div>
            <div class="field" data-field="group"><label for="f-group">Group by tag</label>
              <input id="f-group" name="group" list="tag-keys" value="${h(saved.get('g') || '')}"><datalist id="tag-keys"></datalist></div>
            <button type="submit">Apply</button>
          </form>
          <div class="toolbar action-bar" id="fleet-actions" role="group" aria-label="Actions">
            ${fam.actions.map((a) => `<div class="action"><button type="button" id="act-${a.name}" data-action="${a.name}"
              class="${a.danger ? 'danger' : ''}" disabled aria-describedby="why-${a.name}">${h(a.label)}</button>
              <small class="why" id="why-${a.name}">${a.target === 'one' ? 'Select one first' : 'Checking…'}</small></div>`).join('')}
            <p class="form-error" role="alert" hidden></p>
            <p class="status" id="fleet-action-status" role="status"></p>
          </div>
          <section id="fleet-form" aria-live="polite"></section>
          <p class="status" id="fleet-status" role="status" aria-live="polite">Loading…</p>
          <div class="table-wrap"><table class="fleet fleet-${h(fam.page)}"><caption class="visually-hidden">${h(fam.title)}</caption>
            <thead><tr><th scope="col"><span class="visually-hidden">Select</span></th>${fam.columns.map(([c]) => `<th scope="col">${h(c)}</th>`).join('')}
            <th scope="col">Account</th><th scope="col">Tags</th></tr></thead>
            <tbody id="fleet-rows"><tr><td colspan="${cols}">Loading…</td></tr></tbody></table></div>`;

        const form = $('#fleet-filter', root);
        const tbody = $('#fleet-rows', root);
        const bar = $('#fleet-actions', root);
        const panel = $('#fleet-form', root);
        let items = [];
        let accounts = [];
        let picked = null; // "account/id"
        let signature = '';
        const keyOf = (x) => `${x.account}/${x[fam.id]}`;
        const selected = () => items.find((x) => keyOf(x) === picked) || null;

        const rowHtml = (x) => {
          const key = keyOf(x);
          return `<tr data-key="${h(key)}"${key === picked ? ' class="selected"' : ''}>
            <td><input type="radio" name="pick" class="pick" value="${h(key)}" aria-label="Select ${h(x[fam.id])}"${key === picked ? ' checked' : ''}></td>
            ${fam.columns.map(([, cell]) => `<td>${cell(x)}</td>`).join('')}
            <td>${h(x.account)}</td><td class="tags">${h(tagsText(x.tags))}</td></tr>`;
        };

        const render = () => {
          const t0 = performance.now();
          const html = groupedRows(items, form.group.value.trim(), cols, rowHtml);
          tbody.innerHTML = html || `<tr><td colspan="${cols}" class="empty">Nothing matches.</td></tr>`;
          $('#tag-keys', root).innerHTML = tagKeyOptions(items);
          performance.measure(`airlock:${fam.page}-render`, { start: t0, end: performance.now() });
        };

        const load = async () => {
          const q = new URLSearchParams();
          for (const f of parseFilters(form.filter.value)) q.append('filter', f);
          try {
            const data = await api('GET', `/v1/${fam.path}${q.toString() ? `?${q}` : ''}`);
            items = data.items.sort((a, b) => a.account.localeCompare(b.account) || String(a[fam.id]).localeCompare(String(b[fam.id])));
            if (picked && !selected()) picked = null;
            const now = JSON.stringify(items);
            if (now !== signature) {
              signature = now;
              render();
              decide();
            }
            clearErrors(form);
            $('#fleet-status', root).textContent = `${items.length} shown · as of ${new Date().toLocaleTimeString()}`;
          } catch (err) {
            $('#fleet-status', root).textContent = '';
            showError(form, err);
          }
        };

        // What the reader's policies decide for each action: on the selected item, or on a new
        // one in any account they may use.
        const decide = debounce(async () => {
          const x = selected();
          const checks = [];
          const asked = [];
          for (const a of fam.actions) {
            if (a.target === 'one') {
              if (!x) continue;
              checks.push({ action: a.iam, account: x.account, resource: `${fam.kind}/${x[fam.id]}` });
              asked.push([a, 1]);
            } else {
              for (const acc of accounts) checks.push({ action: a.iam, account: acc.name, resource: `${fam.kind}/*` });
              asked.push([a, accounts.length]);
            }
          }
          for (const a of fam.actions) {
            if (a.target === 'one' && !x) {
              $(`#act-${a.name}`, root).disabled = true;
              $(`#why-${a.name}`, root).textContent = 'Select one first';
            }
          }
          if (!checks.length) return;
          try {
            const { results } = await api('POST', '/v1/authorize/check', { checks });
            let n = 0;
            for (const [a, count] of asked) {
              const mine = results.slice(n, n + count);
              n += count;
              const ok = mine.find((r) => r.allowed);
              const button = $(`#act-${a.name}`, root);
              button.disabled = !ok;
              $(`#why-${a.name}`, root).textContent = ok ? (a.target === 'one' ? x[fam.id] : '')
                : `Not allowed: ${mine.length ? mine[0].reason : 'no account you may use'}`;
            }
          } catch (err) {
            showError(bar, err);
          }
        }, 120);

        const send = async (action, body) => {
          const path = `/v1/${action.family || fam.path}/${action.verb || action.name}`;
          const out = await api('POST', path, body);
          $('#fleet-action-status', root).textContent = out.message || `${action.label}: done`;
          signature = '';
          await load();
          return out;
        };

        const openForm = async (action, item) => {
          panel.innerHTML = `<form class="grid action-form" id="action-form" novalidate aria-labelledby="action-title">
            <h2 class="wide" id="action-title">${h(action.label)}${item ? ` · ${h(item[fam.id])}` : ''}</h2>
            <p class="form-error" role="alert" hidden></p>
            ${action.fields.map(control).join('')}
            <div class="wide actions"><button type="button" id="action-cancel">Cancel</button>
            <button type="submit" class="${action.danger ? 'danger' : 'primary'}" id="action-submit">${h(action.label)}</button></div></form>`;
          const f = $('#action-form', panel);
          // Cancel (or Escape) closes the form and gives the focus back to the action.
          const close = () => { panel.innerHTML = ''; $(`#act-${action.name}`, root).focus(); };
          $('#action-cancel', f).addEventListener('click', close);
          f.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') close(); });
          f.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            clearErrors(f);
            try {
              const out = await send(action, action.body(values(f, action), item));
              if (out.private_key) offerKey(panel, f.elements.key_name ? f.elements.key_name.value : out.resource_id, out.private_key);
              else panel.innerHTML = '';
            } catch (err) {
              showError(f, err);
            }
          });
          const first = $('input, select, textarea', f);
          if (first) first.focus();
          await fillSelects(f, action, item, accounts);
        };

        tbody.addEventListener('change', (ev) => {
          const box = ev.target.closest('input.pick');
          if (!box) return;
          picked = box.value;
          for (const tr of $all('tr.selected', tbody)) tr.classList.remove('selected');
          box.closest('tr').classList.add('selected');
          panel.innerHTML = '';
          decide();
        });
        bar.addEventListener('click', async (ev) => {
          const button = ev.target.closest('button[data-action]');
          if (!button) return;
          const action = fam.actions.find((a) => a.name === button.dataset.action);
          const item = action.target === 'one' ? selected() : null;
          clearErrors(bar);
          if (action.target === 'one' && !item) return;
          if (action.fields) { openForm(action, item); return; }
          if (!(await confirmAction(action.confirm(item), action.label))) return;
          try {
            await send(action, action.body({}, item));
          } catch (err) {
            showError(bar, err);
          }
        });
        form.addEventListener('submit', (ev) => {
          ev.preventDefault();
          sessionStorage.setItem(`airlock.${fam.page}`, new URLSearchParams({ q: form.filter.value, g: form.group.value }).toString());
          signature = '';
          load();
        });
        form.group.addEventListener('change', render);

        api('GET', '/v1/accounts').then((list) => { accounts = list; decide(); }).catch((err) => showError(bar, err));
        return poll(load, 10000);
      },
    };
  }

  for (const fam of FAMILIES) pages[fam.page] = familyPage(fam);
})();
