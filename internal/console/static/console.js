// berth console: live updates from the API's event stream and the action
// buttons. Served as a file (the pages' CSP allows no inline script); no
// build step, no dependencies. Every value from the registry reaches the
// DOM as text (textContent) or as server-rendered, escaped HTML.
(function () {
  'use strict';

  var TOKEN_KEY = 'berth.token';
  var body = document.body;

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function setToken(t) {
    try {
      if (t) { sessionStorage.setItem(TOKEN_KEY, t); } else { sessionStorage.removeItem(TOKEN_KEY); }
    } catch (e) { /* storage disabled: the token lasts for this page only */ }
  }
  function authHeaders(h) {
    h = h || {};
    var t = token();
    if (t) { h.Authorization = 'Bearer ' + t; }
    return h;
  }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  // ---- token field ----
  function showTokenState() {
    var el = $('#token-state');
    if (!el) { return; }
    var t = token();
    el.textContent = t ? 'token set (…' + t.slice(-4) + ')' : 'none: local reads only';
  }
  function setupToken() {
    var form = $('#token-form');
    if (!form) { return; }
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var input = $('#token-input');
      setToken(input.value.trim());
      input.value = '';
      showTokenState();
      if (body.dataset.auth === 'required') {
        viaToken = true;
        reload().then(restartStream);
      } else {
        restartStream();
      }
    });
    $('#token-forget').addEventListener('click', function () {
      setToken('');
      showTokenState();
      restartStream();
    });
    showTokenState();
  }

  // ---- fetching server-rendered HTML ----
  function fetchDoc(url) {
    return fetch(url, { headers: authHeaders({}), cache: 'no-store', credentials: 'same-origin' }).then(function (r) {
      return r.text().then(function (text) {
        return { status: r.status, doc: new DOMParser().parseFromString(text, 'text/html') };
      });
    });
  }
  // reload swaps the whole main element for a fresh render of this page.
  function reload() {
    return fetchDoc(location.pathname).then(function (res) {
      var main = $('#main', res.doc);
      if (!main) { return; }
      document.title = res.doc.title;
      $('#main').replaceWith(document.adoptNode(main));
      var nb = res.doc.body.dataset;
      body.dataset.page = nb.page || '';
      body.dataset.app = nb.app || '';
      if (nb.auth) { body.dataset.auth = nb.auth; } else { delete body.dataset.auth; }
      setupFilter();
      tick();
    });
  }
  // With a token required for reads, a link would load the token form
  // first: follow the console's own links with the token instead.
  var viaToken = false;
  function setupLinks() {
    document.addEventListener('click', function (e) {
      if (!viaToken || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) { return; }
      var a = e.target.closest && e.target.closest('a[href]');
      if (!a || a.origin !== location.origin || a.pathname.indexOf('/static/') === 0 || a.pathname.indexOf('/v1/') === 0) { return; }
      e.preventDefault();
      var hash = a.hash;
      history.pushState(null, '', a.pathname + hash);
      reload().then(function () {
        var target = hash && document.getElementById(decodeURIComponent(hash.slice(1)));
        if (target) { target.scrollIntoView(); } else { window.scrollTo(0, 0); }
      });
    });
    window.addEventListener('popstate', function () { if (viaToken) { reload(); } });
  }

  // refreshPart swaps the element with id for its fresh render.
  function refreshPart(id) {
    return fetchDoc(location.pathname).then(function (res) {
      var fresh = res.doc.getElementById(id);
      var old = document.getElementById(id);
      if (fresh && old) { old.replaceWith(document.adoptNode(fresh)); tick(); }
    });
  }

  // debounce groups a burst of events into one fetch.
  function debounce(f, ms) {
    var timer = null;
    return function () {
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; f(); }, ms);
    };
  }

  // ---- apps table: fresh rows for the apps events named ----
  var pendingApps = new Set();
  var flushApps = debounce(function () {
    var names = Array.from(pendingApps);
    pendingApps.clear();
    for (var i = 0; i < names.length; i += 200) { fetchRows(names.slice(i, i + 200)); }
  }, 120);
  function fetchRows(names) {
    var q = names.map(function (n) { return 'app=' + encodeURIComponent(n); }).join('&');
    fetchDoc('/fragment/apps?' + q).then(function (res) {
      var tbody = $('#apps tbody');
      if (!tbody || res.status !== 200) { return; }
      var have = new Map();
      $$('tr[data-app]', tbody).forEach(function (tr) { have.set(tr.dataset.app, tr); });
      var fresh = new Map();
      $$('tr[data-app]', res.doc).forEach(function (tr) { fresh.set(tr.dataset.app, tr); });
      names.forEach(function (name) {
        var old = have.get(name), row = fresh.get(name);
        if (!row) { if (old) { old.remove(); } return; }
        row = document.adoptNode(row);
        if (old) { old.replaceWith(row); return; }
        var next = null;
        have.forEach(function (tr, n) { if (n > name && (!next || n < next.dataset.app)) { next = tr; } });
        tbody.insertBefore(row, next);
        have.set(name, row);
      });
      tick();
    });
  }

  var refreshApp = debounce(function () { refreshPart('app-live'); }, 120);
  var refreshNodes = debounce(function () { refreshPart('nodes-live'); }, 250);
  var refreshCerts = debounce(function () { refreshPart('certs-live'); }, 250);

  // ---- event log ----
  function addEvent(type, ev) {
    var log = $('#event-log');
    if (!log) { return; }
    var li = document.createElement('li');
    li.dataset.rev = String(ev.rev || '');
    var t = document.createElement('time');
    t.dateTime = ev.time || '';
    t.textContent = (ev.time || '').slice(11, 19);
    li.appendChild(t);
    li.appendChild(document.createTextNode(' '));
    var s = document.createElement('span');
    s.className = 'etype';
    s.textContent = type;
    li.appendChild(s);
    if (ev.app) {
      li.appendChild(document.createTextNode(' '));
      var a = document.createElement('a');
      a.href = '/apps/' + encodeURIComponent(ev.app);
      a.textContent = ev.app;
      li.appendChild(a);
    }
    if (ev.name) {
      li.appendChild(document.createTextNode(' '));
      var n = document.createElement('span');
      n.className = 'ename';
      n.textContent = ev.name;
      li.appendChild(n);
    }
    if (ev.data !== undefined) {
      li.appendChild(document.createTextNode(' '));
      var c = document.createElement('code');
      c.textContent = JSON.stringify(ev.data);
      li.appendChild(c);
    }
    filterOne(li);
    log.insertBefore(li, log.firstChild);
    while (log.children.length > 500) { log.removeChild(log.lastChild); }
  }
  function filterOne(li) {
    var q = $('#event-q');
    var v = q ? q.value.trim().toLowerCase() : '';
    li.hidden = v !== '' && li.textContent.toLowerCase().indexOf(v) < 0;
  }
  function setupFilter() {
    var form = $('#event-filter');
    if (!form) { return; }
    form.addEventListener('submit', function (e) { e.preventDefault(); });
    $('#event-q').addEventListener('input', function () { $$('#event-log li').forEach(filterOne); });
  }

  // ---- the stream ----
  function onEvent(type, raw) {
    var ev = {};
    try { ev = JSON.parse(raw); } catch (e) { return; }
    var live = $('#live');
    if (ev.rev) { body.dataset.rev = String(ev.rev); }
    if (live) { live.textContent = 'live · revision ' + (body.dataset.rev || '?'); }
    if (type === 'hello') { return; }
    if (type === 'reset') { reload(); return; }
    var page = body.dataset.page;
    if (page === 'events') { addEvent(type, ev); return; }
    if (page === 'apps' && !body.dataset.app && ev.app) { pendingApps.add(ev.app); flushApps(); }
    if (page === 'apps' && body.dataset.app && ev.app === body.dataset.app) { refreshApp(); addEvent(type, ev); }
    if (page === 'nodes' && (type.indexOf('node.') === 0 || type.indexOf('instance.') === 0 || type === 'status')) { refreshNodes(); }
    if (page === 'certificates' && type.indexOf('certificate.') === 0) { refreshCerts(); }
  }
  var TYPES = ['hello', 'reset', 'app.applied', 'app.deleted', 'status', 'app.passivated', 'app.woken',
    'instance.up', 'instance.down', 'instance.state', 'domain.added', 'domain.removed', 'node.up', 'node.down',
    'deploy', 'certificate.changed', 'certificate.removed'];

  var stream = null; // {close: function}
  function startStream() {
    if (body.dataset.auth === 'required' && !token()) { return; }
    stream = token() ? fetchStream() : eventSource();
  }
  function restartStream() {
    if (stream) { stream.close(); stream = null; }
    startStream();
  }
  function offline(msg) {
    var live = $('#live');
    if (live) { live.textContent = msg; }
  }
  // eventSource reads the stream when no token is needed (berth up's
  // loopback reads); it resumes by itself with Last-Event-ID.
  function eventSource() {
    var es = new EventSource('/v1/events');
    TYPES.forEach(function (t) { es.addEventListener(t, function (e) { onEvent(t, e.data); }); });
    es.onerror = function () { offline('reconnecting…'); };
    return es;
  }
  // fetchStream reads the stream with the token as a bearer header (an
  // EventSource cannot send one, and a token never goes in a URL).
  function fetchStream() {
    var ctl = new AbortController();
    var last = '';
    var closed = false;
    function connect() {
      var h = authHeaders({ Accept: 'text/event-stream' });
      if (last) { h['Last-Event-ID'] = last; }
      fetch('/v1/events', { headers: h, signal: ctl.signal, cache: 'no-store' }).then(function (r) {
        if (!r.ok) { throw new Error('the event stream answered ' + r.status); }
        var reader = r.body.getReader();
        var dec = new TextDecoder();
        var buf = '';
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) { throw new Error('stream ended'); }
            buf += dec.decode(chunk.value, { stream: true });
            var i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              var block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              var type = 'message', data = [];
              block.split('\n').forEach(function (line) {
                if (line.indexOf('event: ') === 0) { type = line.slice(7); }
                else if (line.indexOf('data: ') === 0) { data.push(line.slice(6)); }
                else if (line.indexOf('id: ') === 0) { last = line.slice(4); }
              });
              if (data.length) { onEvent(type, data.join('\n')); }
            }
            return pump();
          });
        }
        return pump();
      }).catch(function (err) {
        if (closed) { return; }
        offline('reconnecting… (' + err.message + ')');
        setTimeout(connect, 2000);
      });
    }
    connect();
    return { close: function () { closed = true; ctl.abort(); } };
  }

  // ---- clocks: countdowns and ages, one timer for the page ----
  function fmt(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s >= 172800) { return Math.floor(s / 86400) + 'd' + Math.floor(s % 86400 / 3600) + 'h'; }
    if (s >= 3600) { return Math.floor(s / 3600) + 'h' + Math.floor(s % 3600 / 60) + 'm'; }
    if (s >= 60) { return Math.floor(s / 60) + 'm' + (s % 60) + 's'; }
    return s + 's';
  }
  function tick() {
    var now = Date.now();
    $$('time[data-deadline]').forEach(function (t) {
      var left = Number(t.dataset.deadline) - now;
      t.textContent = left > 0 ? 'in ' + fmt(left) : 'due';
    });
    $$('time[data-ago]').forEach(function (t) {
      t.textContent = fmt(now - Number(t.dataset.ago)) + ' ago';
    });
  }

  // ---- actions ----
  function actionOf(el) {
    var app = el.dataset.app, base = '/v1/apps/' + encodeURIComponent(app);
    switch (el.dataset.action) {
      case 'scale':
        var n = parseInt($('#scale-n').value, 10);
        if (!(n >= 1)) { return { error: 'instances: enter a whole number of at least 1' }; }
        return { method: 'POST', path: base + '/scale', body: { instances: n }, ask: 'Scale ' + app + ' to ' + n + ' instances?' };
      case 'passivate':
        return { method: 'POST', path: base + '/passivate', ask: 'Passivate ' + app + '? Its instances stop until a request wakes it.' };
      case 'wake':
        return { method: 'POST', path: base + '/wake', ask: 'Wake ' + app + '?' };
      case 'delete':
        return { method: 'DELETE', path: base, ask: 'Delete ' + app + '? Its spec, domains and status are removed and its instances stop.' };
      case 'promote':
        return { method: 'POST', path: base + '/deploys/promote', ask: 'Promote the canary of ' + app + '?' };
      case 'abort':
        return { method: 'POST', path: base + '/deploys/abort', body: {}, ask: 'Abort the deploy of ' + app + ' and roll back?' };
      case 'rollback':
        return { method: 'POST', path: base + '/deploys/rollback', body: {}, ask: 'Roll ' + app + ' back to its previous release?' };
    }
    return { error: 'unknown action' };
  }
  function say(msg) {
    var s = $('#action-status');
    if (s) { s.textContent = msg; }
  }
  function confirmThen(text, f) {
    var dlg = $('#confirm');
    $('#confirm-text').textContent = text;
    if (!dlg.showModal) { if (window.confirm(text)) { f(); } return; }
    dlg.returnValue = '';
    dlg.addEventListener('close', function once() {
      dlg.removeEventListener('close', once);
      if (dlg.returnValue === 'ok') { f(); } else { say('cancelled'); }
    });
    dlg.showModal();
  }
  function run(el) {
    var act = actionOf(el);
    if (act.error) { say(act.error); return; }
    if (!token()) {
      say('Actions need an admin token: enter it in the API token field above.');
      $('#token-input').focus();
      return;
    }
    confirmThen(act.ask, function () {
      say('working…');
      var init = { method: act.method, headers: authHeaders({ 'Content-Type': 'application/json' }), cache: 'no-store' };
      if (act.body) { init.body = JSON.stringify(act.body); }
      fetch(act.path, init).then(function (r) {
        return r.text().then(function (text) {
          var v = null;
          try { v = JSON.parse(text); } catch (e) { /* not JSON */ }
          if (!r.ok) {
            say('failed (' + r.status + '): ' + (v && v.error ? v.error.message : text));
            return;
          }
          say('done: ' + ((v && v.message) || act.method + ' ' + act.path));
          if (el.dataset.action === 'delete') { setTimeout(function () { location.href = '/'; }, 800); }
        });
      }).catch(function (err) { say('failed: ' + err.message); });
    });
  }
  function setupActions() {
    document.addEventListener('click', function (e) {
      var b = e.target.closest && e.target.closest('button[data-action]');
      if (b) { run(b); }
    });
    document.addEventListener('submit', function (e) {
      var f = e.target;
      if (f.classList && f.classList.contains('act')) { e.preventDefault(); run(f); }
    });
  }

  setupToken();
  setupFilter();
  setupActions();
  tick();
  setInterval(tick, 1000);
  setupLinks();
  if (body.dataset.auth === 'required' && token()) {
    viaToken = true;
    reload().then(startStream);
  } else {
    startStream();
  }
})();
