package console

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/berthproject/berth/internal/registry"
)

// browser starts headless Chromium for one test, or skips the test when
// it is not installed (bin/test installs it).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if path, err = exec.LookPath("chromium-browser"); err != nil {
			t.Skip("chromium is not installed")
		}
	}
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(dir), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelA()
		for range 50 { // the browser's children may still write there
			if os.RemoveAll(dir) == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// eval evaluates a JavaScript expression in the page into T.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits up to d for a JavaScript predicate to hold.
func waitJS(t *testing.T, ctx context.Context, what, pred string, d time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](pred, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(d))); err != nil {
		t.Fatalf("%s: not within %v: %v", what, d, err)
	}
}

// do runs steps within 30s: chromedp waits for a selector without end,
// so a node the page replaced would otherwise hang the test.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleBrowserLive opens the pages in Chromium: their structure,
// and changes in etcd showing up within 1s without a reload.
func TestConsoleBrowserLive(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, true)
	e.seed()
	until(t, "shop in the cache", func() bool { _, _, b := e.get("/", ""); return strings.Contains(b, `data-up="1"`) })

	do(t, ctx, chromedp.Navigate(e.url+"/"))
	waitJS(t, ctx, "the event stream connected", `document.getElementById('live').textContent.startsWith('live')`, 5*time.Second)

	t.Run("apps structure", func(t *testing.T) {
		var s struct {
			Headers  []string
			Rows     []string
			Current  string
			Unlabled int
			Main     bool
		}
		b := eval[string](t, ctx, `JSON.stringify({
			headers: [...document.querySelectorAll('#apps thead th')].map(th => th.textContent),
			rows: [...document.querySelectorAll('#apps tbody tr')].map(tr => tr.dataset.app),
			current: document.querySelector('nav a[aria-current=page]').textContent,
			unlabled: [...document.querySelectorAll('input')].filter(i => !document.querySelector('label[for="'+i.id+'"]')).length,
			main: !!document.querySelector('main#main'),
		})`)
		json.Unmarshal([]byte(b), &s)
		want := []string{"App", "Status", "Up / wanted", "Version", "Last access", "Sleeps in", "Deploy"}
		if strings.Join(s.Headers, "|") != strings.Join(want, "|") || strings.Join(s.Rows, ",") != "shop" || s.Current != "Apps" || s.Unlabled != 0 || !s.Main {
			t.Fatalf("got %+v, want headers %v, one row shop, Apps current, every input labelled, a main", s, want)
		}
		countdown := eval[string](t, ctx, `document.querySelector('tr[data-app=shop] time.countdown').textContent`)
		if !strings.HasPrefix(countdown, "in 9m") && !strings.HasPrefix(countdown, "in 10m") {
			t.Fatalf("passivation countdown %q, want in 9m…", countdown)
		}
	})

	t.Run("instance up within 1s", func(t *testing.T) {
		e.put(e.key(e.keys.Instance("shop", "2")), registry.Instance{Addr: "127.0.0.1:4002", Node: "n1", Unit: "shop@2.service", State: registry.StateUp})
		waitJS(t, ctx, "2/2 up on the apps page", `document.querySelector('tr[data-app=shop] td[data-up]').textContent.startsWith('2/2')`, time.Second)
	})
	t.Run("new app within 1s", func(t *testing.T) {
		e.put(e.key(e.keys.Instance("blog", "1")), registry.Instance{Addr: "127.0.0.1:4101", Node: "n1", State: registry.StateUp})
		waitJS(t, ctx, "blog's row", `[...document.querySelectorAll('#apps tbody tr')].map(tr => tr.dataset.app).join() === 'blog,shop'`, time.Second)
	})

	t.Run("app page follows its app", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(e.url+"/apps/shop"))
		waitJS(t, ctx, "the event stream connected", `document.getElementById('live').textContent.startsWith('live')`, 5*time.Second)
		n := eval[int](t, ctx, `document.querySelectorAll('#instances tbody tr[data-instance]').length`)
		if n != 2 {
			t.Fatalf("got %d instance rows, want 2", n)
		}
		e.put(e.key(e.keys.Instance("shop", "3")), registry.Instance{Addr: "127.0.0.1:4003", Node: "n1", State: registry.StateStarting})
		waitJS(t, ctx, "instance 3 on the app page", `!!document.querySelector('#instances tr[data-instance="3"]') && document.getElementById('app-up').textContent === '2/2'`, time.Second)
		waitJS(t, ctx, "the event in the page's log", `[...document.querySelectorAll('#event-log li .ename')].some(s => s.textContent === '3')`, time.Second)
	})

	t.Run("nodes page follows the nodes", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(e.url+"/nodes"))
		waitJS(t, ctx, "the event stream connected", `document.getElementById('live').textContent.startsWith('live')`, 5*time.Second)
		e.put(e.key(e.keys.Node("n2")), registry.Node{Addr: "127.0.0.2", Metadata: map[string]string{"az": "b"}})
		waitJS(t, ctx, "node n2's row", `!!document.querySelector('#nodes tr[data-node="n2"]')`, time.Second)
	})
	t.Run("event log", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(e.url+"/events"))
		waitJS(t, ctx, "the event stream connected", `document.getElementById('live').textContent.startsWith('live')`, 5*time.Second)
		if n := eval[int](t, ctx, `document.querySelectorAll('#event-log li').length`); n == 0 {
			t.Fatal("the event log has no past events")
		}
		e.put(e.key(e.keys.Domain("news.example.com")), registry.Domain{App: "blog"})
		waitJS(t, ctx, "domain.added at the top of the log", `document.querySelector('#event-log li .etype').textContent === 'domain.added' && document.querySelector('#event-log li .ename').textContent === 'news.example.com'`, time.Second)
		do(t, ctx, chromedp.SendKeys(chromedp.CSS("#event-q"), "domain.added"))
		waitJS(t, ctx, "the filter hides other events", `[...document.querySelectorAll('#event-log li')].every(li => li.hidden === !li.textContent.includes('domain.added'))`, time.Second)
	})
	t.Run("text contrast", func(t *testing.T) {
		for _, p := range []string{"/", "/apps/shop", "/nodes", "/events"} {
			do(t, ctx, chromedp.Navigate(e.url+p))
			if bad := eval[[]string](t, ctx, contrastJS); len(bad) > 0 {
				t.Errorf("%s: text below 4.5:1 contrast: %v", p, bad)
			}
		}
		// The check itself: grey on white is caught.
		eval[bool](t, ctx, `(() => { const p = document.createElement('p'); p.textContent = 'faint'; p.style.color = '#bbb'; document.getElementById('main').append(p); return true; })()`)
		if bad := eval[[]string](t, ctx, contrastJS); len(bad) != 1 {
			t.Errorf("the contrast check found %v, want the one faint paragraph", bad)
		}
	})
	t.Run("phone width", func(t *testing.T) {
		for _, p := range []string{"/", "/apps/shop", "/nodes", "/events"} {
			do(t, ctx, chromedp.EmulateViewport(375, 800), chromedp.Navigate(e.url+p))
			if w := eval[int](t, ctx, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
				t.Errorf("%s is %dpx wider than a 375px screen", p, w)
			}
		}
	})
}

