package etcdauth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/acmestore"
	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
	"github.com/berthproject/berth/internal/spec"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func keys(t *testing.T) registry.Keys {
	t.Helper()
	k, err := registry.NewKeys("")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func app(name string) *spec.App {
	a := &spec.App{APIVersion: spec.APIVersion, Name: name, Image: "x", Domains: []string{name + ".example.com"}}
	a.SetDefaults()
	return a
}

// mustDeny checks that err is etcd's permission denied.
func mustDeny(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("%s: %v, want permission denied", what, err)
	}
}

// TestSkyDNSPrefix: the SkyDNS grant covers the mirror registry writes.
// followsRegistry starts a TLS + auth etcd in which an operator has
// published the app "shop", and checks that role's user follows the
// registry through the watch cache: its first snapshot, then a change
// watched ("cart"). It returns the operator's and the role's clients,
// and as, which connects to the same etcd as another role.
func followsRegistry(t *testing.T, role string) (op, c *clientv3.Client, k registry.Keys, as func(role string) *clientv3.Client) {
	t.Helper()
	s, p := etcdtest.Secure(t)
	k = keys(t)
	op = etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	if err := registry.PublishApp(ctx(t), op, k, app("shop")); err != nil {
		t.Fatalf("operator publishes: %v", err)
	}
	c = etcdtest.SecureClient(t, s, p, role)
	log, _ := test.NewNullLogger()
	cache := registry.NewCache(c, c, registry.CacheConfig{Keys: k}, log)
	cctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cache.Run(cctx) }()
	t.Cleanup(func() { stop(); <-done })
	select {
	case <-cache.Synced():
	case <-time.After(10 * time.Second):
		t.Fatalf("the cache never synced as %s", role)
	}
	if cache.Snapshot().Apps["shop"] == nil {
		t.Errorf("snapshot apps %v, want shop", cache.Snapshot().AppNames())
	}
	if err := registry.PublishApp(ctx(t), op, k, app("cart")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for cache.Snapshot().Apps["cart"] == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the watch never delivered cart to %s", role)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return op, c, k, func(role string) *clientv3.Client { return etcdtest.SecureClient(t, s, p, role) }
}

func TestSkyDNSPrefix(t *testing.T) {
	if etcdauth.SkyDNSPrefix != registry.SkyDNSPrefix {
		t.Errorf("SkyDNSPrefix %q, want registry's %q", etcdauth.SkyDNSPrefix, registry.SkyDNSPrefix)
	}
}

