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

// skyDNSService is a value of the SkyDNS layout (the fields berth sets).
type skyDNSService struct {
	Host  string `json:"host"`
	Port  int    `json:"port"`
	Group string `json:"group"`
}

// SkyDNSKVs returns the keys and values that mirror an instance in the
// SkyDNS layout, so that a stock CoreDNS etcd plugin serving zone answers
// for it (docs/schema.md, "Interop"):
//
//   - /skydns/<zone labels reversed>/service/<app>/<id>: the primary port,
//     for <app>.service.<zone> (A and SRV);
//   - /skydns/<zone labels reversed>/service/<app>/_<proto>/_<name>/<id>
//     for every port, the primary one included, for
//     _<name>._<proto>.<app>.service.<zone> (SRV).
//
// Each value is {"host":"10.0.1.5","port":49153,"group":...}. The plugin
// answers a name with every key below it; the group (the app's name for
// the primary key, the port's SRV name for the others) makes it keep only
// the primary keys for <app>.service.<zone>. They are written on the
// instance record's lease.
func SkyDNSKVs(zone string, in *Instance) (map[string]string, error) {
	base, err := SkyDNSAppPrefix(zone, in.App)
	if err != nil {
		return nil, err
	}
	id := url.PathEscape(in.ID)
	out := map[string]string{}
	add := func(key, addr, group string) error {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return err
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("addr %q: %w", addr, err)
		}
		val, err := json.Marshal(skyDNSService{Host: host, Port: p, Group: group})
		out[key] = string(val)
		return err
	}
	if err := add(base+id, in.Addr, in.App); err != nil {
		return nil, err
	}
	for _, p := range in.PortList() {
		if !rePort.MatchString(p.Name) {
			continue // an older writer's free-form port name: no key segment
		}
		if err := add(base+"_"+p.Proto+"/_"+p.Name+"/"+id, p.Addr, "_"+p.Name+"._"+p.Proto+"."+in.App); err != nil {
			return nil, err
		}
	}
	return out, nil
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