// TestConsoleBrowserActions uses the action buttons with an admin token:
// scale 2→3 changes the spec in etcd, passivate marks the app, cancel
// does nothing. Reads here need a token (no local reads), so the page
// also shows the token path: the form, the fetch of the page and of the
// stream with the bearer header.
func TestConsoleBrowserActions(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, false)
	e.seed()
	e.served("/apps/shop", e.read, `data-action="delete"`)
	do(t, ctx, chromedp.Navigate(e.url+"/apps/shop"))
	if a := eval[string](t, ctx, `document.body.dataset.auth || ''`); a != "required" {
		t.Fatalf("without a token the page is not the token form (data-auth %q)", a)
	}
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#token-input"), e.admin), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")))
	waitJS(t, ctx, "the app page fetched with the token", `!!document.querySelector('#instances tr[data-instance="1"]')`, 5*time.Second)
	waitJS(t, ctx, "the event stream connected with the token", `document.getElementById('live').textContent.startsWith('live')`, 5*time.Second)
	if strings.Contains(eval[string](t, ctx, `location.href`), "berth_") {
		t.Fatal("the token is in the URL")
	}

	t.Run("scale 2 to 3", func(t *testing.T) {
		do(t, ctx, chromedp.SetValue(chromedp.CSS("#scale-n"), "3"), chromedp.Click(chromedp.CSS("form.act button[type=submit]")))
		waitJS(t, ctx, "the confirmation", `document.getElementById('confirm').open && document.getElementById('confirm-text').textContent === 'Scale shop to 3 instances?'`, 2*time.Second)
		if n := e.wanted("shop"); n != 2 {
			t.Fatalf("scaled before confirmation: %d", n)
		}
		do(t, ctx, chromedp.Click(chromedp.CSS("#confirm-ok")))
		waitJS(t, ctx, "the result shown", `/^(done|failed)/.test(document.getElementById('action-status').textContent)`, 5*time.Second)
		if msg := eval[string](t, ctx, `document.getElementById('action-status').textContent`); !strings.HasPrefix(msg, "done") {
			t.Fatalf("scale: %s", msg)
		}
		until(t, "shop's spec at 3 instances", func() bool { return e.wanted("shop") == 3 })
		waitJS(t, ctx, "the result shown", `document.getElementById('action-status').textContent.startsWith('done')`, 2*time.Second)
		waitJS(t, ctx, "3 wanted on the page", `document.getElementById('app-up').textContent.endsWith('/3')`, time.Second)
	})
	t.Run("cancel wakes nothing", func(t *testing.T) {
		do(t, ctx, chromedp.Click(chromedp.CSS("button[data-action=passivate]")))
		waitJS(t, ctx, "the confirmation", `document.getElementById('confirm').open`, 2*time.Second)
		do(t, ctx, chromedp.Click(chromedp.CSS("#confirm-cancel")))
		waitJS(t, ctx, "cancelled", `document.getElementById('action-status').textContent === 'cancelled'`, 2*time.Second)
		if st := e.status("shop"); st.Expected != registry.StatusStarted {
			t.Fatalf("after cancel, expected %q", st.Expected)
		}
	})
	t.Run("keyboard: Enter asks, focus on Cancel, Escape cancels", func(t *testing.T) {
		eval[bool](t, ctx, `(document.getElementById('action-status').textContent = '', true)`)
		do(t, ctx, chromedp.Focus(chromedp.CSS("#scale-n")), chromedp.KeyEvent(kb.Enter))
		waitJS(t, ctx, "the confirmation with Cancel focused", `document.getElementById('confirm').open && document.activeElement.id === 'confirm-cancel'`, 2*time.Second)
		do(t, ctx, chromedp.KeyEvent(kb.Escape))
		waitJS(t, ctx, "cancelled", `!document.getElementById('confirm').open && document.getElementById('action-status').textContent === 'cancelled'`, 2*time.Second)
	})
	t.Run("passivate", func(t *testing.T) {
		do(t, ctx, chromedp.Click(chromedp.CSS("button[data-action=passivate]")))
		waitJS(t, ctx, "the confirmation", `document.getElementById('confirm').open`, 2*time.Second)
		do(t, ctx, chromedp.Click(chromedp.CSS("#confirm-ok")))
		until(t, "shop expected passivated", func() bool { return e.status("shop").Expected == registry.StatusPassivated })
		waitJS(t, ctx, "the asleep badge", `!!document.querySelector('#app-live .badge.asleep')`, time.Second)
	})
	t.Run("a read token cannot act", func(t *testing.T) {
		do(t, ctx, chromedp.Click(chromedp.CSS("#token-forget")),
			chromedp.SendKeys(chromedp.CSS("#token-input"), e.read), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")),
			chromedp.Click(chromedp.CSS("button[data-action=wake]")))
		waitJS(t, ctx, "the confirmation", `document.getElementById('confirm').open`, 2*time.Second)
		do(t, ctx, chromedp.Click(chromedp.CSS("#confirm-ok")))
		waitJS(t, ctx, "a 403 shown", `document.getElementById('action-status').textContent.startsWith('failed (403)')`, 2*time.Second)
		if st := e.status("shop"); st.Expected != registry.StatusPassivated {
			t.Fatalf("a read token woke the app: expected %q", st.Expected)
		}
	})
	t.Run("wake", func(t *testing.T) {
		do(t, ctx, chromedp.Click(chromedp.CSS("#token-forget")),
			chromedp.SendKeys(chromedp.CSS("#token-input"), e.admin), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")),
			chromedp.Click(chromedp.CSS("button[data-action=wake]")))
		waitJS(t, ctx, "the confirmation", `document.getElementById('confirm').open`, 2*time.Second)
		do(t, ctx, chromedp.Click(chromedp.CSS("#confirm-ok")))
		until(t, "shop expected started", func() bool { return e.status("shop").Expected == registry.StatusStarted })
	})
	t.Run("rollback reaches the API", func(t *testing.T) {
		do(t, ctx, chromedp.Click(chromedp.CSS("button[data-action=rollback]")))
		waitJS(t, ctx, "the confirmation", `document.getElementById('confirm-text').textContent === 'Roll shop back to its previous release?'`, 2*time.Second)
		do(t, ctx, chromedp.Click(chromedp.CSS("#confirm-ok")))
		// shop has no release history: the API's error is shown.
		waitJS(t, ctx, "the API's answer", `/^failed \((404|409)\)/.test(document.getElementById('action-status').textContent)`, 2*time.Second)
	})
}

