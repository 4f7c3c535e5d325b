package registry

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DefaultRoot is the default key prefix.
const DefaultRoot = "/berth"

// ErrBadName is returned (wrapped) by the key builders for a name that
// cannot be a key segment.
var ErrBadName = errors.New("invalid name")

var (
	reApp  = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	reHost = regexp.MustCompile(`^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)
)

// Keys builds and parses the keys of schema v1 under one root.
type Keys struct {
	root string // without trailing slash
}

// NewKeys returns the key builder for root ("" means DefaultRoot). The root
// must be an absolute etcd path such as "/berth" or "/tenants/a/berth".
func NewKeys(root string) (Keys, error) {
	if root == "" {
		root = DefaultRoot
	}
	root = strings.TrimSuffix(root, "/")
	if !strings.HasPrefix(root, "/") || strings.Contains(root, "//") || root == "" {
		return Keys{}, fmt.Errorf("%w: root %q must be an absolute path like /berth", ErrBadName, root)
	}
	return Keys{root: root}, nil
}

// Root is the root prefix without a trailing slash.
func (k Keys) Root() string { return k.root }

// Schema is the key holding the schema version.
func (k Keys) Schema() string { return k.root + "/schema" }

// Prefix is the prefix of every v1 record; the watch cache lists it.
func (k Keys) Prefix() string { return k.root + "/v1/" }

func (k Keys) appsPrefix() string      { return k.Prefix() + "apps/" }
func (k Keys) domainsPrefix() string   { return k.Prefix() + "domains/" }
func (k Keys) instancesPrefix() string { return k.Prefix() + "instances/" }
func (k Keys) statusPrefix() string    { return k.Prefix() + "status/" }
func (k Keys) accessPrefix() string    { return k.Prefix() + "access/" }
func (k Keys) nodesPrefix() string     { return k.Prefix() + "nodes/" }
func (k Keys) certsPrefix() string     { return k.Prefix() + "certs/" }

// Cert is the key of a TLS certificate for a host (or "*.example.com"),
// shared by every router.
func (k Keys) Cert(host string) (string, error) {
	d, err := k.Domain(host)
	if err != nil {
		return "", err
	}
	return k.certsPrefix() + strings.TrimPrefix(d, k.domainsPrefix()), nil
}

// ACMEPrefix is the prefix of the ACME storage shared by the routers
// (internal/acmestore): data/<certmagic key> holds sealed values,
// locks/<name> the issuance locks.
func (k Keys) ACMEPrefix() string { return k.Prefix() + "acme/" }

// CertRecipient is the key where the routers publish the public key that
// berth cert put seals certificate keys to (a CertRecipient record): under
// acme/, which the routers' etcd role may write.
func (k Keys) CertRecipient() string { return k.ACMEPrefix() + "cert-recipient" }

// App is the key of an app's spec.
func (k Keys) App(app string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	return k.appsPrefix() + app, nil
}

// Domain is the key of a domain (exact host or "*.example.com").
func (k Keys) Domain(host string) (string, error) {
	host = strings.ToLower(host)
	if len(host) > 253 || !reHost.MatchString(host) {
		return "", fmt.Errorf("%w: domain %q", ErrBadName, host)
	}
	return k.domainsPrefix() + host, nil
}

// Instance is the key of one instance record. The instance id is
// path-escaped, so any string (a systemd instance name) is safe.
func (k Keys) Instance(app, id string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	if id == "" || len(id) > 255 {
		return "", fmt.Errorf("%w: instance id %q", ErrBadName, id)
	}
	return k.instancesPrefix() + app + "/" + url.PathEscape(id), nil
}

// InstancesOf is the prefix of an app's instance records.
func (k Keys) InstancesOf(app string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	return k.instancesPrefix() + app + "/", nil
}

// Status is the key of an app's status.
func (k Keys) Status(app string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	return k.statusPrefix() + app, nil
}

// Access is the key of one router's last-access record for an app.
func (k Keys) Access(app, router string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	if router == "" {
		return "", fmt.Errorf("%w: empty router id", ErrBadName)
	}
	return k.accessPrefix() + app + "/" + url.PathEscape(router), nil
}

// AccessOf is the prefix of an app's access records.
func (k Keys) AccessOf(app string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	return k.accessPrefix() + app + "/", nil
}

// Node is the key of a node's record (its agent's lease and address).
func (k Keys) Node(node string) (string, error) {
	if node == "" {
		return "", fmt.Errorf("%w: empty node id", ErrBadName)
	}
	return k.nodesPrefix() + url.PathEscape(node), nil
}

func checkApp(app string) error {
	if !reApp.MatchString(app) {
		return fmt.Errorf("%w: app %q (lowercase letters, digits and '-')", ErrBadName, app)
	}
	return nil
}

// Kind is the record kind a key holds.
type Kind int

// Record kinds.
const (
	KindUnknown Kind = iota
	KindApp
	KindDomain
	KindInstance
	KindStatus
	KindAccess
	KindNode
	KindCert
	KindRollout
)

// ParsedKey is a key split into its kind and names.
type ParsedKey struct {
	Kind Kind
	App  string // apps, instances, status, access
	Name string // domain host, instance id, router id, node id
}

// Parse splits a key under Prefix. Keys outside the schema give KindUnknown.
func (k Keys) Parse(key string) ParsedKey {
	rest, ok := strings.CutPrefix(key, k.Prefix())
	if !ok {
		return ParsedKey{}
	}
	kind, rest, _ := strings.Cut(rest, "/")
	two := func(want Kind) ParsedKey {
		app, name, ok := strings.Cut(rest, "/")
		if !ok || checkApp(app) != nil || name == "" || strings.Contains(name, "/") {
			return ParsedKey{}
		}
		id, err := url.PathUnescape(name)
		if err != nil {
			return ParsedKey{}
		}
		return ParsedKey{Kind: want, App: app, Name: id}
	}
	switch kind {
	case "apps":
		if checkApp(rest) == nil {
			return ParsedKey{Kind: KindApp, App: rest}
		}
	case "status":
		if checkApp(rest) == nil {
			return ParsedKey{Kind: KindStatus, App: rest}
		}
	case "rollouts":
		if checkApp(rest) == nil {
			return ParsedKey{Kind: KindRollout, App: rest}
		}
	case "domains":
		if reHost.MatchString(rest) {
			return ParsedKey{Kind: KindDomain, Name: rest}
		}
	case "certs":
		if reHost.MatchString(rest) {
			return ParsedKey{Kind: KindCert, Name: rest}
		}
	case "instances":
		return two(KindInstance)
	case "access":
		return two(KindAccess)
	case "nodes":
		if id, err := url.PathUnescape(rest); err == nil && id != "" && !strings.Contains(rest, "/") {
			return ParsedKey{Kind: KindNode, Name: id}
		}
	}
	return ParsedKey{}
}
