package etcdauth

import (
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/authpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The roles, each with a user of the same name; RootUser is etcd's own.
const (
	Reader   = "berth-reader"   // routers
	DNS      = "berth-dns"      // dnsd: reads, writes nothing
	Agent    = "berth-agent"    // node agents, unit hooks, passivation, the scheduler and deployer
	Operator = "berth-operator" // the CLI: apply, deploy, scale, delete, cert, fleet
	RootUser = "root"
)

// SkyDNSPrefix is the root of the SkyDNS mirror (registry.SkyDNSPrefix).
const SkyDNSPrefix = "/skydns"

// Perm is one permission of a role: Key alone, or the range [Key, End).
type Perm struct {
	Type     clientv3.PermissionType
	Key, End string
}

// Prefix is the permission on every key starting with key.
func Prefix(t clientv3.PermissionType, key string) Perm {
	return Perm{Type: t, Key: key, End: clientv3.GetPrefixRangeEnd(key)}
}

// String reads like "readwrite /berth/v1/status/*".
func (p Perm) String() string {
	k := p.Key
	if p.End == clientv3.GetPrefixRangeEnd(p.Key) {
		k += "*"
	}
	return strings.ToLower(authpb.Permission_Type(p.Type).String()) + " " + k
}

// Role is an etcd role and its permissions.
type Role struct {
	Name  string
	Perms []Perm
}

var (
	read      = clientv3.PermissionType(clientv3.PermRead)
	readWrite = clientv3.PermissionType(clientv3.PermReadWrite)
)

// Roles returns berth's roles for the schema under root (default "/berth"),
// derived from the "written by" column of docs/schema.md:
//
//   - berth-reader, the routers' role, reads the schema version and
//     <root>/v1/ (the watch cache lists and watches it, the router serves
//     certs/) and writes its access records (access/), the router's wake
//     (a status transition, status/) and the routers' shared ACME storage
//     and its locks (acme/, sealed values), and the certificate recipient
//     the routers publish there (acme/cert-recipient, a public key). It
//     cannot read <root>/secrets/: a router holds no sealed value, not even
//     encrypted.
//   - berth-dns, dnsd's role, reads the schema version and <root>/v1/ (its
//     watch cache) and writes nothing: a dnsd, which holds no router key,
//     can neither replace the routers' certificate recipient nor touch
//     their ACME storage. Like berth-reader it cannot read <root>/secrets/.
//   - berth-agent reads everything under root, sealed secrets included (the
//     pre-start hook opens an app's secrets with the node's key), and
//     writes what nodes write: the schema
//     version key (first writer), instances/, status/, nodes/, fleet/
//     (states, schedule and leader election, and jobs and units the
//     deployer submits), apps/, releases/, rollouts/ and deploy/ (the
//     deployer's rollout steps, its election and a finished release's spec),
//     and the SkyDNS mirror the hooks write. Not domains/, certs/, access/.
//   - berth-operator reads and writes everything under root and the SkyDNS
//     mirror (berth delete --skydns-zone).
func Roles(root string) []Role {
	root = strings.TrimSuffix(root, "/")
	v1 := root + "/v1/"
	all := Prefix(read, root+"/")
	rw := func(base []Perm, names ...string) []Perm {
		ps := base
		for _, n := range names {
			ps = append(ps, Prefix(readWrite, v1+n+"/"))
		}
		return ps
	}
	agent := append(rw([]Perm{all}, "instances", "status", "nodes", "fleet", "apps", "releases", "rollouts", "deploy"),
		Perm{Type: readWrite, Key: root + "/schema"}, Prefix(readWrite, SkyDNSPrefix+"/"))
	readOnly := []Perm{{Type: read, Key: root + "/schema"}, Prefix(read, v1)}
	reader := rw(slices.Clone(readOnly), "access", "status", "acme")
	return []Role{
		{Name: Reader, Perms: reader},
		{Name: DNS, Perms: readOnly},
		{Name: Agent, Perms: agent},
		{Name: Operator, Perms: []Perm{Prefix(readWrite, root+"/"), Prefix(readWrite, SkyDNSPrefix+"/")}},
	}
}