// TestConsoleBrowserDelete deletes an app from its page: the spec leaves
// etcd and the browser goes back to the apps page.
func TestConsoleBrowserDelete(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, true)
	e.seed()
	e.put(e.key(e.keys.Status("shop")), registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted})
	for _, id := range []string{"1", "2"} { // no agent here to deregister them
		if _, err := e.cli.Delete(t.Context(), e.key(e.keys.Instance("shop", id))); err != nil {
			t.Fatal(err)
		}
	}
	e.served("/apps/shop", "", `data-action="delete"`)
	do(t, ctx, chromedp.Navigate(e.url+"/apps/shop"))
	eval[bool](t, ctx, `(sessionStorage.setItem('berth.token', '`+e.admin+`'), true)`)
	// Clicked by script once the page is live: the live refresh of the
	// page may replace nodes while chromedp looks a button up.
	waitJS(t, ctx, "the delete button", `document.readyState === 'complete' && !!document.querySelector('button[data-action=delete]')`, 10*time.Second)
	eval[bool](t, ctx, `(document.querySelector('button[data-action=delete]').click(), true)`)
	waitJS(t, ctx, "the confirmation", `document.getElementById('confirm').open && document.getElementById('confirm-text').textContent.startsWith('Delete shop?')`, 2*time.Second)
	eval[bool](t, ctx, `(document.getElementById('confirm-ok').click(), true)`)
	until(t, "shop's spec gone from etcd", func() bool {
		r, err := e.cli.Get(t.Context(), e.key(e.keys.App("shop")))
		return err == nil && len(r.Kvs) == 0
	})
	// The page navigates: poll from here (a poll in the page ends with it).
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.pathname === '/' && document.readyState === 'complete' && !!document.getElementById('apps') && !document.querySelector('#apps tr[data-app=shop]')`))
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back on the apps page without shop within 5s (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsoleBrowserTokenLinks: where reads need a token, the console's
// links are followed with it (no token form in between), and the stream
// goes on.
func TestConsoleBrowserTokenLinks(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t, false)
	e.seed()
	do(t, ctx, chromedp.Navigate(e.url+"/"))
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#token-input"), e.read), chromedp.Click(chromedp.CSS("#token-form button[type=submit]")))
	waitJS(t, ctx, "the apps page with the token", `!!document.querySelector('#apps tr[data-app=shop]')`, 5*time.Second)
	do(t, ctx, chromedp.Click(chromedp.CSS(`nav a[href="/nodes"]`)))
	waitJS(t, ctx, "the nodes page without the token form", `location.pathname === '/nodes' && !!document.querySelector('#nodes tr[data-node=n1]') && !document.body.dataset.auth`, 5*time.Second)
	do(t, ctx, chromedp.Click(chromedp.CSS(`nav a[href="/"]`)))
	waitJS(t, ctx, "back on the apps page", `location.pathname === '/' && !!document.querySelector('#apps tr[data-app=shop]')`, 5*time.Second)
	waitJS(t, ctx, "the stream", `document.getElementById('live').textContent.startsWith('live')`, 5*time.Second)
	e.put(e.key(e.keys.Instance("shop", "2")), registry.Instance{Addr: "127.0.0.1:4002", Node: "n1", State: registry.StateUp})
	waitJS(t, ctx, "2/2 up", `document.querySelector('tr[data-app=shop] td[data-up]').textContent.startsWith('2/2')`, time.Second)
}

// wanted returns the instances of app's spec in etcd.
func (e *env) wanted(app string) int {
	e.t.Helper()
	r, err := e.cli.Get(context.Background(), e.key(e.keys.App(app)))
	if err != nil || len(r.Kvs) == 0 {
		e.t.Fatalf("read %s's spec: %v", app, err)
	}
	var sp struct{ Instances int }
	json.Unmarshal(r.Kvs[0].Value, &sp)
	return sp.Instances
}

// status returns app's status record in etcd.
func (e *env) status(app string) registry.Status {
	e.t.Helper()
	r, err := e.cli.Get(context.Background(), e.key(e.keys.Status(app)))
	if err != nil || len(r.Kvs) == 0 {
		e.t.Fatalf("read %s's status: %v", app, err)
	}
	var st registry.Status
	json.Unmarshal(r.Kvs[0].Value, &st)
	return st
}

// contrastJS lists the visible elements holding text whose colour has
// less than 4.5:1 contrast (WCAG AA) with the first opaque background
// behind them.
const contrastJS = `(() => {
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const bg = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || c[3] > 0) return c; } return [255, 255, 255]; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!el.offsetParent || ![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const fg = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
    const ratio = (Math.max(fg, b) + 0.05) / (Math.min(fg, b) + 0.05);
    if (ratio < 4.5) bad.push(el.tagName + '.' + el.className + ' ' + ratio.toFixed(2));
  }
  return bad;
})()`
