// Airlock web console, gateway page: the stored gateway configurations and, for each upstream
// they define, the instances that back it now and why the others near it do not, from the
// console's own listing (`GET /v1/gateway/upstreams`), with EC2's status checks and what each
// gateway following the console reported of every endpoint (healthy, ejected, unhealthy).
'use strict';

(() => {
  const { api, h, $, showError, age, poll, pages, stateBadge } = Airlock;

  const check = (s) => (s ? `<span class="state state-${s === 'ok' ? 'running' : s === 'impaired' ? 'failed' : 'pending'}">${h(s)}</span>` : '<span class="hint">not shown</span>');

  // What each gateway following the console reported of an endpoint in the last minute.
  const seenBy = (gateways) => (gateways || []).map((g) => `<span class="chip">${h(g.gateway)}: <span class="state state-${g.health === 'healthy' ? 'running' : 'failed'}">${h(g.health)}</span></span>`).join('')
    || '<span class="hint">no report</span>';

  function upstreamHtml(u) {
    const members = u.members.map((m) => `<tr><td class="mono">${h(m.instance_id)}</td><td class="mono">${h(m.address)}</td>
      <td>${check(m.instance_status)}</td><td>${check(m.system_status)}</td><td>${seenBy(m.gateways)}</td></tr>`).join('');
    const excluded = u.excluded.map((e) => `<tr><td class="mono">${h(e.instance_id)}</td><td>${stateBadge(e.state)}</td><td>${h(e.reason)}</td></tr>`).join('');
    const more = u.excluded_total > u.excluded.length ? `<p class="hint">and ${u.excluded_total - u.excluded.length} more</p>` : '';
    return `<section class="upstream" aria-labelledby="up-${h(u.namespace)}-${h(u.name)}">
      <h2 id="up-${h(u.namespace)}-${h(u.name)}">${h(u.namespace)}/${h(u.name)}</h2>
      <dl class="spec"><dt>Filters</dt><dd>${u.filters.map((f) => `<span class="chip mono">${h(f)}</span>`).join('') || 'none: every running instance'}</dd>
        <dt>Listed</dt><dd>${u.account ? `through account ${h(u.account)}` : "by each gateway with its own credentials"}, in ${h(u.region)}</dd>
        <dt>Port</dt><dd>${h(u.port)} (or the instance's <span class="mono">${h(u.port_tag)}</span> tag), ${u.public_ip ? 'public' : 'private'} addresses</dd>
        ${u.described_at ? `<dt>As of</dt><dd title="${h(u.described_at)}">${h(age(u.described_at))} ago</dd>` : ''}</dl>
      ${u.note ? `<p class="notice">${h(u.note)}</p>` : `
      <h3>Routed to <span class="count">${u.members.length}</span></h3>
      <div class="table-wrap"><table class="members"><thead><tr><th scope="col">Instance</th><th scope="col">Address</th>
        <th scope="col">Instance check</th><th scope="col">System check</th><th scope="col">Gateways</th></tr></thead>
        <tbody>${members || '<tr><td colspan="5" class="empty">No instance backs it now.</td></tr>'}</tbody></table></div>
      <h3>Not routed to <span class="count">${u.excluded_total}</span></h3>
      ${excluded ? `<div class="table-wrap"><table class="excluded"><thead><tr><th scope="col">Instance</th><th scope="col">State</th><th scope="col">Why not</th></tr></thead>
        <tbody>${excluded}</tbody></table></div>${more}` : '<p class="hint">No other instance carries its tag keys.</p>'}`}
    </section>`;
  }

  pages.gateway = {
    title: 'Gateway',
    render(root) {
      root.innerHTML = `<h1>Gateway</h1>
        <p>What the stored configurations route to now, as the console lists the instances, and what each gateway
        following them (<code>airlock gateway --console</code>) reported of every endpoint in the last minute.</p>
        <p class="form-error" role="alert" hidden></p>
        <h2>Stored configurations</h2>
        <div class="table-wrap"><table><thead><tr><th scope="col">Name</th><th scope="col">Updated by</th><th scope="col">Updated</th></tr></thead>
          <tbody id="gateway-configs"><tr><td colspan="3">Loading…</td></tr></tbody></table></div>
        <div id="gateway-upstreams" aria-live="polite"></div>`;
      return poll(async () => {
        try {
          const [{ configs }, list] = await Promise.all([api('GET', '/v1/gateway/configs'), api('GET', '/v1/gateway/upstreams')]);
          $('#gateway-configs', root).innerHTML = configs.map((c) => `<tr><td><details><summary>${h(c.name)}</summary>
            <pre class="code">${h(c.yaml)}</pre></details></td><td>${h(c.updatedBy)}</td><td title="${h(c.updatedAt)}">${h(age(c.updatedAt))} ago</td></tr>`).join('')
            || '<tr><td colspan="3" class="empty">No stored configuration: add one with <code>airlock gateway-config put</code>.</td></tr>';
          $('#gateway-upstreams', root).innerHTML = (list.error ? `<p class="notice bad">${h(list.error)}</p>` : '')
            + list.upstreams.map(upstreamHtml).join('');
        } catch (err) { showError(root, err); }
      }, 10000);
    },
  };
})();
