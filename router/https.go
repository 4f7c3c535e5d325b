package router

import (
	"net/http"
	"strconv"
	"time"

	"github.com/berthproject/berth/internal/spec"
)

const hstsHeader = "Strict-Transport-Security"

// hstsValue is the Strict-Transport-Security value for max-age d.
func hstsValue(d time.Duration) string {
	return "max-age=" + strconv.FormatInt(int64(d/time.Second), 10)
}

// plainServed reports whether the app's plain HTTP requests are proxied
// (routing.https both, the default).
func (rt *route) plainServed() bool { return rt.plainHTTP == "" || rt.plainHTTP == spec.HTTPSBoth }

// refusePlain answers a plain HTTP request for an app served over HTTPS:
// routing.https redirect sends 308 to the same URL on https (the method
// and body are kept), only answers 403 naming that URL.
func (r *Router) refusePlain(w http.ResponseWriter, req *http.Request, rt *route) {
	target := "https://" + normalizeHost(req.Host) + req.URL.RequestURI()
	if rt.plainHTTP == spec.HTTPSRedirect {
		r.metrics.requests.WithLabelValues(rt.app, "3xx").Inc()
		http.Redirect(w, req, target, http.StatusPermanentRedirect)
		return
	}
	r.metrics.requests.WithLabelValues(rt.app, "4xx").Inc()
	http.Error(w, rt.app+" is served over HTTPS only: "+target, http.StatusForbidden)
}

// dropAppHSTS removes an app's Strict-Transport-Security from a response
// over TLS when its spec sets routing.hsts: the router's, set in
// ServeHTTP, is the one.
func dropAppHSTS(resp *http.Response) error {
	if info := infoFrom(resp.Request.Context()); info != nil && resp.Request.TLS != nil && info.route.hsts > 0 {
		resp.Header.Del(hstsHeader)
	}
	return nil
}
