package router

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/etcdtest"
)

// TestPlainHTTPPolicy: routing.https both, redirect and only on plain
// HTTP (both lanes), and HSTS over TLS only, replacing the app's.
func TestPlainHTTPPolicy(t *testing.T) {
	e := newEnv(t, Config{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(hstsHeader, "max-age=1")
		io.WriteString(w, "app")
	}))
	defer be.Close()
	certPEM, keyPEM, _, err := etcdtest.SelfSigned("x")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tl := listen(t)
	srv := NewServer(e.r, &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: TLSProtos()})
	go srv.ServeTLS(tl)
	defer srv.Close()
	for _, app := range []struct{ name, https, hsts string }{{"both", "", ""}, {"redir", "redirect", "8760h"}, {"only", "only", ""}} {
		k, _ := e.keys.App(app.name)
		routing := map[string]any{}
		if app.https != "" {
			routing["https"] = app.https
		}
		if app.hsts != "" {
			routing["hsts"] = app.hsts
		}
		e.put(k, map[string]any{"name": app.name, "routing": routing})
		e.instance(app.name, "1", addr(be))
	}
	tests := []struct {
		name, method, url, host string
		tls                     bool
		status                  int
		location, body, hsts    string
	}{
		{"both plain", "GET", "/", "both.x", false, 200, "", "app", "max-age=1"},
		{"both tls keeps the app's hsts", "GET", "/", "both.x", true, 200, "", "app", "max-age=1"},
		{"redirect GET", "GET", "/a?b=1", "redir.x", false, 308, "https://redir.x/a?b=1", "", ""},
		{"redirect POST", "POST", "/form", "redir.x", false, 308, "https://redir.x/form", "", ""},
		{"redirect tls with hsts", "GET", "/", "redir.x", true, 200, "", "app", "max-age=31536000"},
		{"only plain", "GET", "/x", "only.x", false, 403, "", "https://only.x/x", ""},
		{"only tls", "GET", "/", "only.x", true, 200, "", "app", "max-age=1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := e.srv.URL
			if tc.tls {
				base = "https://" + tl.Addr().String()
			}
			req, _ := http.NewRequest(tc.method, base+tc.url, strings.NewReader("body"))
			req.Host = tc.host
			client := &http.Client{
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
				Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: tc.host}, ForceAttemptHTTP2: true},
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location || !strings.Contains(string(body), tc.body) {
				t.Errorf("got %d Location %q body %q, want %d %q containing %q", resp.StatusCode, resp.Header.Get("Location"), body, tc.status, tc.location, tc.body)
			}
			if got := resp.Header.Values(hstsHeader); strings.Join(got, ",") != tc.hsts && !(tc.hsts == "" && len(got) == 0) {
				t.Errorf("got Strict-Transport-Security %q, want %q", got, tc.hsts)
			}
			if tc.tls && resp.ProtoMajor != 2 {
				t.Errorf("got %s over TLS, want HTTP/2", resp.Proto)
			}
		})
	}
}
