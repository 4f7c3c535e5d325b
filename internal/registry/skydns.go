package registry

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SkyDNSPrefix is the root of the SkyDNS / CoreDNS etcd plugin layout.
const SkyDNSPrefix = "/skydns"

// SkyDNSKV returns the key and value that mirror a live instance in the
// SkyDNS layout, so that a stock CoreDNS etcd plugin serving zone answers
// <app>.service.<zone> with the instance: key
// /skydns/<zone labels reversed>/service/<app>/<id>, value
// {"host":"10.0.1.5","port":49153}. It is written on the instance's lease.
func SkyDNSKV(zone string, in *Instance) (string, string, error) {
	prefix, err := SkyDNSAppPrefix(zone, in.App)
	if err != nil {
		return "", "", err
	}
	host, port, err := net.SplitHostPort(in.Addr)
	if err != nil {
		return "", "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", "", err
	}
	val, err := json.Marshal(map[string]any{"host": host, "port": p})
	return prefix + url.PathEscape(in.ID), string(val), err
}

// SkyDNSAppPrefix is the prefix of an app's SkyDNS mirror records in zone:
// /skydns/<zone labels reversed>/service/<app>/.
func SkyDNSAppPrefix(zone, app string) (string, error) {
	zone = strings.Trim(strings.ToLower(zone), ".")
	if zone == "" || !reHost.MatchString(zone) || strings.HasPrefix(zone, "*") {
		return "", fmt.Errorf("%w: zone %q", ErrBadName, zone)
	}
	if err := checkApp(app); err != nil {
		return "", err
	}
	labels := strings.Split(zone, ".")
	slices.Reverse(labels)
	return SkyDNSPrefix + "/" + strings.Join(labels, "/") + "/service/" + app + "/", nil
}
