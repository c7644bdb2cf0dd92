// Airlock web console, pages: instances, deploy, deployments, snapshot policies, commands,
// maintenance windows, accounts,
// users, policies, simulator and audit. Each page renders into <main> and returns a function that stops its
// polling when the reader leaves. Tables are built as one HTML string and set in one pass.
'use strict';

(() => {
  const {
    api, h, $, $all, field, showError, clearErrors, confirmAction, age, debounce, poll, pages,
    tagsText, stateBadge, parseFilters, parseTags, groupedRows, tagKeyOptions,
  } = Airlock;

  const ACTIONS = [
    { name: 'start', api: 'ec2:StartInstances', label: 'Start' },
    { name: 'stop', api: 'ec2:StopInstances', label: 'Stop' },
    { name: 'reboot', api: 'ec2:RebootInstances', label: 'Reboot' },
    { name: 'terminate', api: 'ec2:TerminateInstances', label: 'Terminate', danger: true },
  ];

  // The instance types the deploy page offers (any other can be typed).
  const INSTANCE_TYPES = ['t3.nano', 't3.micro', 't3.small', 't3.medium', 't3.large', 't4g.micro', 't4g.small', 't4g.medium',
    'm7i.large', 'm7i.xlarge', 'm7g.large', 'c7i.large', 'c7i.xlarge', 'c7g.large', 'r7i.large', 'r7g.large'];

  // Instances by state over the last hour, as a small line chart (SVG built as text: no inline
  // style, so the CSP holds) with a legend and a sentence for screen readers.
  const TREND_COLORS = {
    running: '#137333', pending: '#9a6700', stopping: '#b06000', stopped: '#b42318', 'shutting-down': '#6b4c9a', terminated: '#8a939e',
  };
  function trendHtml(trend) {
    const samples = trend.samples;
    if (!samples.length) return '<p class="hint">No samples yet: the console counts the instances once a minute.</p>';
    const W = 640; const H = 120; const L = 32; const B = 18;
    const end = Date.now(); const start = end - 60 * 60 * 1000;
    const states = Array.from(new Set(samples.flatMap((p) => Object.keys(p.counts)))).sort();
    const top = Math.max(1, ...samples.flatMap((p) => Object.values(p.counts)));
    const x = (at) => L + ((Date.parse(at) - start) / (end - start)) * (W - L - 4);
    const y = (n) => 4 + (1 - n / top) * (H - B - 4);
    const lines = states.map((st) => {
      const color = TREND_COLORS[st] || '#0b5cad';
      const pts = samples.map((p) => `${x(p.at).toFixed(1)},${y(p.counts[st] || 0).toFixed(1)}`);
      return pts.length > 1 ? `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"><title>${h(st)}</title></polyline>`
        : `<circle cx="${pts[0].split(',')[0]}" cy="${pts[0].split(',')[1]}" r="3" fill="${color}"><title>${h(st)}</title></circle>`;
    }).join('');
    const last = samples[samples.length - 1].counts;
    const summary = states.map((st) => `${last[st] || 0} ${st}`).join(', ');
    return `<svg viewBox="0 0 ${W} ${H}" class="trend-chart" role="img" aria-labelledby="trend-title trend-desc">
        <title id="trend-title">Instances by state over the last hour</title><desc id="trend-desc">Now: ${h(summary)}</desc>
        <line x1="${L}" y1="${H - B}" x2="${W}" y2="${H - B}" stroke="#d6dbe1"/><line x1="${L}" y1="4" x2="${L}" y2="${H - B}" stroke="#d6dbe1"/>
        <text x="${L - 4}" y="12" text-anchor="end" font-size="11" fill="#5b6470">${top}</text>
        <text x="${L - 4}" y="${H - B}" text-anchor="end" font-size="11" fill="#5b6470">0</text>
        <text x="${L}" y="${H - 4}" font-size="11" fill="#5b6470">an hour ago</text>
        <text x="${W}" y="${H - 4}" text-anchor="end" font-size="11" fill="#5b6470">now</text>${lines}</svg>
      <ul class="legend">${states.map((st) => `<li><span class="swatch state state-${h(st)}">${h(st)}</span> ${h(last[st] || 0)}</li>`).join('')}</ul>`;
  }

  // ---------------------------------------------------------------------------- instances --
  pages.instances = {
    title: 'Instances',
    render(root) {
      const params = new URLSearchParams(sessionStorage.getItem('airlock.instances') || '');
      root.innerHTML = `<h1>Instances</h1>
        <form id="instance-filter" class="toolbar" role="search">
          <div class="field grow" data-field="filter">
            <label for="f-filter">Filter</label>
            <input id="f-filter" name="filter" placeholder="tag:team=web instance-state-name=running" value="${h(params.get('q') || '')}" aria-describedby="filter-hint">
            <small class="hint" id="filter-hint">EC2 filters separated by spaces: tag:KEY=VALUE, tag-key=KEY, instance-state-name=running, instance-type=t3.micro…</small>
            <p class="field-error" role="alert" hidden></p>
          </div>
          <div class="field" data-field="group">
            <label for="f-group">Group by tag</label>
            <input id="f-group" name="group" list="tag-keys" placeholder="team" value="${h(params.get('g') || '')}">
            <datalist id="tag-keys"></datalist>
            <p class="field-error" role="alert" hidden></p>
          </div>
          <button type="submit">Apply</button>
        </form>
        <div class="toolbar action-bar" id="instance-actions" aria-label="Actions on the selected instances" role="group">
          ${ACTIONS.map((a) => `<div class="action">
            <button type="button" id="act-${a.name}" data-action="${a.name}" class="${a.danger ? 'danger' : ''}" disabled aria-describedby="why-${a.name}">${a.label}</button>
            <small class="why" id="why-${a.name}">Select instances first</small></div>`).join('')}
          <p class="form-error" id="instance-action-error" role="alert" hidden></p>
          <p class="status" id="instance-action-status" role="status"></p>
        </div>
        <figure class="trend" id="instance-trend" aria-label="Instances by state over the last hour"></figure>
        <p class="status" id="instances-status" role="status" aria-live="polite">Loading…</p>
        <div class="table-wrap"><table class="instances">
          <caption class="visually-hidden">Instances across accounts and regions</caption>
          <thead><tr><th scope="col"><input type="checkbox" id="select-all" aria-label="Select all shown instances"></th>
          <th scope="col">Instance</th><th scope="col">Name</th><th scope="col">State</th><th scope="col">Type</th>
          <th scope="col">Private IP</th><th scope="col">Public IP</th><th scope="col">Account</th><th scope="col">Age</th><th scope="col">Tags</th></tr></thead>
          <tbody id="instance-rows"></tbody></table></div>`;

      const form = $('#instance-filter', root);
      const tbody = $('#instance-rows', root);
      const selected = new Set(); // "account/instance-id"
      let instances = [];
      let lastSignature = '';
      let decisions = {};

      const rowHtml = (i) => {
        const key = `${i.account}/${i.instance_id}`;
        const name = (i.tags || []).find((t) => t.key === 'Name');
        return `<tr data-key="${h(key)}"${selected.has(key) ? ' class="selected"' : ''}>
          <td><input type="checkbox" class="pick" value="${h(key)}" aria-label="Select ${h(i.instance_id)}"${selected.has(key) ? ' checked' : ''}></td>
          <td class="mono">${h(i.instance_id)}</td><td>${h(name ? name.value : '')}</td><td>${stateBadge(i.state)}</td>
          <td>${h(i.instance_type)}</td><td class="mono">${h(i.private_ip)}</td><td class="mono">${h(i.public_ip)}</td>
          <td>${h(i.account)}</td><td title="${h(i.launch_time)}">${h(age(i.launch_time))}</td><td class="tags">${h(tagsText(i.tags))}</td></tr>`;
      };

      const render = () => {
        const t0 = performance.now();
        const html = groupedRows(instances, form.group.value.trim(), 10, rowHtml);
        tbody.innerHTML = html || '<tr><td colspan="10" class="empty">No instances match.</td></tr>';
        $('#tag-keys', root).innerHTML = tagKeyOptions(instances);
        performance.measure('airlock:instances-render', { start: t0, end: performance.now() });
      };

      const query = () => {
        const q = new URLSearchParams();
        for (const f of parseFilters(form.filter.value)) q.append('filter', f);
        return q.toString();
      };

      let statusEl = $('#instances-status', root);
      const load = async () => {
        try {
          const t0 = performance.now();
          const data = await api('GET', `/v1/instances${query() ? `?${query()}` : ''}`);
          const fetched = performance.now();
          instances = data.instances.sort((a, b) => a.account.localeCompare(b.account) || a.instance_id.localeCompare(b.instance_id));
          const signature = JSON.stringify(instances.map((i) => [i.instance_id, i.state, i.private_ip, i.public_ip, i.tags]));
          const present = new Set(instances.map((i) => `${i.account}/${i.instance_id}`));
          for (const k of Array.from(selected)) if (!present.has(k)) selected.delete(k);
          if (signature !== lastSignature) {
            lastSignature = signature;
            render();
            refreshDecisions();
          }
          clearErrors(form);
          // The time EC2 was asked: listings within a moment share one look.
          const asOf = data.described_at ? new Date(data.described_at) : new Date();
          statusEl.textContent = `${instances.length} instance${instances.length === 1 ? '' : 's'} · as of ${asOf.toLocaleTimeString()}`;
          performance.measure('airlock:instances-fetch', { start: t0, end: fetched });
        } catch (err) {
          statusEl.textContent = '';
          showError(form, err);
        }
      };

      // What the caller's policies decide for each action on the selection, asked of the API.
      const refreshDecisions = debounce(async () => {
        const picked = instances.filter((i) => selected.has(`${i.account}/${i.instance_id}`));
        for (const a of ACTIONS) {
          const button = $(`#act-${a.name}`, root);
          if (!picked.length) {
            button.disabled = true;
            $(`#why-${a.name}`, root).textContent = 'Select instances first';
          }
        }
        if (!picked.length) return;
        const checks = [];
        for (const a of ACTIONS) for (const i of picked) checks.push({ action: a.api, account: i.account, resource: `instance/${i.instance_id}` });
        try {
          const { results } = await api('POST', '/v1/authorize/check', { checks });
          decisions = {};
          results.forEach((r, n) => {
            const a = ACTIONS[Math.floor(n / picked.length)];
            const i = picked[n % picked.length];
            if (!decisions[a.name]) decisions[a.name] = { allowed: true, reason: r.reason };
            if (!r.allowed && decisions[a.name].allowed) decisions[a.name] = { allowed: false, reason: `${i.instance_id}: ${r.reason}` };
          });
          for (const a of ACTIONS) {
            const d = decisions[a.name];
            $(`#act-${a.name}`, root).disabled = !d.allowed;
            $(`#why-${a.name}`, root).textContent = d.allowed ? `${picked.length} selected` : `Not allowed: ${d.reason}`;
          }
        } catch (err) {
          showError($('#instance-actions', root), err);
        }
      }, 120);

      tbody.addEventListener('change', (ev) => {
        const box = ev.target.closest('input.pick');
        if (!box) return;
        if (box.checked) selected.add(box.value); else selected.delete(box.value);
        box.closest('tr').classList.toggle('selected', box.checked);
        refreshDecisions();
      });
      $('#select-all', root).addEventListener('change', (ev) => {
        for (const i of instances) {
          const k = `${i.account}/${i.instance_id}`;
          if (ev.target.checked) selected.add(k); else selected.delete(k);
        }
        render();
        refreshDecisions();
      });
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        sessionStorage.setItem('airlock.instances', new URLSearchParams({ q: form.filter.value, g: form.group.value }).toString());
        lastSignature = '';
        load();
      });
      form.group.addEventListener('change', render);

      $('#instance-actions', root).addEventListener('click', async (ev) => {
        const button = ev.target.closest('button[data-action]');
        if (!button) return;
        const action = ACTIONS.find((a) => a.name === button.dataset.action);
        const picked = instances.filter((i) => selected.has(`${i.account}/${i.instance_id}`));
        const area = $('#instance-actions', root);
        clearErrors(area);
        if (!picked.length) return;
        const ids = picked.map((i) => i.instance_id).join(', ');
        const warning = action.name === 'terminate' ? ' Terminated instances cannot be started again.' : '';
        if (!(await confirmAction(`${action.label} ${picked.length} instance${picked.length === 1 ? '' : 's'} (${ids})?${warning}`, action.label))) return;
        const byAccount = new Map();
        for (const i of picked) {
          if (!byAccount.has(i.account)) byAccount.set(i.account, []);
          byAccount.get(i.account).push(i.instance_id);
        }
        try {
          for (const [account, instanceIds] of byAccount) {
            await api('POST', `/v1/instances/${action.name}`, { account, instance_ids: instanceIds });
          }
          $('#instance-action-status', root).textContent = `${action.label}: requested for ${ids}`;
          lastSignature = '';
          load();
        } catch (err) {
          showError(area, err);
        }
      });

      const trend = async () => {
        try {
          $('#instance-trend', root).innerHTML = trendHtml(await api('GET', '/v1/instances/trend?minutes=60'));
        } catch (err) {
          $('#instance-trend', root).innerHTML = `<p class="hint">No trend: ${h(err.message)}</p>`;
        }
      };
      const stops = [poll(load, 4000), poll(trend, 60000)];
      return () => stops.forEach((stop) => stop());
    },
  };

  // ------------------------------------------------------------------------------- deploy --
  pages.deploy = {
    title: 'Deploy',
    render(root) {
      root.innerHTML = `<h1>Deploy an image</h1>
        <form id="deploy-form" class="grid" novalidate>
          <p class="form-error" role="alert" hidden></p>
          ${field('account', 'Account', '<select id="f-account" name="account" required></select>')}
          ${field('region', 'Region', '<input id="f-region" name="region" readonly>', "The account's region")}
          <div class="field wide" data-field="image_id">
            <label for="f-image-search">Image</label>
            <input id="f-image-search" type="search" placeholder="Search by name, id, owner or date; or type another AMI id" aria-controls="f-image_id">
            <select id="f-image_id" name="image_id" size="5" required aria-label="Images of the account"><option value="">Loading…</option></select>
            <small class="hint">The account's own images, newest first</small>
            <p class="field-error" role="alert" hidden></p>
          </div>
          ${field('instance_type', 'Instance type', `<input id="f-instance_type" name="instance_type" required value="t3.micro" list="instance-types"><datalist id="instance-types">${INSTANCE_TYPES.map((t) => `<option value="${t}">`).join('')}</datalist>`, 'Type or pick: t3, t4g, m7i, c7i, r7i…')}
          ${field('count', 'Count', '<input id="f-count" name="count" type="number" min="1" max="1000" value="1" required>')}
          ${field('subnet_id', 'Subnet', '<select id="f-subnet_id" name="subnet_id"><option value="">The default subnet</option></select>', 'Zone, range and free addresses of each')}
          ${field('key_name', 'Key pair', '<select id="f-key_name" name="key_name"><option value="">No key pair</option></select>')}
          <fieldset class="field wide" data-field="security_group_ids"><legend>Security groups</legend>
            <div id="f-security_group_ids" class="checks">None: the VPC's default group</div>
            <p class="field-error" role="alert" hidden></p></fieldset>
          ${field('credentials', 'Instance credentials', `<select id="f-credentials" name="credentials">
              <option value="">Console default</option><option value="scoped">scoped: short-lived, limited to the deployment</option>
              <option value="bootstrap">bootstrap: a one-time token exchanged at first boot</option>
              <option value="account">account: the account's key</option><option value="none">none: no payload</option></select>`, 'Console default: scoped')}
          ${field('tags', 'Tags', '<textarea id="f-tags" name="tags" rows="3" placeholder="team=web&#10;owner=ana" class="mono"></textarea>', 'One KEY=VALUE per line; applied on creation')}
          ${field('user_script', 'User script', '<textarea id="f-user_script" name="user_script" rows="5" class="mono" placeholder="#!/bin/sh"></textarea>', 'Run by cloud-init beside the Airlock payload')}
          <section class="allowed wide" aria-labelledby="allowed-title">
            <h2 id="allowed-title">What your policies allow</h2>
            <div id="deploy-allowed" role="status" aria-live="polite">Fill in the account and image.</div>
          </section>
          <div class="wide"><button type="submit" class="primary" id="deploy-submit">Deploy</button>
            <small class="why" id="deploy-why"></small></div>
        </form>`;
      const form = $('#deploy-form', root);
      let accounts = [];
      let clientToken = crypto.randomUUID();

      const tags = () => parseTags(form.tags.value);
      const groups = () => $all('#f-security_group_ids input:checked', form).map((c) => c.value);
      const request = () => {
        const r = {
          client_token: clientToken,
          account: form.account.value,
          image_id: form.image_id.value,
          instance_type: form.instance_type.value.trim(),
          count: Number(form.count.value),
          security_group_ids: groups(),
          tags: tags(),
        };
        if (form.subnet_id.value.trim()) r.subnet_id = form.subnet_id.value.trim();
        if (form.key_name.value.trim()) r.key_name = form.key_name.value.trim();
        if (form.user_script.value) r.user_script = form.user_script.value;
        // Sent only when chosen, so the console's own default applies otherwise.
        if (form.credentials.value) r.credentials = form.credentials.value;
        return r;
      };

      // The checks RunInstances makes (docs/authorization.md), asked of the API before submitting.
      const preview = debounce(async () => {
        const r = request();
        const out = $('#deploy-allowed', root);
        const submit = $('#deploy-submit', root);
        if (!r.account || !r.image_id) { out.textContent = 'Fill in the account and image.'; return; }
        const reqCtx = {};
        for (const t of r.tags) reqCtx[`aws:RequestTag/${t.key}`] = t.value;
        if (r.tags.length) reqCtx['aws:TagKeys'] = r.tags.map((t) => t.key);
        const run = 'ec2:RunInstances';
        const checks = [{ action: run, account: r.account, resource: `image/${r.image_id}` },
          { action: run, account: r.account, resource: `subnet/${r.subnet_id || '*'}` }];
        for (const sg of r.security_group_ids.length ? r.security_group_ids : ['*']) checks.push({ action: run, account: r.account, resource: `security-group/${sg}` });
        if (r.key_name) checks.push({ action: run, account: r.account, resource: `key-pair/${r.key_name}` });
        checks.push({ action: run, account: r.account, resource: 'instance/*', context: { ...reqCtx, 'ec2:InstanceType': r.instance_type } });
        checks.push({ action: run, account: r.account, resource: 'volume/*', context: reqCtx });
        checks.push({ action: run, account: r.account, resource: 'network-interface/*' });
        for (const kind of ['instance', 'volume']) checks.push({ action: 'ec2:CreateTags', account: r.account, resource: `${kind}/*`, context: { ...reqCtx, 'ec2:CreateAction': 'RunInstances' } });
        try {
          const { results } = await api('POST', '/v1/authorize/check', { checks });
          const denied = results.filter((x) => !x.allowed);
          if (!denied.length) {
            out.innerHTML = '<p class="ok">Allowed: every resource this launch touches is allowed by your policies.</p>';
            submit.disabled = false;
            $('#deploy-why', root).textContent = '';
          } else {
            out.innerHTML = `<ul class="denied">${denied.map((x) => `<li><strong>${h(x.action)}</strong> on <span class="mono">${h(x.resource)}</span>: ${h(x.reason)}</li>`).join('')}</ul>`;
            submit.disabled = true;
            $('#deploy-why', root).textContent = `Not allowed: ${denied[0].action} on ${denied[0].resource}: ${denied[0].reason}`;
          }
        } catch (err) {
          out.textContent = `Cannot check: ${err.message}`;
          submit.disabled = false;
        }
      }, 300);

      // The pickers: what the chosen account has, as its listings show it to this reader.
      let images = [];
      const showImages = () => {
        const q = $('#f-image-search', root).value.trim().toLowerCase();
        const chosen = form.image_id.value;
        const shown = images.filter((i) => !q || [i.image_id, i.name, i.owner_id, i.creation_date, i.description]
          .some((v) => v && String(v).toLowerCase().includes(q)));
        let html = shown.map((i) => `<option value="${h(i.image_id)}">${h(i.name || '(no name)')} · ${h(i.image_id)} · owner ${h(i.owner_id || '?')} · ${h((i.creation_date || '').slice(0, 10))}</option>`).join('');
        if (/^ami-[0-9a-f]{8,17}$/.test(q) && !shown.some((i) => i.image_id === q)) {
          html += `<option value="${h(q)}">${h(q)} (not owned by this account)</option>`;
        }
        form.image_id.innerHTML = html || '<option value="" disabled>No image matches</option>';
        if (Array.from(form.image_id.options).some((o) => o.value === chosen)) form.image_id.value = chosen;
        else if (/^ami-/.test(q) && form.image_id.options.length === 1) form.image_id.selectedIndex = 0;
      };
      const loadPickers = async () => {
        const account = form.account.value;
        if (!account) return;
        const q = `account=${encodeURIComponent(account)}`;
        const list = (path) => api('GET', `${path}?${q}`).then((d) => d.items).catch((err) => { showError(form, err); return []; });
        const [imgs, subnets, sgs, keys] = await Promise.all([list('/v1/images'), list('/v1/subnets'), list('/v1/security-groups'), list('/v1/key-pairs')]);
        images = imgs.sort((a, b) => String(b.creation_date || '').localeCompare(String(a.creation_date || '')));
        showImages();
        form.subnet_id.innerHTML = '<option value="">The default subnet</option>' + subnets.map((x) => `<option value="${h(x.subnet_id)}">${h(x.subnet_id)} · ${h(x.availability_zone)} · ${h(x.cidr_block)} · ${h(x.available_ip_address_count)} free${x.tags && x.tags.find((t) => t.key === 'Name') ? ` · ${h(x.tags.find((t) => t.key === 'Name').value)}` : ''}</option>`).join('');
        form.key_name.innerHTML = '<option value="">No key pair</option>' + keys.map((k) => `<option value="${h(k.key_name)}">${h(k.key_name)} (${h(k.key_type || '')})</option>`).join('');
        $('#f-security_group_ids', root).innerHTML = sgs.length ? sgs.map((g) => `<label class="check"><input type="checkbox" value="${h(g.group_id)}">
          ${h(g.group_name)} <span class="mono">${h(g.group_id)}</span> <span class="hint">${h(g.vpc_id || '')}</span></label>`).join('')
          : "None: the VPC's default group";
        preview();
      };
      $('#f-image-search', root).addEventListener('input', () => { showImages(); preview(); });

      api('GET', '/v1/accounts').then((list) => {
        accounts = list;
        form.account.innerHTML = list.length
          ? list.map((a) => `<option value="${h(a.name)}">${h(a.name)} (${h(a.region)})</option>`).join('')
          : '<option value="">No accounts: add one first</option>';
        form.region.value = list.length ? list[0].region : '';
        loadPickers();
        preview();
      }).catch((err) => showError(form, err));

      form.account.addEventListener('change', () => {
        const a = accounts.find((x) => x.name === form.account.value);
        form.region.value = a ? a.region : '';
        loadPickers();
      });
      form.addEventListener('input', () => { preview(); });
      form.addEventListener('change', () => { preview(); });
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(form);
        try {
          const dep = await api('POST', '/v1/deployments', request());
          clientToken = crypto.randomUUID();
          location.hash = `#/deployments/${encodeURIComponent(dep.id)}`;
        } catch (err) {
          showError(form, err);
        }
      });
    },
  };

  // -------------------------------------------------------------------------- deployments --
  const SETTLED = new Set(['running', 'failed']);

  pages.deployments = {
    title: 'Deployments',
    render(root, [id]) {
      if (id) return deploymentDetail(root, id);
      root.innerHTML = `<h1>Deployments</h1><p><a href="#/deploy">Deploy an image</a></p>
        <p class="form-error" role="alert" hidden></p>
        <div class="table-wrap"><table><thead><tr><th scope="col">Deployment</th><th scope="col">Account</th><th scope="col">State</th>
        <th scope="col">Instances</th><th scope="col">Image</th><th scope="col">Tags</th><th scope="col">By</th><th scope="col">Created</th></tr></thead>
        <tbody id="deployment-rows"><tr><td colspan="8">Loading…</td></tr></tbody></table></div>`;
      return poll(async () => {
        try {
          const list = await api('GET', '/v1/deployments');
          $('#deployment-rows', root).innerHTML = list.map((d) => `<tr>
            <td><a class="mono" href="#/deployments/${encodeURIComponent(d.id)}">${h(d.id)}</a></td><td>${h(d.account)}</td><td>${stateBadge(d.state)}</td>
            <td>${d.instances.filter((i) => i.state === 'running').length} / ${h(d.count)} running</td><td class="mono">${h(d.spec.image_id)}</td>
            <td class="tags">${h(tagsText(d.spec.tags))}</td><td>${h(d.created_by)}</td><td title="${h(d.created_at)}">${h(age(d.created_at))} ago</td></tr>`).join('')
            || '<tr><td colspan="8" class="empty">No deployments yet.</td></tr>';
        } catch (err) { showError(root, err); }
      }, 5000);
    },
  };

  // The deployment's latest roll, or null when it was never rolled.
  async function latestRoll(id) {
    try { return await api('GET', `/v1/deployments/${encodeURIComponent(id)}/roll`); } catch (err) { return null; }
  }

  function rollSection(r) {
    if (!r) return '';
    const done = r.nodes.filter((n) => n.step === 'done').length;
    return `<h2>Roll to <span class="mono">${h(r.image_id)}</span></h2>
      <div class="progress" role="status" aria-live="polite">${stateBadge(r.state)}
        <progress max="${Math.max(r.nodes.length, 1)}" value="${done}" aria-label="Nodes replaced">${done}/${r.nodes.length}</progress>
        ${done} of ${r.nodes.length} nodes replaced · ${h(r.batch)} at a time · health ${h(r.health)}</div>
      ${r.error ? `<p class="form-error" role="alert">${h(r.error)}</p>` : ''}
      <div class="table-wrap"><table><thead><tr><th scope="col">Node</th><th scope="col">Step</th><th scope="col">Replacement</th>
      <th scope="col">Identity</th><th scope="col">Error</th></tr></thead>
      <tbody id="roll-rows">${r.nodes.map((n) => `<tr><td class="mono">${h(n.old_instance_id)}</td><td>${stateBadge(n.step)}</td>
        <td class="mono">${h(n.new_instance_id || '–')}</td>
        <td class="mono">${h([...n.interfaces.map((i) => `${i.network_interface_id} ${i.private_ip || ''}`), ...n.volumes.map((v) => `${v.volume_id} ${v.device}`), n.allocation_id || ''].filter(Boolean).join(', ') || '–')}</td>
        <td>${h(n.error || '')}</td></tr>`).join('')}</tbody></table></div>`;
  }

  function deploymentDetail(root, id) {
    root.innerHTML = `<p><a href="#/deployments">← Deployments</a></p><h1>Deployment <span class="mono">${h(id)}</span></h1>
      <p class="form-error" role="alert" hidden></p><div id="deployment-body">Loading…</div>
      <div id="roll-body"></div>
      <form id="scale-form" class="toolbar" novalidate>
        ${field('count', 'Scale to', '<input id="f-count" name="count" type="number" min="0" max="1000" required>', '0 terminates every instance')}
        <button type="submit">Scale</button><p class="form-error" role="alert" hidden></p>
      </form>`;
    const form = $('#scale-form', root);
    let filled = false;
    let stop = null;
    const load = async () => {
      let d;
      try { d = await api('GET', `/v1/deployments/${encodeURIComponent(id)}`); } catch (err) { showError(root, err); return; }
      if (!filled) { form.count.value = d.count; filled = true; }
      const running = d.instances.filter((i) => i.state === 'running').length;
      const settled = SETTLED.has(d.state) && (d.state === 'failed' || running >= d.count);
      const s = d.spec;
      $('#deployment-body', root).innerHTML = `
        <div class="progress" role="status" aria-live="polite">${stateBadge(d.state)}
          <progress max="${h(Math.max(d.count, 1))}" value="${running}" aria-label="Instances running">${running}/${h(d.count)}</progress>
          ${running} of ${h(d.count)} running${settled ? '' : ' · watching…'}</div>
        ${d.error ? `<p class="form-error" role="alert">${h(d.error)}</p>` : ''}
        <dl class="spec">
          <dt>Account</dt><dd>${h(d.account)}</dd><dt>Image</dt><dd class="mono">${h(s.image_id)}</dd>
          <dt>Type</dt><dd>${h(s.instance_type)}</dd><dt>Subnet</dt><dd class="mono">${h(s.subnet_id || 'default')}</dd>
          <dt>Security groups</dt><dd class="mono">${h(s.security_group_ids.join(', ') || 'default')}</dd>
          <dt>Key pair</dt><dd>${h(s.key_name || 'none')}</dd><dt>Tags</dt><dd>${h(tagsText(s.tags) || 'none')}</dd>
          <dt>Payload</dt><dd>IMDSv2 hop limit ${h(s.metadata_hop_limit)} · ${s.has_user_script ? 'with a user script' : 'no user script'} · ${h((s.tasks || []).length)} boot task(s)${s.credentials ? ` · credentials ${h(s.credentials)}` : ''}</dd>
          <dt>Created</dt><dd>${h(d.created_at)} by ${h(d.created_by)}</dd></dl>
        <h2>Instances</h2>
        <div class="table-wrap"><table><thead><tr><th scope="col">Instance</th><th scope="col">State</th><th scope="col">Private IP</th><th scope="col">Public IP</th></tr></thead>
        <tbody>${d.instances.map((i) => `<tr><td class="mono">${h(i.instance_id)}</td><td>${stateBadge(i.state)}</td><td class="mono">${h(i.private_ip)}</td><td class="mono">${h(i.public_ip)}</td></tr>`).join('')
          || '<tr><td colspan="4" class="empty">None yet.</td></tr>'}</tbody></table></div>`;
      $('#roll-body', root).innerHTML = rollSection(await latestRoll(id));
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      try {
        await api('POST', `/v1/deployments/${encodeURIComponent(id)}/scale`, { count: Number(form.count.value) });
        load();
      } catch (err) { showError(form, err); }
    });
    stop = poll(load, 2000);
    return () => stop();
  }

  // --------------------------------------------------------------------- snapshot policies --
  pages.snapshots = {
    title: 'Snapshot policies',
    render(root, [name]) {
      if (name) return snapshotPolicyDetail(root, name);
      root.innerHTML = `<h1>Snapshot policies</h1>
        <p>EBS snapshots of the volumes a tag selects, on a schedule; each run acts with its creator's permissions.
        Create them with <code>airlock snapshot-policy create</code>.</p>
        <p class="form-error" role="alert" hidden></p>
        <div class="table-wrap"><table><thead><tr><th scope="col">Policy</th><th scope="col">Account</th><th scope="col">Volumes</th>
        <th scope="col">Schedule</th><th scope="col">Keeps</th><th scope="col">Next run</th><th scope="col">Owner</th></tr></thead>
        <tbody id="snapshot-policy-rows"><tr><td colspan="7">Loading…</td></tr></tbody></table></div>`;
      return poll(async () => {
        try {
          const { policies } = await api('GET', '/v1/snapshot-policies');
          $('#snapshot-policy-rows', root).innerHTML = policies.map((p) => `<tr>
            <td><a href="#/snapshots/${encodeURIComponent(p.name)}">${h(p.name)}</a></td><td>${h(p.account)}</td>
            <td class="mono">${h(p.target)}</td><td class="mono">${h(p.schedule)}</td><td>${h(keeps(p))}</td>
            <td title="${h(p.next_run_at || '')}">${h(p.next_run_at || 'never')}</td><td>${h(p.created_by)}</td></tr>`).join('')
            || '<tr><td colspan="7" class="empty">No snapshot policies yet.</td></tr>';
        } catch (err) { showError(root, err); }
      }, 10000);
    },
  };

  function keeps(p) {
    return [p.retain ? `newest ${p.retain}` : '', p.retain_days ? `${p.retain_days} days` : ''].filter(Boolean).join(' and ');
  }

  function snapshotPolicyDetail(root, name) {
    root.innerHTML = `<p><a href="#/snapshots">← Snapshot policies</a></p><h1>Snapshot policy ${h(name)}</h1>
      <p class="form-error" role="alert" hidden></p>
      <div class="toolbar"><button type="button" id="run-now" disabled>Run now</button> <span id="why-run" class="hint"></span></div>
      <div id="policy-body">Loading…</div>`;
    const button = $('#run-now', root);
    const load = async () => {
      let p;
      try { p = await api('GET', `/v1/snapshot-policies/${encodeURIComponent(name)}`); } catch (err) { showError(root, err); return; }
      $('#policy-body', root).innerHTML = `<dl class="spec">
          <dt>Account</dt><dd>${h(p.account)}</dd><dt>Volumes</dt><dd class="mono">${h(p.target)}</dd>
          <dt>Schedule</dt><dd class="mono">${h(p.schedule)}</dd><dt>Keeps</dt><dd>${h(keeps(p))}</dd>
          <dt>Next run</dt><dd>${h(p.next_run_at || 'never')}</dd><dt>Owner</dt><dd>${h(p.created_by)} (every run acts with their permissions)</dd></dl>
        <h2>Runs</h2>
        <div class="table-wrap"><table><thead><tr><th scope="col">Run</th><th scope="col">Trigger</th><th scope="col">State</th><th scope="col">Started</th>
        <th scope="col">Created</th><th scope="col">Deleted</th><th scope="col">Errors</th></tr></thead>
        <tbody>${(p.runs || []).map((r) => `<tr><td class="mono">${h(r.id)}</td><td>${h(r.trigger)}</td><td>${stateBadge(r.state)}</td>
          <td title="${h(r.started_at)}">${h(age(r.started_at))} ago</td><td class="mono">${h(r.created.join(' '))}</td>
          <td class="mono">${h(r.deleted.join(' '))}</td><td>${h(r.errors.join('; '))}</td></tr>`).join('')
          || '<tr><td colspan="7" class="empty">No runs yet.</td></tr>'}</tbody></table></div>`;
    };
    // Whether the reader may run it, asked of the API: the button says why not.
    (async () => {
      try {
        const { results } = await api('POST', '/v1/authorize/check', {
          checks: [{ action: 'airlock:RunSnapshotPolicy', resource: `arn:airlock:console:::snapshot-policy/${name}` }],
        });
        button.disabled = !results[0].allowed;
        $('#why-run', root).textContent = results[0].allowed ? '' : `Not allowed: ${results[0].reason}`;
      } catch (err) { showError(root, err); }
    })();
    button.addEventListener('click', async () => {
      if (!(await confirmAction(`Run ${name} now? Every volume it selects is snapshotted now, and its snapshots beyond retention are deleted.`, 'Run now'))) return;
      button.disabled = true;
      try {
        await api('POST', `/v1/snapshot-policies/${encodeURIComponent(name)}/run`, {});
      } catch (err) { showError(root, err); }
      button.disabled = false;
      load();
    });
    return poll(load, 5000);
  }

  // ------------------------------------------------------------------------------ commands --
  pages.commands = {
    title: 'Commands',
    render(root, [id]) {
      if (id) return commandDetail(root, id);
      root.innerHTML = `<h1>Commands</h1>
        <p>Command lines run by the agents of the instances a tag selects. Send them with <code>airlock command run</code>.</p>
        <p class="form-error" role="alert" hidden></p>
        <div class="table-wrap"><table><thead><tr><th scope="col">Command</th><th scope="col">Status</th><th scope="col">Account</th>
        <th scope="col">Instances</th><th scope="col">Sent by</th><th scope="col">Sent</th><th scope="col">Runs</th></tr></thead>
        <tbody id="command-rows"><tr><td colspan="7">Loading…</td></tr></tbody></table></div>`;
      return poll(async () => {
        try {
          const { commands } = await api('GET', '/v1/commands');
          $('#command-rows', root).innerHTML = commands.map((c) => `<tr>
            <td><a class="mono" href="#/commands/${encodeURIComponent(c.id)}">${h(c.id)}</a></td><td>${stateBadge(c.status)}</td>
            <td>${h(c.account)}</td><td>${c.results.length}</td><td>${h(c.created_by)}</td>
            <td title="${h(c.created_at)}">${h(age(c.created_at))} ago</td><td class="mono">${h(c.command.join(' '))}</td></tr>`).join('')
            || '<tr><td colspan="7" class="empty">No commands yet.</td></tr>';
        } catch (err) { showError(root, err); }
      }, 5000);
    },
  };

  function commandDetail(root, id) {
    root.innerHTML = `<p><a href="#/commands">← Commands</a></p><h1>Command ${h(id)}</h1>
      <p class="form-error" role="alert" hidden></p>
      <div id="command-body">Loading…</div>`;
    const output = (label, text) => (text ? `<h3>${label}</h3><pre class="mono">${h(text)}</pre>` : '');
    return poll(async () => {
      let c;
      try { c = await api('GET', `/v1/commands/${encodeURIComponent(id)}`); } catch (err) { showError(root, err); return; }
      $('#command-body', root).innerHTML = `<dl class="spec">
          <dt>Status</dt><dd>${stateBadge(c.status)}</dd><dt>Account</dt><dd>${h(c.account)}</dd>
          <dt>Runs</dt><dd class="mono">${h(c.command.join(' '))}</dd>
          <dt>Targets</dt><dd class="mono">${h([...c.targets, ...c.instance_ids].join(' '))}</dd>
          <dt>Limits</dt><dd>${h(c.max_concurrency)} at once, ${h(c.max_errors)} errors allowed, ${c.timeout_seconds} s each</dd>
          <dt>Sent by</dt><dd>${h(c.created_by)}</dd></dl>
        <h2>Instances</h2>
        <div class="table-wrap"><table><thead><tr><th scope="col">Instance</th><th scope="col">Status</th><th scope="col">Exit code</th>
        <th scope="col">Started</th><th scope="col">Ended</th></tr></thead>
        <tbody id="command-results">${c.results.map((r) => `<tr><td class="mono">${h(r.instance_id)}</td><td>${stateBadge(r.status)}</td>
          <td>${r.exit_code ?? '–'}</td><td>${h(r.started_at || '–')}</td><td>${h(r.ended_at || '–')}</td></tr>`).join('')}</tbody></table></div>
        ${c.results.map((r) => output(`${h(r.instance_id)}: output${r.truncated ? ' (truncated)' : ''}`, r.output)
          + output(`${h(r.instance_id)}: error output`, r.error_output)).join('')}`;
    }, 3000);
  }

  // ------------------------------------------------------------------- maintenance windows --
  pages.windows = {
    title: 'Maintenance windows',
    render(root, [name]) {
      if (name) return windowDetail(root, name);
      root.innerHTML = `<h1>Maintenance windows</h1>
        <p>Tasks run on the instances a tag selects when the schedule opens the window, with its creator's permissions.
        Create them with <code>airlock maintenance-window create</code>.</p>
        <p class="form-error" role="alert" hidden></p>
        <div class="table-wrap"><table><thead><tr><th scope="col">Window</th><th scope="col">Account</th><th scope="col">Instances</th>
        <th scope="col">Schedule</th><th scope="col">Tasks</th><th scope="col">Next run</th><th scope="col">Owner</th></tr></thead>
        <tbody id="window-rows"><tr><td colspan="7">Loading…</td></tr></tbody></table></div>`;
      return poll(async () => {
        try {
          const { windows } = await api('GET', '/v1/maintenance-windows');
          $('#window-rows', root).innerHTML = windows.map((w) => `<tr>
            <td><a href="#/windows/${encodeURIComponent(w.name)}">${h(w.name)}</a></td><td>${h(w.account)}</td>
            <td class="mono">${h(w.target)}</td><td class="mono">${h(w.schedule)}</td><td>${h(w.tasks.map((t) => t.type).join(', '))}</td>
            <td title="${h(w.next_run_at || '')}">${h(w.next_run_at || 'never')}</td><td>${h(w.created_by)}</td></tr>`).join('')
            || '<tr><td colspan="7" class="empty">No maintenance windows yet.</td></tr>';
        } catch (err) { showError(root, err); }
      }, 10000);
    },
  };

  function windowDetail(root, name) {
    root.innerHTML = `<p><a href="#/windows">← Maintenance windows</a></p><h1>Maintenance window ${h(name)}</h1>
      <p class="form-error" role="alert" hidden></p>
      <div id="window-body">Loading…</div>`;
    const result = (r) => `${stateBadge(r.status)}${r.exit_code == null ? '' : ` exit ${r.exit_code}`}`;
    return poll(async () => {
      let w; let list;
      try {
        w = await api('GET', `/v1/maintenance-windows/${encodeURIComponent(name)}`);
        list = await api('GET', `/v1/maintenance-windows/${encodeURIComponent(name)}/executions`);
      } catch (err) { showError(root, err); return; }
      $('#window-body', root).innerHTML = `<dl class="spec">
          <dt>Account</dt><dd>${h(w.account)}</dd><dt>Instances</dt><dd class="mono">${h(w.target)}</dd>
          <dt>Schedule</dt><dd class="mono">${h(w.schedule)}</dd>
          <dt>Open for</dt><dd>${Math.round(w.duration_seconds / 60)} min, no new task in the last ${Math.round(w.cutoff_seconds / 60)} min</dd>
          <dt>Tasks</dt><dd>${h(w.tasks.map((t) => t.type).join(', '))}, ${h(w.max_concurrency)} at a time, ${h(w.max_errors)} errors allowed</dd>
          <dt>Owner</dt><dd>${h(w.created_by)} (every task acts with their permissions)</dd></dl>
        <h2>Executions</h2>
        <div class="table-wrap"><table><thead><tr><th scope="col">Execution</th><th scope="col">State</th><th scope="col">Opened</th>
        <th scope="col">Task</th><th scope="col">Task state</th><th scope="col">Per instance</th></tr></thead>
        <tbody id="execution-rows">${list.executions.flatMap((e) => e.tasks.map((t) => `<tr><td class="mono">${h(e.id)}</td>
          <td>${stateBadge(e.state)}</td><td title="${h(e.started_at)}">${h(e.started_at)}</td><td>${t.index + 1}. ${h(t.task.type)}</td>
          <td>${stateBadge(t.state)}${t.detail ? ` <span class="hint">${h(t.detail)}</span>` : ''}</td>
          <td>${t.results.map((r) => `<span class="mono">${h(r.instance_id)}</span> ${result(r)}`).join('<br>')}</td></tr>`)).join('')
          || '<tr><td colspan="6" class="empty">Not opened yet.</td></tr>'}</tbody></table></div>`;
    }, 5000);
  }

  // ----------------------------------------------------------------------------- accounts --
  pages.accounts = {
    title: 'Accounts',
    render(root) {
      root.innerHTML = `<h1>Accounts</h1>
        <p class="form-error" id="accounts-error" role="alert" hidden></p>
        <div class="table-wrap"><table><thead><tr><th scope="col">Name</th><th scope="col">Region</th><th scope="col">Access key id</th>
        <th scope="col">AWS account</th><th scope="col">Verified</th><th scope="col">Added by</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody id="account-rows"></tbody></table></div>
        <h2>Connect an account</h2>
        <form id="account-form" class="grid" novalidate autocomplete="off">
          <p class="form-error" role="alert" hidden></p>
          ${field('name', 'Name', '<input id="f-name" name="name" required placeholder="prod">')}
          ${field('region', 'Region', '<input id="f-region" name="region" required value="us-east-1">')}
          ${field('access_key_id', 'Access key id', '<input id="f-access_key_id" name="access_key_id" required class="mono" autocomplete="off">')}
          ${field('secret_access_key', 'Secret access key', '<input id="f-secret_access_key" name="secret_access_key" type="password" required autocomplete="new-password">', 'Verified with STS, then sealed; never shown again')}
          ${field('endpoint_url', 'Endpoint URL', '<input id="f-endpoint_url" name="endpoint_url" placeholder="AWS" class="mono">', 'Only for an EC2-compatible endpoint other than AWS')}
          ${field('role_arn', 'Role to assume', '<input id="f-role_arn" name="role_arn" placeholder="arn:aws:iam::123456789012:role/NAME" class="mono">')}
          ${field('external_id', 'External id', '<input id="f-external_id" name="external_id">')}
          <div class="wide"><button type="submit" class="primary">Verify and add</button></div>
        </form>`;
      const errorArea = $('#accounts-error', root).parentElement;
      const load = async () => {
        try {
          const list = await api('GET', '/v1/accounts');
          $('#account-rows', root).innerHTML = list.map((a) => `<tr>
            <td>${h(a.name)}</td><td>${h(a.region)}</td><td class="mono">${h(a.access_key_id)}</td><td class="mono">${h(a.aws_account_id)}</td>
            <td title="${h(a.verified_at)}">${h(age(a.verified_at))} ago</td><td>${h(a.created_by)}</td>
            <td class="row-actions"><button type="button" data-verify="${h(a.name)}">Verify</button> <button type="button" class="danger" data-remove="${h(a.name)}">Remove</button></td></tr>`).join('')
            || '<tr><td colspan="7" class="empty">No accounts yet.</td></tr>';
        } catch (err) { showError(errorArea, err); }
      };
      $('#account-rows', root).addEventListener('click', async (ev) => {
        const b = ev.target.closest('button');
        if (!b) return;
        clearErrors(errorArea);
        try {
          if (b.dataset.remove) {
            if (!(await confirmAction(`Remove account ${b.dataset.remove}? Its sealed key is deleted; instances keep running.`, 'Remove'))) return;
            await api('DELETE', `/v1/accounts/${encodeURIComponent(b.dataset.remove)}`);
          } else if (b.dataset.verify) {
            await api('POST', `/v1/accounts/${encodeURIComponent(b.dataset.verify)}/verify`);
          }
          load();
        } catch (err) { showError(errorArea, err); }
      });
      const form = $('#account-form', root);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(form);
        const body = {};
        for (const k of ['name', 'region', 'access_key_id', 'secret_access_key', 'endpoint_url', 'role_arn', 'external_id']) {
          const v = form[k].value.trim();
          if (v) body[k] = v;
        }
        if (!body.secret_access_key) body.secret_access_key = '';
        try {
          await api('POST', '/v1/accounts', body);
          form.reset();
          load();
        } catch (err) { showError(form, err); } finally { form.secret_access_key.value = ''; }
      });
      load();
    },
  };

  // -------------------------------------------------------------------------------- users --
  pages.users = {
    title: 'Users',
    render(root) {
      root.innerHTML = `<h1>Users</h1>
        <p class="form-error" role="alert" hidden></p>
        <div class="table-wrap"><table><thead><tr><th scope="col">User</th><th scope="col">Policies</th><th scope="col">Second factor</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody id="user-rows"></tbody></table></div>
        <h2>Add a user</h2>
        <form id="user-form" class="grid" novalidate autocomplete="off">
          <p class="form-error" role="alert" hidden></p>
          ${field('name', 'User name', '<input id="f-name" name="name" required>')}
          ${field('password', 'Initial password', '<input id="f-password" name="password" type="password" required autocomplete="new-password" minlength="12">', 'At least 12 characters')}
          ${field('policies', 'Policies', '<select id="f-policies" name="policies" multiple size="4"></select>')}
          <div class="wide"><button type="submit" class="primary">Add user</button></div>
        </form>`;
      const errorArea = root;
      let policies = [];
      const load = async () => {
        try {
          const [users, pols] = await Promise.all([api('GET', '/v1/users'), api('GET', '/v1/policies')]);
          policies = pols.map((p) => p.name);
          $('#f-policies', root).innerHTML = policies.map((p) => `<option>${h(p)}</option>`).join('');
          $('#user-rows', root).innerHTML = users.map((u) => `<tr>
            <td>${h(u.name)}</td>
            <td>${u.policies.map((p) => `<span class="chip">${h(p)} <button type="button" class="link" data-detach="${h(u.name)}" data-policy="${h(p)}" aria-label="Detach ${h(p)} from ${h(u.name)}">×</button></span>`).join(' ')}
              <label class="visually-hidden" for="attach-${h(u.name)}">Policy to attach to ${h(u.name)}</label>
              <select id="attach-${h(u.name)}" data-attach-select="${h(u.name)}"><option value="">attach…</option>${policies.filter((p) => !u.policies.includes(p)).map((p) => `<option>${h(p)}</option>`).join('')}</select>
              <button type="button" data-attach="${h(u.name)}">Attach</button></td>
            <td>${u.mfa ? 'TOTP' : 'none'}</td>
            <td><button type="button" class="danger" data-remove="${h(u.name)}">Remove</button></td></tr>`).join('');
        } catch (err) { showError(errorArea, err); }
      };
      $('#user-rows', root).addEventListener('click', async (ev) => {
        const b = ev.target.closest('button');
        if (!b) return;
        clearErrors(errorArea);
        try {
          if (b.dataset.remove) {
            if (!(await confirmAction(`Remove user ${b.dataset.remove}? Their sessions end.`, 'Remove'))) return;
            await api('DELETE', `/v1/users/${encodeURIComponent(b.dataset.remove)}`);
          } else if (b.dataset.detach) {
            await api('DELETE', `/v1/users/${encodeURIComponent(b.dataset.detach)}/policies/${encodeURIComponent(b.dataset.policy)}`);
          } else if (b.dataset.attach) {
            const policy = $(`[data-attach-select="${CSS.escape(b.dataset.attach)}"]`, root).value;
            if (!policy) return;
            await api('POST', `/v1/users/${encodeURIComponent(b.dataset.attach)}/policies`, { policy });
          }
          load();
        } catch (err) { showError(errorArea, err); }
      });
      const form = $('#user-form', root);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(form);
        const body = { name: form.name.value.trim(), password: form.password.value, policies: Array.from(form.policies.selectedOptions).map((o) => o.value) };
        try {
          await api('POST', '/v1/users', body);
          form.reset();
          load();
        } catch (err) { showError(form, err); } finally { form.password.value = ''; }
      });
      load();
    },
  };

  // ----------------------------------------------------------------------------- policies --
  const EXAMPLE_POLICY = JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Sid: 'ReadInstances', Effect: 'Allow', Action: ['ec2:DescribeInstances', 'airlock:UseAccount'], Resource: '*' }],
  }, null, 2);

  pages.policies = {
    title: 'Policies',
    render(root, [selectedName]) {
      root.innerHTML = `<h1>Policies</h1>
        <div class="split">
          <nav aria-label="Stored policies"><ul id="policy-list" class="plain"></ul><p><a href="#/policies">New policy</a></p></nav>
          <form id="policy-form" novalidate>
            <p class="form-error" role="alert" hidden></p>
            ${field('name', 'Name', `<input id="f-name" name="name" required value="${h(selectedName || '')}">`)}
            ${field('document', 'Document', '<textarea id="f-document" name="document" rows="18" class="mono code" spellcheck="false" aria-describedby="policy-validation"></textarea>')}
            <div id="policy-validation" class="validation" role="status" aria-live="polite"></div>
            <div class="actions"><button type="submit" class="primary">Save</button>
            <button type="button" id="policy-delete" class="danger"${selectedName ? '' : ' hidden'}>Delete</button></div>
          </form>
        </div>`;
      const form = $('#policy-form', root);
      const status = $('#policy-validation', root);
      const validate = debounce(async () => {
        try {
          const r = await api('POST', '/v1/policies/validate', { document: form.document.value });
          status.className = `validation ${r.valid ? 'ok' : 'bad'}`;
          status.innerHTML = r.valid
            ? `Valid: ${r.statements} statement${r.statements === 1 ? '' : 's'}.`
            : `<ul>${r.errors.map((e) => `<li>${e.line ? `line ${h(e.line)}, column ${h(e.column)}: ` : ''}${e.statement !== null && e.statement !== undefined ? `statement[${h(e.statement)}]${e.sid ? ` (${h(e.sid)})` : ''} ` : ''}${e.element ? `${h(e.element)}: ` : ''}${h(e.message)}</li>`).join('')}</ul>`;
        } catch (err) {
          status.className = 'validation bad';
          status.textContent = err.message;
        }
      }, 250);
      form.document.addEventListener('input', validate);
      (async () => {
        try {
          const list = await api('GET', '/v1/policies');
          $('#policy-list', root).innerHTML = list.map((p) => `<li><a href="#/policies/${encodeURIComponent(p.name)}"${p.name === selectedName ? ' aria-current="page"' : ''}>${h(p.name)}</a></li>`).join('');
          const chosen = list.find((p) => p.name === selectedName);
          let doc = EXAMPLE_POLICY;
          if (chosen) { try { doc = JSON.stringify(JSON.parse(chosen.document), null, 2); } catch (_) { doc = chosen.document; } }
          form.document.value = doc;
          validate();
        } catch (err) { showError(form, err); }
      })();
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(form);
        const name = form.name.value.trim();
        if (!name) { showError(form, { message: 'give the policy a name', field: 'name' }); return; }
        try {
          await api('PUT', `/v1/policies/${encodeURIComponent(name)}`, { document: form.document.value });
          if (name === selectedName) pages.policies.render(root, [name]); else location.hash = `#/policies/${encodeURIComponent(name)}`;
        } catch (err) { showError(form, err); }
      });
      $('#policy-delete', root).addEventListener('click', async () => {
        clearErrors(form);
        if (!(await confirmAction(`Delete policy ${selectedName}?`, 'Delete'))) return;
        try {
          await api('DELETE', `/v1/policies/${encodeURIComponent(selectedName)}`);
          location.hash = '#/policies';
        } catch (err) { showError(form, err); }
      });
    },
  };

  // ---------------------------------------------------------------------------- simulator --
  pages.simulator = {
    title: 'Simulator',
    render(root) {
      root.innerHTML = `<h1>Policy simulator</h1>
        <p>The same evaluation as <code>airlock policy simulate</code>: policies, a request, the decision and the statements that decided it.</p>
        <form id="simulate-form" class="grid" novalidate>
          <p class="form-error" role="alert" hidden></p>
          ${field('user', 'Load the policies of user', '<select id="f-user" name="user"><option value="">(edit the documents below)</option></select>')}
          ${field('policies', 'Policy documents (a JSON list)', '<textarea id="f-policies" name="policies" rows="10" class="mono code" spellcheck="false">[]</textarea>')}
          ${field('request.action', 'Action', '<input id="f-request.action" name="sim_action" required placeholder="ec2:TerminateInstances" class="mono">')}
          ${field('request.resource', 'Resource', '<input id="f-request.resource" name="sim_resource" required value="*" class="mono">')}
          ${field('request.context', 'Context (JSON object)', '<textarea id="f-request.context" name="sim_context" rows="4" class="mono code" spellcheck="false">{}</textarea>', 'e.g. {"aws:username": "bob", "ec2:ResourceTag/owner": "bob"}')}
          <div class="wide"><button type="submit" class="primary">Simulate</button></div>
        </form>
        <section aria-labelledby="sim-result-title"><h2 id="sim-result-title">Decision</h2><div id="simulate-result" role="status" aria-live="polite">—</div></section>`;
      const form = $('#simulate-form', root);
      api('GET', '/v1/users').then((users) => {
        form.user.innerHTML += users.map((u) => `<option value="${h(u.name)}">${h(u.name)} (${h(u.policies.join(', '))})</option>`).join('');
        form.user.dataset.users = JSON.stringify(users);
      }).catch(() => { /* a user without ListUsers edits documents by hand */ });
      form.user.addEventListener('change', async () => {
        clearErrors(form);
        const users = JSON.parse(form.user.dataset.users || '[]');
        const u = users.find((x) => x.name === form.user.value);
        if (!u) return;
        try {
          const docs = await Promise.all(u.policies.map((p) => api('GET', `/v1/policies/${encodeURIComponent(p)}`)));
          form.policies.value = JSON.stringify(docs.map((d) => JSON.parse(d.document)), null, 2);
        } catch (err) { showError(form, err); }
      });
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(form);
        let policies;
        let context;
        try { policies = JSON.parse(form.policies.value); } catch (e) { showError(form, { field: 'policies', message: `not JSON: ${e.message}` }); return; }
        if (!Array.isArray(policies)) { showError(form, { field: 'policies', message: 'give a JSON list of policy documents' }); return; }
        try { context = JSON.parse(form.sim_context.value || '{}'); } catch (e) { showError(form, { field: 'request.context', message: `not JSON: ${e.message}` }); return; }
        try {
          const r = await api('POST', '/v1/policies/simulate', { policies, request: { action: form.sim_action.value.trim(), resource: form.sim_resource.value.trim(), context } });
          const statements = r.matchedStatements.map((s) => `${h(s.policyId)}#${h(s.index)}${s.sid ? ` (${h(s.sid)})` : ''}`);
          $('#simulate-result', root).innerHTML = `<p class="decision decision-${h(r.decision)}" id="simulate-decision">${h(r.decision)}</p>
            ${statements.length ? `<p>Deciding statements:</p><ul>${statements.map((s) => `<li>${s}</li>`).join('')}</ul>` : '<p>No statement applies.</p>'}
            ${r.errors.length ? `<p>Problems:</p><ul>${r.errors.map((e) => `<li>${h(e)}</li>`).join('')}</ul>` : ''}`;
        } catch (err) { showError(form, err); }
      });
    },
  };

  // -------------------------------------------------------------------------------- audit --
  pages.audit = {
    title: 'Audit',
    render(root) {
      root.innerHTML = `<h1>Audit log</h1>
        <div id="audit-chain" role="status" class="notice">Checking the chain…</div>
        <form id="audit-form" class="toolbar" role="search" novalidate>
          <p class="form-error" role="alert" hidden></p>
          ${field('user', 'User', '<input id="f-user" name="user">')}
          ${field('since', 'Since (RFC 3339)', '<input id="f-since" name="since" placeholder="2026-01-31T12:00:00Z">')}
          ${field('text', 'Search', '<input id="f-text" name="text" type="search" placeholder="action, resource, decision, detail">')}
          <button type="submit">Search</button>
        </form>
        <p class="status" id="audit-status" role="status"></p>
        <div class="table-wrap"><table><thead><tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">User</th><th scope="col">Action</th>
        <th scope="col">Resources</th><th scope="col">Decision</th><th scope="col">Outcome</th><th scope="col">Detail</th></tr></thead>
        <tbody id="audit-rows"></tbody></table></div>
        <p><button type="button" id="audit-more" hidden>More records</button></p>`;
      const form = $('#audit-form', root);
      const more = $('#audit-more', root);
      // The records loaded so far, oldest first; pages follow the console's cursor.
      let rows = [];
      let next = null;
      let query = new URLSearchParams();
      let generation = 0;
      const show = () => {
        const text = form.text.value.trim().toLowerCase();
        const shown = rows.filter((r) => !text || [r.action, r.resources, r.decision, r.outcome, r.detail, r.user_name, r.source_ip].join(' ').toLowerCase().includes(text));
        $('#audit-status', root).textContent = `${shown.length} of ${rows.length} records loaded${next ? '; more follow' : ''}`;
        $('#audit-rows', root).innerHTML = shown.map((r) => {
          let res = r.resources;
          try { res = JSON.parse(r.resources).join(', '); } catch (_) { /* shown as stored */ }
          return `<tr><td>${h(r.seq)}</td><td class="nowrap">${h(r.at)}</td><td>${h(r.user_name)}</td><td class="mono">${h(r.action)}</td>
            <td class="mono small">${h(res)}</td><td>${h(r.decision)}</td><td>${h(r.outcome)}</td><td class="small">${h(r.detail)}</td></tr>`;
        }).join('') || '<tr><td colspan="8" class="empty">No records.</td></tr>';
      };
      const fetchPage = async () => {
        const mine = generation;
        const q = new URLSearchParams(query);
        if (next) q.set('cursor', next);
        more.disabled = true;
        try {
          const page = await api('GET', `/v1/audit${q.toString() ? `?${q}` : ''}`);
          if (mine !== generation) return;
          rows = rows.concat(page.records);
          next = page.next_cursor;
          show();
        } catch (err) {
          if (mine === generation) showError(form, err);
        } finally {
          if (mine === generation) {
            more.hidden = !next;
            more.disabled = false;
          }
        }
      };
      const load = () => {
        clearErrors(form);
        generation += 1;
        query = new URLSearchParams();
        if (form.user.value.trim()) query.set('user', form.user.value.trim());
        if (form.since.value.trim()) query.set('since', form.since.value.trim());
        rows = [];
        next = null;
        return fetchPage();
      };
      form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
      form.text.addEventListener('input', show);
      more.addEventListener('click', () => { fetchPage(); });
      api('GET', '/v1/audit/verify').then((v) => {
        const el = $('#audit-chain', root);
        el.className = `notice ${v.intact ? 'ok' : 'bad'}`;
        const unkeyed = v.unkeyed ? ` (${v.unkeyed} of them from before the audit key, chained without it)` : '';
        const head = v.head ? ` Newest record: ${v.head.seq}, hash ${v.head.hash}.` : '';
        el.textContent = v.intact
          ? `Chain intact: ${v.records} records verified${unkeyed}.${head}`
          : `Chain broken at record ${v.first_broken}: ${v.problem}`;
      }).catch((err) => { $('#audit-chain', root).textContent = `Cannot verify the chain: ${err.message}`; });
      load();
    },
  };

  // Deferred scripts run once the document is parsed.
  Airlock.start();
})();
