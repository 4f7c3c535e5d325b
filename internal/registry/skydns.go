package registry

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
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
	zone = strings.Trim(strings.ToLower(zone), ".")
	if zone == "" || !reHost.MatchString(zone) || strings.HasPrefix(zone, "*") {
		return "", "", fmt.Errorf("%w: zone %q", ErrBadName, zone)
	}
	if err := checkApp(in.App); err != nil {
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
	labels := strings.Split(zone, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	key := SkyDNSPrefix + "/" + strings.Join(labels, "/") + "/service/" + in.App + "/" + url.PathEscape(in.ID)
	val, err := json.Marshal(map[string]any{"host": host, "port": p})
	return key, string(val), err
}