// TestReader: a router's user follows the registry through the watch cache
// over TLS, writes its access records and wakes apps (a status
// transition), uses the ACME storage, and cannot write specs, domains, instances or certificates.
func TestReader(t *testing.T) {
	op, r, k, _ := followsRegistry(t, etcdauth.Reader)
	log, _ := test.NewNullLogger()

	access, _ := k.Access("shop", "router-1")
	if _, err := r.Put(ctx(t), access, `{"last":1}`); err != nil {
		t.Errorf("access record: %v", err)
	}
	if _, err := registry.Update(ctx(t), r, k, "shop", func(cur *registry.Status) (registry.Status, bool) {
		return registry.Status{Current: registry.StatusStarting, Expected: registry.StatusStarted}, true
	}); err != nil {
		t.Errorf("wake (status transition): %v", err)
	}
	// The routers' ACME storage: sealed values and the issuance locks.
	store, err := acmestore.New(r, k.ACMEPrefix(), bytes.Repeat([]byte{7}, acmestore.KeySize), 5*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Lock(ctx(t), "issue_cert_shop.example.com"); err != nil {
		t.Errorf("acme lock: %v", err)
	} else if err := store.Store(ctx(t), "certificates/ca/shop.example.com/shop.example.com.crt", []byte("pem")); err != nil {
		t.Errorf("acme store: %v", err)
	} else if err := store.Unlock(ctx(t), "issue_cert_shop.example.com"); err != nil {
		t.Errorf("acme unlock: %v", err)
	}
	appKey, _ := k.App("x")
	_, err = r.Put(ctx(t), appKey, "{}")
	mustDeny(t, "put "+appKey, err)
	mustDeny(t, "publish", registry.PublishApp(ctx(t), r, k, app("x")))
	inst, _ := k.Instance("shop", "1")
	_, err = r.Put(ctx(t), inst, "{}")
	mustDeny(t, "put "+inst, err)
	_, err = r.Delete(ctx(t), k.Prefix(), clientv3.WithPrefix())
	mustDeny(t, "delete everything", err)

	// Sealed secrets are out of a router's reach, even encrypted.
	sealedKey := putSecret(t, op, k)
	_, err = r.Get(ctx(t), sealedKey)
	mustDeny(t, "get "+sealedKey, err)
	_, err = r.Get(ctx(t), k.SecretsRoot(), clientv3.WithPrefix())
	mustDeny(t, "list "+k.SecretsRoot(), err)
	_, err = r.Get(ctx(t), k.Root()+"/", clientv3.WithPrefix())
	mustDeny(t, "list "+k.Root()+"/", err)
	_, err = r.Put(ctx(t), sealedKey, "{}")
	mustDeny(t, "put "+sealedKey, err)
}

// putSecret seals a secret as the operator and returns its key.
func putSecret(t *testing.T, op *clientv3.Client, k registry.Keys) string {
	t.Helper()
	id, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	st := &secret.Store{KV: op, Keys: k}
	if err := st.Init(ctx(t), []string{id.Recipient().String()}); err != nil && !strings.Contains(err.Error(), "other recipients") {
		t.Fatalf("operator publishes recipients: %v", err)
	}
	if _, err := st.Put(ctx(t), "shop", "db-password", []byte("x")); err != nil {
		t.Fatalf("operator puts a secret: %v", err)
	}
	key, _ := k.Secret("shop", "db-password")
	return key
}

// TestAgent: a node's user registers instances on a lease, its node record,
// fleet states and statuses, and cannot claim domains or store
// certificates.
func TestAgent(t *testing.T) {
	s, p := etcdtest.Secure(t)
	k := keys(t)
	a := etcdtest.SecureClient(t, s, p, etcdauth.Agent)
	log, _ := test.NewNullLogger()
	owner := registry.NewLeaseOwner(a, a, 10*time.Second, log)
	octx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- owner.Run(octx) }()
	defer func() { stop(); <-done }()
	<-owner.Ready()
	key, val, err := registry.InstanceKV(k, &registry.Instance{App: "shop", ID: "1", Addr: "10.0.1.5:8080", State: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Put(ctx(t), key, val); err != nil {
		t.Errorf("instance on the lease: %v", err)
	}
	node, _ := k.Node("m1")
	for _, kv := range [][2]string{{node, `{"addr":"10.0.1.5"}`}, {k.FleetState("shop@1.service"), `{}`}, {k.Schema(), registry.SchemaVersion}} {
		if _, err := a.Put(ctx(t), kv[0], kv[1]); err != nil {
			t.Errorf("put %s: %v", kv[0], err)
		}
	}
	if _, err := registry.Update(ctx(t), a, k, "shop", func(*registry.Status) (registry.Status, bool) {
		return registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted}, true
	}); err != nil {
		t.Errorf("status: %v", err)
	}
	dom, _ := k.Domain("shop.example.com")
	_, err = a.Put(ctx(t), dom, `{"app":"shop"}`)
	mustDeny(t, "put "+dom, err)
	cert, _ := k.Cert("shop.example.com")
	_, err = a.Put(ctx(t), cert, "{}")
	mustDeny(t, "put "+cert, err)
	_, err = a.Put(ctx(t), "/elsewhere", "x")
	mustDeny(t, "put /elsewhere", err)

	// Nodes read sealed secrets (the pre-start hook opens them) but
	// neither write them nor change the recipients.
	op := etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	sealedKey := putSecret(t, op, k)
	if r, err := a.Get(ctx(t), sealedKey); err != nil || len(r.Kvs) != 1 {
		t.Errorf("agent reads %s: %v", sealedKey, err)
	}
	if _, err := (&secret.Store{KV: a, Keys: k}).List(ctx(t), "shop"); err != nil {
		t.Errorf("agent lists secrets: %v", err)
	}
	_, err = a.Put(ctx(t), sealedKey, "{}")
	mustDeny(t, "put "+sealedKey, err)
	_, err = a.Put(ctx(t), k.SecretRecipients(), "age1x")
	mustDeny(t, "put "+k.SecretRecipients(), err)
}

// TestOperator: the CLI's user publishes apps with their domains and
// reads everything, and cannot touch keys outside berth's.
func TestOperator(t *testing.T) {
	s, p := etcdtest.Secure(t)
	k := keys(t)
	op := etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	if err := registry.PublishApp(ctx(t), op, k, app("shop")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if r, err := op.Get(ctx(t), k.Root()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || r.Count < 3 {
		t.Errorf("read back: %v %v, want schema, app and domain", r, err)
	}
	_, err := op.Put(ctx(t), "/elsewhere", "x")
	mustDeny(t, "put /elsewhere", err)
	_, err = op.UserList(ctx(t))
	mustDeny(t, "list users", err)
}

// TestWithoutClientCertificate: a client with the CA but no certificate
// gets no answer (the TLS handshake fails), and a certificate from another
// CA neither.
func TestWithoutClientCertificate(t *testing.T) {
	s, p := etcdtest.Secure(t)
	cfg, err := p.ClientConfig(etcdauth.Reader, s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLS.Certificates = nil
	cfg.DialTimeout = time.Second
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := cli.Get(c, "/berth/schema"); err == nil {
		t.Error("read without a client certificate: no error")
	}
}

// TestApplyIdempotent: a second Apply changes nothing, and a permission
// added by hand to a berth role is revoked.
func TestApplyIdempotent(t *testing.T) {
	s, p := etcdtest.Secure(t)
	root := etcdtest.SecureClient(t, s, p, etcdauth.RootUser)
	var out bytes.Buffer
	if err := etcdauth.Apply(ctx(t), root, etcdauth.Roles("/berth"), &out); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "auth: enabled already" {
		t.Errorf("second apply printed %q, want only that auth is enabled already", got)
	}
	if _, err := root.RoleGrantPermission(ctx(t), etcdauth.Reader, "/berth/v1/apps/", clientv3.GetPrefixRangeEnd("/berth/v1/apps/"), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := etcdauth.Apply(ctx(t), root, etcdauth.Roles("/berth"), &out); err != nil {
		t.Fatal(err)
	}
	if want := "role berth-reader: revoked readwrite /berth/v1/apps/*"; !strings.Contains(out.String(), want) {
		t.Errorf("apply printed %q, want %q", out.String(), want)
	}
}

// TestApplyOnFreshEtcd: against an etcd without auth, Apply creates every
// role and user and enables auth.
func TestApplyOnFreshEtcd(t *testing.T) {
	_, cli := etcdtest.New(t)
	var out bytes.Buffer
	if err := etcdauth.Apply(ctx(t), cli, etcdauth.Roles("/berth"), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"role berth-reader: created", "role berth-dns: granted read /berth/v1/*", "user berth-dns: created", "role berth-agent: granted readwrite /berth/v1/instances/*",
		"role berth-operator: granted readwrite /berth/*", "user root: created", "auth: enabled\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("apply printed\n%s\nwant %q in it", out.String(), want)
		}
	}
}

// TestApplyConcurrently: every server of a stack runs berth-etcd-auth at
// boot, at the same time on a new stack; each Apply succeeds, however the
// others' role and user creations interleave with its own.
func TestApplyConcurrently(t *testing.T) {
	s, p := etcdtest.Secure(t)
	root := etcdtest.SecureClient(t, s, p, etcdauth.RootUser)
	if _, err := root.AuthDisable(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, r := range etcdauth.Roles("/berth") {
		if _, err := root.RoleDelete(ctx(t), r.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := root.UserDelete(ctx(t), r.Name); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 5 {
		errs := make(chan error, 3)
		for range 3 {
			cli := etcdtest.SecureClient(t, s, p, etcdauth.RootUser)
			go func() { errs <- etcdauth.Apply(ctx(t), cli, etcdauth.Roles("/berth"), io.Discard) }()
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: one of three concurrent applies: %v", round, err)
			}
		}
		if round < 4 { // again from nothing
			if _, err := root.AuthDisable(ctx(t)); err != nil {
				t.Fatal(err)
			}
			for _, r := range etcdauth.Roles("/berth") {
				root.RoleDelete(ctx(t), r.Name)
				root.UserDelete(ctx(t), r.Name)
			}
		}
	}
}
