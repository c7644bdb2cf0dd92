// Airlock web console, core: the API client, HTML escaping, error display next to fields, the
// confirmation dialog, sign-in and the hash router. Pages are in pages.js.
//
// Every page calls the same JSON API as the command-line client. The browser is signed in by an
// HttpOnly session cookie; state-changing calls repeat the session's CSRF token in a header.
'use strict';

const Airlock = (() => {
  const session = { user: null, csrf: null };
  const pages = {};
  let cleanup = null;

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail.message || `HTTP ${status}`);
      this.status = status;
      this.code = detail.code || 'Error';
      this.field = detail.field || null;
      this.awsRequestId = detail.aws_request_id || null;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, { code: 'Network', message: `the console did not answer (${e.message})` });
    }
    if (response.status === 204) return null;
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      const detail = (data && data.error) || { message: `HTTP ${response.status}` };
      const err = new ApiError(response.status, detail);
      if (response.status === 401 && path !== '/web/session' && session.user) {
        // The session expired or was revoked elsewhere: back to the sign-in form.
        session.user = null;
        session.csrf = null;
        showSignIn('Your session has ended: sign in again.');
      }
      throw err;
    }
    return data;
  }

  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function h(value) {
    return value === null || value === undefined ? '' : String(value).replace(/[&<>"']/g, (c) => ESC[c]);
  }

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }

  // Shows an API error next to the field it names (data-field="name" on the field's wrapper; a
  // field like tags[2].key matches "tags"), or in the form's own error area.
  function showError(container, err) {
    clearErrors(container);
    const message = err.message + (err.awsRequestId ? ` (AWS request id ${err.awsRequestId})` : '');
    let target = null;
    if (err.field) {
      const base = err.field.split(/[.[]/)[0];
      target = $(`[data-field="${CSS.escape(err.field)}"] .field-error`, container)
        || $(`[data-field="${CSS.escape(base)}"] .field-error`, container);
      const input = target && target.parentElement.querySelector('input, select, textarea');
      if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
    }
    if (!target) target = $('.form-error', container);
    if (!target) {
      target = document.createElement('p');
      target.className = 'form-error';
      target.setAttribute('role', 'alert');
      container.prepend(target);
    }
    target.textContent = (err.field && target.classList.contains('form-error') ? `${err.field}: ` : '') + message;
    target.hidden = false;
  }

  function clearErrors(container) {
    for (const e of $all('.field-error, .form-error', container)) { e.textContent = ''; e.hidden = true; }
    for (const e of $all('[aria-invalid]', container)) e.removeAttribute('aria-invalid');
  }

  // A labelled form field with a place for its error. `attrs` is raw attribute text (trusted).
  function field(name, label, control, hint) {
    return `<div class="field" data-field="${h(name)}">
      <label for="f-${h(name)}">${h(label)}</label>
      ${control}
      ${hint ? `<small class="hint">${h(hint)}</small>` : ''}
      <p class="field-error" role="alert" hidden></p>
    </div>`;
  }

  function confirmAction(text, okLabel) {
    const dialog = $('#confirm');
    $('#confirm-text').textContent = text;
    $('#confirm-ok').textContent = okLabel || 'Confirm';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
      dialog.returnValue = '';
      dialog.showModal();
      $('#confirm-ok').focus();
    });
  }

  function age(iso) {
    if (!iso) return '';
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return `${Math.floor(s)}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d`;
  }

  function debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }

  // Calls `fn` now and every `ms` while the page is visible, never two at once; returns a stop.
  function poll(fn, ms) {
    let stopped = false;
    let busy = false;
    let timer = null;
    const tick = async () => {
      if (stopped) return;
      if (!document.hidden && !busy) {
        busy = true;
        try { await fn(); } catch (_) { /* the page shows its own errors */ }
        busy = false;
      }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    tick();
    return () => { stopped = true; clearTimeout(timer); };
  }

  // Tags for people: the console's own (airlock:…) left out.
  function tagsText(tags) {
    return (tags || []).filter((t) => !t.key.startsWith('airlock:')).map((t) => `${t.key}=${t.value}`).join(', ');
  }

  function stateBadge(state) {
    return state ? `<span class="state state-${h(state)}">${h(state)}</span>` : '';
  }

  // Splits `tag:team=web instance-state-name=running "tag:Name=my box"` into EC2 filters; quotes
  // keep spaces. The API validates them and names the one at fault.
  function parseFilters(text) {
    const out = [];
    const re = /"([^"]*)"|(\S*="[^"]*")|(\S+)/g;
    let m;
    while ((m = re.exec(text)) !== null) {
      const token = (m[1] !== undefined ? m[1] : m[2] || m[3]).replace(/="(.*)"$/, '=$1');
      if (token) out.push(token);
    }
    return out;
  }

  // `KEY=VALUE` lines as tags; a line without `=` is a key with an empty value.
  function parseTags(text) {
    const out = [];
    for (const line of (text || '').split('\n')) {
      if (!line.trim()) continue;
      const at = line.indexOf('=');
      out.push(at < 0 ? { key: line.trim(), value: '' } : { key: line.slice(0, at).trim(), value: line.slice(at + 1).trim() });
    }
    return out;
  }

  // Table rows of `items`, or, with a tag key in `group`, the items under one heading row per
  // value of that tag (untagged last); `rowHtml` renders one item, `cols` is the table's width.
  function groupedRows(items, group, cols, rowHtml) {
    if (!group) return items.map(rowHtml).join('');
    const groups = new Map();
    for (const x of items) {
      const t = (x.tags || []).find((y) => y.key === group);
      const k = t ? t.value : '';
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(x);
    }
    const keys = Array.from(groups.keys()).sort((a, b) => (a === '') - (b === '') || a.localeCompare(b));
    return keys.map((k) => `<tr class="group"><th colspan="${cols}" scope="rowgroup">${h(group)} = ${k === '' ? '<em>(no tag)</em>' : h(k)} <span class="count">${groups.get(k).length}</span></th></tr>`
      + groups.get(k).map(rowHtml).join('')).join('');
  }

  // The tag keys of `items` as datalist options for a group-by box, the console's own left out.
  function tagKeyOptions(items) {
    const keys = new Set();
    for (const x of items) for (const t of x.tags || []) if (!t.key.startsWith('airlock:')) keys.add(t.key);
    return Array.from(keys).sort().map((k) => `<option value="${h(k)}">`).join('');
  }

  function main() { return $('#main'); }

  function showSignIn(message) {
    if (cleanup) { cleanup(); cleanup = null; }
    $('header.top').hidden = true;
    main().innerHTML = `<section class="sign-in" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">Sign in to Airlock</h1>
      ${message ? `<p class="notice" role="status">${h(message)}</p>` : ''}
      <form id="sign-in-form" novalidate>
        <p class="form-error" role="alert" hidden></p>
        ${field('user', 'User name', '<input id="f-user" name="user" autocomplete="username" required>')}
        ${field('password', 'Password', '<input id="f-password" name="password" type="password" autocomplete="current-password" required>')}
        <div id="otp-wrap" hidden>
          ${field('otp', 'One-time code', '<input id="f-otp" name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]*">', 'From your authenticator app')}
        </div>
        <button type="submit" class="primary">Sign in</button>
      </form>
    </section>`;
    const form = $('#sign-in-form');
    $('#f-user').focus();
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const body = { user: form.user.value.trim(), password: form.password.value };
      if (!$('#otp-wrap').hidden && form.otp.value.trim()) body.otp = form.otp.value.trim();
      try {
        const s = await api('POST', '/web/session', body);
        form.password.value = '';
        signedIn(s);
      } catch (err) {
        if (err.code === 'OtpRequired') {
          $('#otp-wrap').hidden = false;
        }
        showError(form, err);
      }
    });
  }

  function signedIn(s) {
    session.user = s.user;
    session.csrf = s.csrf_token;
    $('#who-user').textContent = s.user;
    $('header.top').hidden = false;
    if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/instances';
    else route();
  }

  async function signOut() {
    try { await api('DELETE', '/web/session'); } catch (_) { /* signed out either way */ }
    session.user = null;
    session.csrf = null;
    showSignIn('You are signed out.');
  }

  function route() {
    if (!session.user) return;
    if (cleanup) { cleanup(); cleanup = null; }
    const parts = (location.hash || '#/instances').replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    const name = parts[0] || 'instances';
    const page = pages[name];
    for (const a of $all('header nav a')) {
      if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const root = main();
    if (!page) {
      root.innerHTML = `<h1>Not found</h1><p>No page ${h(name)}. <a href="#/instances">Instances</a></p>`;
      return;
    }
    root.innerHTML = '';
    document.title = `${page.title} · Airlock`;
    const result = page.render(root, parts.slice(1));
    cleanup = typeof result === 'function' ? result : null;
    root.focus({ preventScroll: true });
  }

  async function start() {
    $('#sign-out').addEventListener('click', signOut);
    window.addEventListener('hashchange', route);
    try {
      signedIn(await api('GET', '/web/session'));
    } catch (_) {
      showSignIn();
    }
  }

  return {
    api, h, $, $all, field, showError, clearErrors, confirmAction, age, debounce, poll, pages, session, start, ApiError,
    tagsText, stateBadge, parseFilters, parseTags, groupedRows, tagKeyOptions,
  };
})();
